"""The migration config file: the Go ``hc``'s YAML schema, read and validated into one value.

Schema (``module/ar/migrate/types/config.go`` in the Go CLI; hc additions marked *hc*)::

    version: 1.0.0               # accepted, not interpreted
    concurrency: 32              # > 0; --concurrency overrides it (hc's default: 32)
    overwrite: false             # copy even files the destination already holds identically
    dryRun: false                # as --dry-run
    summary: false               # accepted (hc always prints its summary)
    source:
      type: HAR | HTTP | WEBDAV  # JFROG, NEXUS, HARBOR: "not supported yet"
      endpoint: http://…         # HAR: the API URL; HTTP/WEBDAV: the root of the file tree
      credentials: {username: …, password: …}
      insecure: false            # skip TLS verification
    destination:
      type: HAR
      endpoint: http://…         # the package (pkg) URL; for an hc registry also its API URL
      apiEndpoint: http://…      # *hc*: the management API URL when it differs from endpoint
      credentials: {username: …, password: <API key>}
      insecure: false
    mappings:
      - artifactType: GENERIC | RAW      # other types: "not supported yet"
        sourceRegistry: repo             # HAR: "reg" | "org/reg" | "org/proj/reg"; WEBDAV: a path
        destinationRegistry: dst         # "reg" | "org/reg" | "org/proj/reg"
        includePatterns: ["pkg/**"]      # *hc*: include and exclude may both be set
        excludePatterns: ["**/*.tmp"]
        dateFilter: {match: ANY | ALL, createdAfter: <RFC 3339>, downloadedAfter: <RFC 3339>}

``${VAR}`` (and ``$VAR``) are expanded from the environment over the whole file before it is parsed,
as Go's ``os.Expand`` does (an unset variable becomes the empty string). Every problem is one
``ConfigError`` line naming the field (exit 2). Unlike the Go CLI, an unknown key is an error: a
misspelt ``includePattern`` silently migrating everything is worse than a refusal.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import yaml

from hc.config import DEFAULT_CONCURRENCY
from hc.errors import ConfigError, UsageError
from hc.protocol.identifiers import validate_registry_identifier, validate_scope_identifier

__all__ = [
    "SUPPORTED_ARTIFACT_TYPES",
    "Credentials",
    "DateFilter",
    "DateMatch",
    "EndpointConfig",
    "MappingConfig",
    "MigrationConfig",
    "RegistryPath",
    "SourceType",
    "expand_variables",
    "load_config",
    "parse_config",
]

#: What this hc migrates; the rest of the Go CLI's types get a "not supported yet" error.
SUPPORTED_ARTIFACT_TYPES: Final = ("GENERIC", "RAW")
_KNOWN_ARTIFACT_TYPES: Final = frozenset(
    {
        *("DOCKER", "HELM", "HELM_LEGACY", "HELM_HTTP", "GENERIC", "RAW", "PYTHON", "MAVEN", "NPM"),
        *("NUGET", "RPM", "DEBIAN", "GO", "CONDA", "COMPOSER", "DART", "SWIFT", "PUPPET", "CONAN"),
    }
)
_GO_ONLY_SOURCES: Final = frozenset({"JFROG", "NEXUS", "HARBOR", "MOCK_JFROG"})
_MAX_CONFIG_BYTES: Final = 4 * 1024 * 1024
# Go's os.Expand: ${name} or $name (letters, digits, underscore).
_VARIABLE: Final = re.compile(r"\$(?:\{([^}]*)\}|([A-Za-z0-9_]+))")


class SourceType(enum.StrEnum):
    HAR = "HAR"
    HTTP = "HTTP"
    WEBDAV = "WEBDAV"

    @property
    def is_file_tree(self) -> bool:
        return self is not SourceType.HAR


class DateMatch(enum.StrEnum):
    ANY = "ANY"
    ALL = "ALL"


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointConfig:
    type: str
    endpoint: str
    credentials: Credentials = field(default_factory=Credentials)
    insecure: bool = False
    api_endpoint: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryPath:
    """``"reg"``, ``"org/reg"`` or ``"org/proj/reg"`` split into scope and identifier."""

    registry: str
    org: str | None = None
    project: str | None = None

    @classmethod
    def parse(cls, text: str, *, where: str) -> RegistryPath:
        parts = text.strip().strip("/").split("/")
        if len(parts) > 3 or any(not p for p in parts):
            raise ConfigError(f"{where}: expected 'registry', 'org/registry' or 'org/project/registry'")
        try:
            validate_registry_identifier(parts[-1])
            scope = [validate_scope_identifier(p, kind="org or project") for p in parts[:-1]]
        except UsageError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return cls(
            registry=parts[-1],
            org=scope[0] if scope else None,
            project=scope[1] if len(scope) > 1 else None,
        )

    def __str__(self) -> str:
        return "/".join(p for p in (self.org, self.project, self.registry) if p)


@dataclass(frozen=True, slots=True, kw_only=True)
class DateFilter:
    """Keep files created (or downloaded) on or after a cutoff; ``ANY``: one condition suffices,
    ``ALL``: every given condition must hold. Times are UTC epoch seconds."""

    match: DateMatch = DateMatch.ANY
    created_after: float | None = None
    downloaded_after: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MappingConfig:
    index: int
    artifact_type: str
    source_registry: str
    destination: RegistryPath
    include_patterns: tuple[str, ...] = ()
    exclude_patterns: tuple[str, ...] = ()
    date_filter: DateFilter | None = None

    def __str__(self) -> str:
        return f"mappings[{self.index}] ({self.source_registry} → {self.destination})"


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationConfig:
    source: EndpointConfig
    destination: EndpointConfig
    mappings: tuple[MappingConfig, ...]
    concurrency: int = DEFAULT_CONCURRENCY
    overwrite: bool = False
    dry_run: bool = False
    summary: bool = False
    version: str | None = None

    @property
    def source_type(self) -> SourceType:
        return SourceType(self.source.type)


# -- reading -------------------------------------------------------------------------------------


def expand_variables(text: str, environ: Mapping[str, str]) -> str:
    """``${VAR}`` / ``$VAR`` → the variable's value, or "" when unset (Go's ``os.Expand``)."""
    return _VARIABLE.sub(lambda m: environ.get(m.group(1) or m.group(2) or "", ""), text)


def load_config(path: Path, environ: Mapping[str, str]) -> MigrationConfig:
    """Read, expand and validate the config file at ``path``."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read migration config {str(path)!r}: {exc.strerror or exc}") from None
    if len(raw) > _MAX_CONFIG_BYTES:
        raise ConfigError(f"migration config {str(path)!r} is larger than 4 MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"migration config {str(path)!r} is not UTF-8 text") from None
    return parse_config(text, environ, name=str(path))


def parse_config(text: str, environ: Mapping[str, str], *, name: str = "config") -> MigrationConfig:
    try:
        document = yaml.safe_load(expand_variables(text, environ))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{name}: {problem}{where}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{name}: expected a YAML mapping with source, destination and mappings")
    return _Reader(name).config(document)


class _Reader:
    """Turns the parsed YAML into the typed config; every error names the field it is about."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"{self.name}: {where}: {message}")

    def mapping_of(self, value: object, where: str, allowed: Sequence[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, "expected a mapping")
        for key in value:
            if key not in allowed:
                raise self.fail(where, f"unknown key {key!r} (expected one of: {', '.join(allowed)})")
        return value

    def string(self, value: object, where: str, *, required: bool = False) -> str | None:
        if value is None or value == "":
            if required:
                raise self.fail(where, "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.fail(where, "expected a string")
        return str(value)

    def flag(self, value: object, where: str) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.fail(where, "expected true or false")
        return value

    def strings(self, value: object, where: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(where, "expected a list of non-empty strings")
        return tuple(v.strip() for v in value)

    def config(self, doc: dict[str, Any]) -> MigrationConfig:
        doc = self.mapping_of(
            doc,
            "top level",
            ("version", "concurrency", "overwrite", "dryRun", "summary", "source", "destination", "mappings"),
        )
        concurrency = doc.get("concurrency")
        if concurrency is None:
            concurrency = DEFAULT_CONCURRENCY
        elif (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 1024
        ):
            raise self.fail("concurrency", f"must be a whole number from 1 to 1024, got {concurrency!r}")
        if "source" not in doc:
            raise self.fail("source", "is required")
        source = self.endpoint(doc["source"], "source", destination=False)
        if "destination" not in doc:
            raise self.fail("destination", "is required")
        destination = self.endpoint(doc["destination"], "destination", destination=True)
        raw_mappings = doc.get("mappings")
        if not isinstance(raw_mappings, list) or not raw_mappings:
            raise self.fail("mappings", "at least one mapping is required")
        mappings = tuple(self.mapping(m, i, SourceType(source.type)) for i, m in enumerate(raw_mappings))
        return MigrationConfig(
            source=source,
            destination=destination,
            mappings=mappings,
            concurrency=concurrency,
            overwrite=self.flag(doc.get("overwrite"), "overwrite"),
            dry_run=self.flag(doc.get("dryRun"), "dryRun"),
            summary=self.flag(doc.get("summary"), "summary"),
            version=self.string(doc.get("version"), "version"),
        )

    def endpoint(self, value: object, where: str, *, destination: bool) -> EndpointConfig:
        allowed = ["endpoint", "type", "credentials", "insecure"]
        if destination:
            allowed.append("apiEndpoint")
        doc = self.mapping_of(value, where, allowed)
        kind = (self.string(doc.get("type"), f"{where}.type", required=True) or "").strip().upper()
        if destination and kind != "HAR":
            raise self.fail(f"{where}.type", f"{kind} is not supported (the destination must be HAR)")
        if not destination and kind not in SourceType.__members__:
            if kind in _GO_ONLY_SOURCES:
                raise self.fail(
                    f"{where}.type", f"{kind} sources are not supported yet (supported: HAR, HTTP, WEBDAV)"
                )
            raise self.fail(f"{where}.type", f"unknown source type {kind!r} (supported: HAR, HTTP, WEBDAV)")
        endpoint = self.url(doc.get("endpoint"), f"{where}.endpoint", required=True)
        api_endpoint = self.url(doc.get("apiEndpoint"), f"{where}.apiEndpoint", required=False)
        creds = self.mapping_of(doc.get("credentials"), f"{where}.credentials", ("username", "password"))
        username = self.string(creds.get("username"), f"{where}.credentials.username")
        password = self.string(creds.get("password"), f"{where}.credentials.password")
        if username and not password:
            raise self.fail(f"{where}.credentials", "a username needs a password")
        # A HAR destination needs a key unless hc's own login provides one (checked when connecting).
        return EndpointConfig(
            type=kind,
            endpoint=endpoint or "",
            api_endpoint=api_endpoint,
            credentials=Credentials(username=username, password=password),
            insecure=self.flag(doc.get("insecure"), f"{where}.insecure"),
        )

    def url(self, value: object, where: str, *, required: bool) -> str | None:
        text = self.string(value, where, required=required)
        if text is None:
            return None
        text = text.strip()
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise self.fail(where, f"expected an http:// or https:// URL, got {text!r}")
        if parts.query or parts.fragment:
            raise self.fail(where, "a URL with a query or fragment is not an endpoint")
        return text.rstrip("/")

    def mapping(self, value: object, index: int, source_type: SourceType) -> MappingConfig:
        where = f"mappings[{index}]"
        doc = self.mapping_of(
            value,
            where,
            (
                "artifactType",
                "sourceRegistry",
                "destinationRegistry",
                "includePatterns",
                "excludePatterns",
                "sourcePackageHostname",
                "dateFilter",
            ),
        )
        kind = (self.string(doc.get("artifactType"), f"{where}.artifactType", required=True) or "").upper()
        if kind not in _KNOWN_ARTIFACT_TYPES:
            raise self.fail(f"{where}.artifactType", f"unknown artifact type {kind!r}")
        if kind not in SUPPORTED_ARTIFACT_TYPES:
            raise self.fail(
                f"{where}.artifactType",
                f"{kind} is not supported yet (supported: {', '.join(SUPPORTED_ARTIFACT_TYPES)})",
            )
        source = self.string(doc.get("sourceRegistry"), f"{where}.sourceRegistry", required=True) or ""
        if source_type is SourceType.HAR:
            RegistryPath.parse(source, where=f"{self.name}: {where}.sourceRegistry")
        else:
            source = _tree_prefix(source, lambda msg: self.fail(f"{where}.sourceRegistry", msg))
        dest_text = self.string(doc.get("destinationRegistry"), f"{where}.destinationRegistry", required=True)
        destination = RegistryPath.parse(dest_text or "", where=f"{self.name}: {where}.destinationRegistry")
        return MappingConfig(
            index=index,
            artifact_type=kind,
            source_registry=source,
            destination=destination,
            include_patterns=self.strings(doc.get("includePatterns"), f"{where}.includePatterns"),
            exclude_patterns=self.strings(doc.get("excludePatterns"), f"{where}.excludePatterns"),
            date_filter=self.date_filter(doc.get("dateFilter"), f"{where}.dateFilter"),
        )

    def date_filter(self, value: object, where: str) -> DateFilter | None:
        if value is None:
            return None
        doc = self.mapping_of(value, where, ("match", "createdAfter", "downloadedAfter"))
        match_text = (self.string(doc.get("match"), f"{where}.match") or "ANY").strip().upper()
        if match_text not in DateMatch.__members__:
            raise self.fail(f"{where}.match", f"must be ANY or ALL, got {match_text!r}")
        created = self.timestamp(doc.get("createdAfter"), f"{where}.createdAfter")
        downloaded = self.timestamp(doc.get("downloadedAfter"), f"{where}.downloadedAfter")
        if created is None and downloaded is None:
            raise self.fail(where, "needs createdAfter or downloadedAfter")
        return DateFilter(match=DateMatch(match_text), created_after=created, downloaded_after=downloaded)

    def timestamp(self, value: object, where: str) -> float | None:
        if value is None or value == "":
            return None
        # YAML itself turns an unquoted 2024-01-02T03:04:05Z into a datetime (or a date).
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            moment = datetime(value.year, value.month, value.day)
        elif isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                raise self.fail(
                    where, f"expected an RFC 3339 time like 2024-01-31T00:00:00Z, got {value!r}"
                ) from None
        else:
            raise self.fail(where, "expected an RFC 3339 time")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()


def _tree_prefix(text: str, fail: Any) -> str:
    """A file-tree source's registry is a directory under the endpoint: ``repo`` or ``a/b``, and
    ``/`` (or ``.``) for the endpoint's root. Returned without leading or trailing slashes."""
    cleaned = text.strip().strip("/")
    if cleaned in ("", "."):
        return ""
    segments = cleaned.split("/")
    for segment in segments:
        if segment in ("", ".", "..") or "\\" in segment or any(ord(ch) < 32 for ch in segment):
            raise fail(f"{text!r} is not a safe directory path")
    return "/".join(segments)
