"""The JSON shapes of the registry API, as frozen dataclasses that convert to and from JSON.

The server renders them and the client parses them, so a field renamed here is renamed on both
sides at once. Field names follow Python; each carries its wire name (``json=`` metadata), and
``to_json`` leaves out fields that are None, as the Go structs' ``omitempty`` does. ``from_json``
is lenient in the way the Go client is: unknown keys are dropped and missing optional keys become
None, so a newer Harness server does not break an older hc.

Conventions that the two API generations differ on, kept as Harness has them:

- v1 (``/gateway/har/api/v1``): ``{"status": "SUCCESS", "data": {<items key>: [...], "itemCount",
  "pageCount", "pageIndex", "pageSize"}}``; pages are 0-based; sizes are human strings in go-bytesize
  form (``"1.00KB"``) and timestamps are epoch milliseconds as strings.
- v3 (``/gateway/har/api/v3``): ``{"page", "size", "hasMore", "items": [...], "meta"?}``; no totals;
  sizes are exact byte counts as decimal strings and timestamps are integer epoch milliseconds.
- errors: v1/v2 ``{"code", "message", "details"?}``; v3 ``{"error": {"type", "code", "message"}}``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Generic, Self, TypeVar

__all__ = [
    "ALL_PACKAGE_TYPES",
    "GENERIC_FILE_TYPES",
    "ArtifactV1",
    "ArtifactVersionV1",
    "BulkDeleteRequest",
    "BulkDeleteResult",
    "FileDetailV1",
    "FileV3",
    "MetadataItem",
    "PackageV3",
    "PageV1",
    "PageV3",
    "RegistryMetadataV1",
    "RegistryV1",
    "RegistryV3",
    "VersionV3",
    "error_body_v1",
    "error_body_v3",
    "error_message",
    "format_bytesize",
    "success_body",
    "v3_error_type",
]

#: Package types known to Harness (the v3 x-extensible-enum plus RAW, which the migration code uses).
ALL_PACKAGE_TYPES: Final = (
    "DOCKER",
    "MAVEN",
    "PYTHON",
    "GENERIC",
    "HELM",
    "NUGET",
    "NPM",
    "RPM",
    "CARGO",
    "COMPOSER",
    "GO",
    "HUGGINGFACE",
    "CONDA",
    "DART",
    "SWIFT",
    "DEBIAN",
    "RAW",
    "PUPPET",
    "CONAN",
)

#: Registry types whose files go through ``/pkg/{account}/{registry}/files/...``.
GENERIC_FILE_TYPES: Final = frozenset({"GENERIC", "RAW"})

T = TypeVar("T", bound="_Wire")


def _json(name: str) -> dict[str, str]:
    """Field metadata naming the field's JSON key."""
    return {"json": name}


class _Wire:
    """Mixin: ``to_json``/``from_json`` over dataclass fields carrying a ``json`` name."""

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, key in _wire_fields(type(self)):
            value = getattr(self, name)
            if value is None:
                continue
            # Plain values (nearly all of them) need no conversion: checked by exact type first,
            # as a listing page converts ten thousand of them.
            out[key] = value if type(value) in _PLAIN else _dump(value)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        plain, made = _readers(cls)
        if plain is None:  # a field without a default, or a __post_init__: the constructor decides
            return cls(**{name: data[key] for name, key in _wire_fields(cls) if key in data})
        # What the dataclass constructor does, without building a keyword dict first: this runs
        # once per listed item (twice as fast; hc lists versions of a hundred thousand files).
        self = object.__new__(cls)
        get = data.get
        for name, key, default in plain:
            object.__setattr__(self, name, get(key, default))
        for name, key, factory in made:
            object.__setattr__(self, name, data[key] if key in data else factory())
        return self

    @classmethod
    def json_rows(cls, rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
        """What ``[cls(...).to_json() for ...]`` gives, from rows holding every field's value in
        field order, as plain JSON values (no nested _Wire). A listing page renders a thousand
        items: building each object and converting it back costs six times as much as this."""
        keys = tuple(key for _, key in _wire_fields(cls))
        out = []
        for row in rows:
            if len(row) != len(keys):
                raise ValueError(f"{cls.__name__} row of {len(row)} values, expected {len(keys)}")
            item = dict(zip(keys, row, strict=True))
            out.append({k: v for k, v in item.items() if v is not None} if None in row else item)
        return out


#: Types that JSON takes as they are.
_PLAIN: Final = frozenset({str, int, bool, float})
_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}


def _wire_fields(cls: type) -> tuple[tuple[str, str], ...]:
    """``(attribute, JSON key)`` of each field of a _Wire dataclass, worked out once per class:
    ``dataclasses.fields`` on every row cost most of a listing page's serialization time."""
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = tuple(
            (f.name, f.metadata.get("json", f.name)) for f in dataclasses.fields(cls)
        )
    return found


_Readers = tuple[
    tuple[tuple[str, str, Any], ...] | None,  # (attribute, key, default); None: no fast path
    tuple[tuple[str, str, Callable[[], Any]], ...],  # (attribute, key, default factory)
]
_READERS: dict[type, _Readers] = {}


def _readers(cls: type) -> _Readers:
    """How ``from_json`` fills each field of ``cls`` when its key is absent, worked out once."""
    found = _READERS.get(cls)
    if found is None:
        plain: list[tuple[str, str, Any]] = []
        made: list[tuple[str, str, Callable[[], Any]]] = []
        fast = not hasattr(cls, "__post_init__")
        for f in dataclasses.fields(cls):
            key = f.metadata.get("json", f.name)
            if f.default is not dataclasses.MISSING:
                plain.append((f.name, key, f.default))
            elif f.default_factory is not dataclasses.MISSING:
                made.append((f.name, key, f.default_factory))
            else:
                fast = False
        found = _READERS[cls] = (tuple(plain) if fast else None, tuple(made))
    return found


def _dump(value: Any) -> Any:
    if isinstance(value, _Wire):
        return value.to_json()
    if isinstance(value, list | tuple):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


def format_bytesize(size: int) -> str:
    """Format bytes as go-bytesize does (``"%.2f"`` plus a 1024-based unit, no space): ``1.00KB``."""
    units = ("B", "KB", "MB", "GB", "TB", "PB", "EB")
    value = float(size)
    unit = 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    return f"{value:.2f}{units[unit]}"


def success_body(data: Any = None) -> dict[str, Any]:
    """The v1/v2 envelope: ``{"status": "SUCCESS"[, "data": ...]}``."""
    body: dict[str, Any] = {"status": "SUCCESS"}
    if data is not None:
        body["data"] = _dump(data)
    return body


def error_body_v1(code: str, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = dict(details)
    return body


def v3_error_type(status: int) -> str:
    """The V3Error ``type`` for an HTTP status."""
    if status == 401:
        return "AUTHENTICATION_ERROR"
    if status == 403:
        return "PERMISSION_ERROR"
    if 400 <= status < 500:
        return "INVALID_REQUEST_ERROR"
    return "API_ERROR"


def error_body_v3(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": v3_error_type(status), "code": code, "message": message}
    if param:
        error["param"] = param
    return {"error": error}


def error_message(body: Any) -> str | None:
    """The human message of any error body hc may meet (v1/v2, v3, or the ng API's)."""
    if not isinstance(body, Mapping):
        return None
    nested = body.get("error")
    if isinstance(nested, Mapping) and isinstance(nested.get("message"), str):
        return str(nested["message"])
    message = body.get("message")
    return message if isinstance(message, str) else None


# --------------------------------------------------------------------------------------------- v1


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryV1(_Wire):
    """``Registry`` (create/get/modify). The spec requires ``name`` and ``type`` as well."""

    identifier: str = field(default="", metadata=_json("identifier"))
    name: str | None = field(default=None, metadata=_json("name"))
    type: str | None = field(default=None, metadata=_json("type"))
    package_type: str = field(default="GENERIC", metadata=_json("packageType"))
    url: str = field(default="", metadata=_json("url"))
    uuid: str | None = field(default=None, metadata=_json("uuid"))
    description: str | None = field(default=None, metadata=_json("description"))
    labels: list[str] | None = field(default=None, metadata=_json("labels"))
    allowed_pattern: list[str] | None = field(default=None, metadata=_json("allowedPattern"))
    blocked_pattern: list[str] | None = field(default=None, metadata=_json("blockedPattern"))
    config: dict[str, Any] | None = field(default=None, metadata=_json("config"))
    created_at: str | None = field(default=None, metadata=_json("createdAt"))
    modified_at: str | None = field(default=None, metadata=_json("modifiedAt"))


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryMetadataV1(_Wire):
    """An item of ``ListRegistry.registries``."""

    identifier: str = field(default="", metadata=_json("identifier"))
    package_type: str = field(default="GENERIC", metadata=_json("packageType"))
    type: str = field(default="VIRTUAL", metadata=_json("type"))
    url: str = field(default="", metadata=_json("url"))
    path: str | None = field(default=None, metadata=_json("path"))
    description: str | None = field(default=None, metadata=_json("description"))
    labels: list[str] | None = field(default=None, metadata=_json("labels"))
    registry_size: str | None = field(default=None, metadata=_json("registrySize"))
    artifacts_count: int | None = field(default=None, metadata=_json("artifactsCount"))
    downloads_count: int | None = field(default=None, metadata=_json("downloadsCount"))
    last_modified: str | None = field(default=None, metadata=_json("lastModified"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ArtifactV1(_Wire):
    """An item of ``ListArtifact.artifacts`` (space listing) and ``ListRegistryArtifact.artifacts``."""

    name: str = field(default="", metadata=_json("name"))
    registry_identifier: str = field(default="", metadata=_json("registryIdentifier"))
    registry_path: str = field(default="", metadata=_json("registryPath"))
    latest_version: str = field(default="", metadata=_json("latestVersion"))
    version: str | None = field(default=None, metadata=_json("version"))
    package_type: str | None = field(default=None, metadata=_json("packageType"))
    downloads_count: int | None = field(default=None, metadata=_json("downloadsCount"))
    last_modified: str | None = field(default=None, metadata=_json("lastModified"))
    labels: list[str] | None = field(default=None, metadata=_json("labels"))
    artifact_key: dict[str, str] | None = field(default=None, metadata=_json("artifactKey"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ArtifactVersionV1(_Wire):
    """An item of ``ListArtifactVersion.artifactVersions``."""

    name: str = field(default="", metadata=_json("name"))
    registry_identifier: str = field(default="", metadata=_json("registryIdentifier"))
    registry_path: str = field(default="", metadata=_json("registryPath"))
    latest_version: str | None = field(default=None, metadata=_json("latestVersion"))
    package_type: str | None = field(default=None, metadata=_json("packageType"))
    size: str | None = field(default=None, metadata=_json("size"))
    file_count: int | None = field(default=None, metadata=_json("fileCount"))
    downloads_count: int | None = field(default=None, metadata=_json("downloadsCount"))
    last_modified: str | None = field(default=None, metadata=_json("lastModified"))
    pull_command: str | None = field(default=None, metadata=_json("pullCommand"))


@dataclass(frozen=True, slots=True, kw_only=True)
class FileDetailV1(_Wire):
    """An item of ``ListFileDetail.files``; ``name`` is the path inside the version."""

    name: str = field(default="", metadata=_json("name"))
    size: str = field(default="", metadata=_json("size"))
    checksums: list[str] = field(default_factory=list, metadata=_json("checksums"))
    download_command: str = field(default="", metadata=_json("downloadCommand"))
    created_at: str = field(default="", metadata=_json("createdAt"))

    def checksum(self, algorithm: str) -> str | None:
        """The hex digest for ``md5``/``sha1``/``sha256``/``sha512`` from ``["SHA-256: <hex>", ...]``."""
        want = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256", "sha512": "SHA-512"}[algorithm]
        for entry in self.checksums or []:
            label, _, value = entry.partition(":")
            if label.strip().upper() == want:
                return value.strip()
        return None


W = TypeVar("W", bound=_Wire)


@dataclass(frozen=True, slots=True, kw_only=True)
class PageV1(Generic[W]):
    """One page of a v1 listing; ``items_key`` is ``registries``, ``artifacts``,
    ``artifactVersions`` or ``files``."""

    items: list[W]
    item_count: int
    page_count: int
    page_index: int
    page_size: int
    items_key: str

    def to_json(self) -> dict[str, Any]:
        return success_body(
            {
                self.items_key: [item.to_json() for item in self.items],
                "itemCount": self.item_count,
                "pageCount": self.page_count,
                "pageIndex": self.page_index,
                "pageSize": self.page_size,
            }
        )

    @classmethod
    def from_json(cls, body: Mapping[str, Any], *, items_key: str, item: Callable[[Any], W]) -> PageV1[W]:
        data = body.get("data") or {}
        raw = data.get(items_key) or []
        return cls(
            items=[item(x) for x in raw],
            item_count=int(data.get("itemCount") or 0),
            page_count=int(data.get("pageCount") or 0),
            page_index=int(data.get("pageIndex") or 0),
            page_size=int(data.get("pageSize") or len(raw)),
            items_key=items_key,
        )

    @property
    def is_last(self) -> bool:
        """As the Go client decides: a short page, or pageIndex+1 >= pageCount."""
        return len(self.items) < self.page_size or self.page_index + 1 >= self.page_count


# --------------------------------------------------------------------------------------------- v3


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryV3(_Wire):
    id: str = field(default="", metadata=_json("id"))
    name: str = field(default="", metadata=_json("name"))
    package_type: str = field(default="GENERIC", metadata=_json("packageType"))
    type: str = field(default="VIRTUAL", metadata=_json("type"))
    is_public: bool = field(default=False, metadata=_json("isPublic"))
    url: str = field(default="", metadata=_json("url"))
    path: str | None = field(default=None, metadata=_json("path"))
    description: str | None = field(default=None, metadata=_json("description"))
    size: str | None = field(default=None, metadata=_json("size"))
    artifacts_count: int | None = field(default=None, metadata=_json("artifactsCount"))
    package_count: int | None = field(default=None, metadata=_json("packageCount"))
    download_count: int | None = field(default=None, metadata=_json("downloadCount"))
    modified_at: int | None = field(default=None, metadata=_json("modifiedAt"))


@dataclass(frozen=True, slots=True, kw_only=True)
class PackageV3(_Wire):
    id: str = field(default="", metadata=_json("id"))
    name: str = field(default="", metadata=_json("name"))
    package_type: str = field(default="GENERIC", metadata=_json("packageType"))
    registry_id: str = field(default="", metadata=_json("registryId"))
    registry_name: str = field(default="", metadata=_json("registryName"))
    is_public: bool = field(default=False, metadata=_json("isPublic"))
    latest_version: str = field(default="", metadata=_json("latestVersion"))
    download_count: int | None = field(default=None, metadata=_json("downloadCount"))
    modified_at: int | None = field(default=None, metadata=_json("modifiedAt"))


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionV3(_Wire):
    id: str = field(default="", metadata=_json("id"))
    name: str = field(default="", metadata=_json("name"))
    package_id: str = field(default="", metadata=_json("packageId"))
    package_name: str = field(default="", metadata=_json("packageName"))
    package_type: str = field(default="GENERIC", metadata=_json("packageType"))
    registry_id: str = field(default="", metadata=_json("registryId"))
    registry_name: str = field(default="", metadata=_json("registryName"))
    registry_type: str = field(default="VIRTUAL", metadata=_json("registryType"))
    size: str | None = field(default=None, metadata=_json("size"))
    file_count: int | None = field(default=None, metadata=_json("fileCount"))
    download_count: int | None = field(default=None, metadata=_json("downloadCount"))
    created_at: int | None = field(default=None, metadata=_json("createdAt"))
    modified_at: int | None = field(default=None, metadata=_json("modifiedAt"))


@dataclass(frozen=True, slots=True, kw_only=True)
class FileV3(_Wire):
    """``FileMetadata``; ``path`` is ``/``-rooted inside the version, ``size`` exact bytes."""

    id: str = field(default="", metadata=_json("id"))
    name: str = field(default="", metadata=_json("name"))
    path: str = field(default="", metadata=_json("path"))
    size: str = field(default="0", metadata=_json("size"))
    md5: str = field(default="", metadata=_json("md5"))
    sha1: str = field(default="", metadata=_json("sha1"))
    sha256: str = field(default="", metadata=_json("sha256"))
    sha512: str = field(default="", metadata=_json("sha512"))
    created_at: int | None = field(default=None, metadata=_json("createdAt"))
    download_url: str | None = field(default=None, metadata=_json("downloadUrl"))


@dataclass(frozen=True, slots=True, kw_only=True)
class PageV3(Generic[W]):
    items: list[W]
    page: int
    size: int
    has_more: bool
    meta: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "page": self.page,
            "size": self.size,
            "hasMore": self.has_more,
            # Items already in wire form (``json_rows``) pass as they are.
            "items": [item if isinstance(item, dict) else item.to_json() for item in self.items],
        }
        if self.meta is not None:
            body["meta"] = dict(self.meta)
        return body

    @classmethod
    def from_json(cls, body: Mapping[str, Any], *, item: Callable[[Any], W]) -> PageV3[W]:
        raw = body.get("items") or []
        meta = body.get("meta")
        return cls(
            items=[item(x) for x in raw],
            page=int(body.get("page") or 0),
            size=int(body.get("size") or len(raw)),
            has_more=bool(body.get("hasMore")),
            meta=dict(meta) if isinstance(meta, Mapping) else None,
        )


# ----------------------------------------------------------------------------------- v2 and others


@dataclass(frozen=True, slots=True, kw_only=True)
class MetadataItem(_Wire):
    key: str = field(default="", metadata=_json("key"))
    value: str = field(default="", metadata=_json("value"))
    id: str | None = field(default=None, metadata=_json("id"))
    type: str | None = field(default=None, metadata=_json("type"))


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkDeleteRequest(_Wire):
    packages: str = field(default="", metadata=_json("packages"))
    versions: str = field(default="", metadata=_json("versions"))
    registry: str = field(default="", metadata=_json("registry"))
    force: bool = field(default=False, metadata=_json("force"))
    dry_run: bool = field(default=False, metadata=_json("dryRun"))


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkDeleteResult(_Wire):
    """What ``POST v3 /bulkdelete`` answers; ``success_packages`` holds ``pkg`` or ``pkg@version``."""

    MAX_LISTED: ClassVar[int] = 1000

    dry_run: bool = field(default=False, metadata=_json("dryRun"))
    force: bool = field(default=False, metadata=_json("force"))
    registry: str = field(default="", metadata=_json("registry"))
    pattern: str = field(default="", metadata=_json("pattern"))
    version_pattern: str = field(default="", metadata=_json("versionPattern"))
    total: int = field(default=0, metadata=_json("total"))
    success: int = field(default=0, metadata=_json("success"))
    failed: int = field(default=0, metadata=_json("failed"))
    success_packages: Sequence[str] = field(default=(), metadata=_json("successPackages"))
    failed_packages: Sequence[str] = field(default=(), metadata=_json("failedPackages"))
    message: str = field(default="", metadata=_json("message"))
