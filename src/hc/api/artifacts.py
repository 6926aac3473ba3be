"""Artifact operations of the management API: listings (v1 and v3), bulk delete and copy.

``ArtifactClient`` shares a ``RegistryClient``'s session, key and retry policy, and sends what the
Go ``hc`` sends:

- ``hc artifact list`` / ``get``: ``GET v1 /spaces/{space}/+/artifacts?reg_identifier=…`` (one row per
  version), ``GET v1 /registry/{ref}/+/artifact/{a}/+/versions``;
- file listings: ``GET v3 /files?registry_id=<uuid>&version_id=<uuid>`` (exact sizes and all four
  digests, where v1 has rounded ``"1.00KB"`` sizes). v3 filters take UUIDs, so a name is first
  resolved through ``/registries``, ``/packages`` and ``/versions`` with ``search_term`` (a
  substring match: the exact name is picked out of the results);
- ``POST v3 /bulkdelete`` and ``POST v2 /copy`` (query only, no body).

File listings page by offset (``page=N``), so a file added while a listing walks its pages pushes
rows already seen onto the next page; ``iter_files`` drops a path it has already yielded. Offsets
cannot do better than that: a file deleted meanwhile can hide another, and with pages fetched
concurrently (the look-ahead) a file added meanwhile can push a row past a page already fetched. A
listing taken while the version changes is therefore not a snapshot (it never was: the Go CLI's
sequential walk misses rows on deletions); one taken after the change is exact.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from hc.api._http import NO_RETRY, proves_not_acted, with_retries
from hc.api.client import RegistryClient
from hc.api.pagination import CursorPage, NumberedPage, iter_cursor_pages, iter_numbered_pages
from hc.errors import Conflict, RemoteError, TransientError
from hc.protocol.models import (
    ArtifactV1,
    ArtifactVersionV1,
    BulkDeleteResult,
    FileV3,
    PackageV3,
    RegistryV3,
    VersionV3,
)
from hc.protocol.routes import V1Paths, V2Paths, V3Paths, path_escape

__all__ = ["ArtifactClient", "ListPage"]

_T = TypeVar("_T")

#: v1 page size when hc walks every page itself.
LIST_ALL_PAGE_SIZE: Final = 100
#: v3 page size for name lookups (a search may match many similar names).
LOOKUP_PAGE_SIZE: Final = 100
#: File-listing pages requested ahead of the one being read. A v3 page carries no page count, so
#: pages past the end may be asked for (at most this many, less for short listings: the window
#: grows as pages keep saying hasMore); 8 hides a WAN round trip behind the server's time per page.
FILES_LOOKAHEAD: Final = 8


@dataclass(frozen=True)
class ListPage(Generic[_T]):
    """One page of a v1 listing: items, 0-based ``index``, page ``count``, ``total`` items."""

    items: list[_T]
    index: int
    count: int
    total: int | None
    size: int | None


class ArtifactClient:
    """Artifact-level operations over a ``RegistryClient`` (its session, endpoint and retries)."""

    def __init__(self, client: RegistryClient) -> None:
        self._client = client
        self.endpoint = client.endpoint

    def __repr__(self) -> str:
        return f"ArtifactClient({self.endpoint!r})"

    # -- v1 listings ---------------------------------------------------------------------------

    async def list_artifacts_page(
        self,
        *,
        registries: Sequence[str] = (),
        search_term: str | None = None,
        page: int = 0,
        size: int = 10,
    ) -> ListPage[ArtifactV1]:
        """One page of ``GET v1 /spaces/{space}/+/artifacts`` (``reg_identifier`` repeated)."""
        params = [("reg_identifier", r) for r in registries]
        params.extend(_paging(page, size))
        if search_term:
            params.append(("search_term", search_term))
        path = V1Paths.space_artifacts.format(space_ref=path_escape(self.endpoint.space_ref))
        body = await self._client.request("GET", path, params=params)
        return _v1_page(body, "artifacts", ArtifactV1.from_json, page=page, what="artifact list")

    async def iter_artifacts(
        self,
        *,
        registries: Sequence[str] = (),
        search_term: str | None = None,
        page_size: int = LIST_ALL_PAGE_SIZE,
        lookahead: int = 8,
    ) -> AsyncIterator[ArtifactV1]:
        """Every artifact row (one per version), pages fetched concurrently and yielded in order."""

        async def fetch(index: int) -> ListPage[ArtifactV1]:
            return await self.list_artifacts_page(
                registries=registries, search_term=search_term, page=index, size=page_size
            )

        async for item in _all_numbered(fetch, lookahead=lookahead):
            yield item

    async def list_versions_page(
        self, registry: str, package: str, *, page: int = 0, size: int = 10
    ) -> ListPage[ArtifactVersionV1]:
        """One page of ``GET v1 /registry/{ref}/+/artifact/{package}/+/versions``."""
        path = V1Paths.artifact_versions.format(
            registry_ref=path_escape(self.endpoint.registry_ref(registry)), artifact=path_escape(package)
        )
        body = await self._client.request("GET", path, params=_paging(page, size))
        return _v1_page(body, "artifactVersions", ArtifactVersionV1.from_json, page=page, what="version list")

    async def iter_versions(
        self, registry: str, package: str, *, page_size: int = LIST_ALL_PAGE_SIZE, lookahead: int = 8
    ) -> AsyncIterator[ArtifactVersionV1]:
        async def fetch(index: int) -> ListPage[ArtifactVersionV1]:
            return await self.list_versions_page(registry, package, page=index, size=page_size)

        async for item in _all_numbered(fetch, lookahead=lookahead):
            yield item

    # -- v3 lookups and file listings ----------------------------------------------------------

    def _v3_scope(self) -> list[tuple[str, str]]:
        params = [("account_identifier", self.endpoint.account)]
        if self.endpoint.org:
            params.append(("org_identifier", self.endpoint.org))
        if self.endpoint.project:
            params.append(("project_identifier", self.endpoint.project))
        return params

    async def _v3_page(
        self,
        path: str,
        params: Sequence[tuple[str, str]],
        item: Callable[[Any], _T],
        *,
        page: int,
        size: int,
    ) -> CursorPage[_T]:
        query = [*self._v3_scope(), *params, ("page", str(page)), ("size", str(size))]
        body = await self._client.request("GET", path, params=query)
        raw = body.get("items") if isinstance(body, dict) else None
        if not isinstance(raw, list | None) or not isinstance(body, dict):
            raise RemoteError(f"unexpected answer to GET {path}: no 'items' list")
        items = [item(x) for x in raw or () if isinstance(x, dict)]
        # Paging is by our index (a server reporting another page number cannot loop us), and an
        # empty page ends the listing whatever hasMore says.
        return CursorPage(items, index=page, has_more=bool(body.get("hasMore")) and bool(raw))

    async def _find_exact(
        self,
        path: str,
        params: Sequence[tuple[str, str]],
        item: Callable[[Any], _T],
        matches: Callable[[_T], bool],
    ) -> _T | None:
        async def fetch(index: int) -> CursorPage[_T]:
            return await self._v3_page(path, params, item, page=index, size=LOOKUP_PAGE_SIZE)

        async with aclosing(iter_cursor_pages(fetch)) as pages:
            async for page in pages:
                for found in page.items:
                    if matches(found):
                        return found
        return None

    async def find_registry(self, name: str) -> RegistryV3 | None:
        """The registry named exactly ``name`` (visible from the endpoint's scope), or None."""
        return await self._find_exact(
            V3Paths.registries,
            [("search_term", name), ("scope", "ancestors")],
            RegistryV3.from_json,
            lambda r: r.name == name,
        )

    async def find_package(self, registry_id: str, name: str) -> PackageV3 | None:
        return await self._find_exact(
            V3Paths.packages,
            [("registry_ids", registry_id), ("search_term", name)],
            PackageV3.from_json,
            lambda p: p.name == name,
        )

    async def find_version(self, registry_id: str, package_id: str, name: str) -> VersionV3 | None:
        return await self._find_exact(
            V3Paths.versions,
            [("registry_ids", registry_id), ("package_ids", package_id), ("search_term", name)],
            VersionV3.from_json,
            lambda v: v.name == name and (not v.package_id or v.package_id == package_id),
        )

    async def iter_package_versions(self, registry_id: str, package_id: str) -> AsyncIterator[VersionV3]:
        """Every version of one package (v3, one page ahead)."""

        async def fetch(index: int) -> CursorPage[VersionV3]:
            return await self._v3_page(
                V3Paths.versions,
                [("registry_ids", registry_id), ("package_ids", package_id)],
                VersionV3.from_json,
                page=index,
                size=LOOKUP_PAGE_SIZE,
            )

        async with aclosing(iter_cursor_pages(fetch)) as pages:
            async for page in pages:
                for version in page.items:
                    if not version.package_id or version.package_id == package_id:
                        yield version

    async def iter_packages(
        self,
        registry_id: str,
        *,
        metadata: Sequence[tuple[str, str]] = (),
        search_term: str | None = None,
        page_size: int = LOOKUP_PAGE_SIZE,
    ) -> AsyncIterator[PackageV3]:
        """Every package of one registry (``GET v3 /packages?registry_ids``), page by page, one
        page fetched ahead; ``metadata`` pairs go out as ``metadata=k:v`` (the server filters)."""
        params = [("registry_ids", registry_id), *(("metadata", f"{k}:{v}") for k, v in metadata)]
        if search_term:
            params.append(("search_term", search_term))
        async for package in self._iter_v3(V3Paths.packages, params, PackageV3.from_json, page_size):
            yield package

    async def iter_registry_versions(
        self,
        registry_id: str,
        *,
        package_ids: Sequence[str] = (),
        metadata: Sequence[tuple[str, str]] = (),
        search_term: str | None = None,
        page_size: int = LOOKUP_PAGE_SIZE,
    ) -> AsyncIterator[VersionV3]:
        """Every version of one registry (or of ``package_ids`` in it), ``GET v3 /versions``, page
        by page; ``metadata`` pairs filter on the server (``metadata=k:v``, all must match)."""
        params = [("registry_ids", registry_id), *(("package_ids", p) for p in package_ids)]
        params.extend(("metadata", f"{k}:{v}") for k, v in metadata)
        if search_term:
            params.append(("search_term", search_term))
        async for version in self._iter_v3(V3Paths.versions, params, VersionV3.from_json, page_size):
            yield version

    async def _iter_v3(
        self, path: str, params: Sequence[tuple[str, str]], item: Callable[[Any], _T], page_size: int
    ) -> AsyncIterator[_T]:
        async def fetch(index: int) -> CursorPage[_T]:
            return await self._v3_page(path, params, item, page=index, size=page_size)

        async with aclosing(iter_cursor_pages(fetch)) as pages:
            async for page in pages:
                for found in page.items:
                    yield found

    async def files_page(
        self,
        *,
        registry_id: str,
        version_id: str,
        page: int = 0,
        size: int = 100,
        search_term: str | None = None,
    ) -> CursorPage[FileV3]:
        """One page of ``GET v3 /files?registry_id&version_id``."""
        params = [("registry_id", registry_id), ("version_id", version_id)]
        if search_term:
            params.append(("search_term", search_term))
        return await self._v3_page(V3Paths.files, params, FileV3.from_json, page=page, size=size)

    async def iter_files(
        self,
        *,
        registry_id: str,
        version_id: str,
        page_size: int = 100,
        search_term: str | None = None,
        lookahead: int = FILES_LOOKAHEAD,
        expected_count: int | None = None,
    ) -> AsyncIterator[FileV3]:
        """Every file of one version, each path once, streamed page by page in order (up to
        ``lookahead`` pages fetched concurrently ahead of the one being read). ``expected_count``
        (the version's ``fileCount``, when known) lets the look-ahead stop at the expected end
        instead of asking for a few empty pages past it."""

        async def fetch(index: int) -> CursorPage[FileV3]:
            return await self.files_page(
                registry_id=registry_id,
                version_id=version_id,
                page=index,
                size=page_size,
                search_term=search_term,
            )

        # Offset paging: a file added meanwhile (a push to this version) shifts rows already seen
        # onto a later page. The set of paths is this walk's memory cost: it holds the listing's
        # own path strings (which a caller that keeps the entries holds anyway) and adds ~32 bytes
        # of set per file, 32 MiB for a million files (measured): acceptable next to the entries
        # themselves. Keyed by path, not id: a path is what must appear once (a row listed again
        # with other digests was overwritten meanwhile; the first one stands).
        seen: set[str] = set()
        expected_pages = None if expected_count is None else -(-max(expected_count, 0) // max(page_size, 1))
        walk = iter_cursor_pages(fetch, lookahead=lookahead, expected_pages=expected_pages)
        async with aclosing(walk) as pages:
            async for page in pages:
                for file in page.items:
                    if file.path not in seen:
                        seen.add(file.path)
                        yield file

    # -- writes ----------------------------------------------------------------------------------

    async def bulk_delete(
        self, *, registry: str, packages: str, versions: str = "", force: bool = False, dry_run: bool
    ) -> BulkDeleteResult:
        """``POST v3 /bulkdelete`` with the Go CLI's body; a dry run only reports what matches.
        Sent once: a repeat after a lost answer would report "nothing matched" for what it deleted."""
        body = await self._client.request(
            "POST",
            V3Paths.bulkdelete,
            params=self._v3_scope(),
            json_body={
                "dryRun": dry_run,
                "force": force,
                "packages": packages,
                "registry": registry,
                "versions": versions,
            },
            retry=NO_RETRY,
        )
        data = body.get("data") if isinstance(body, dict) and isinstance(body.get("data"), dict) else body
        if not isinstance(data, dict):
            raise RemoteError("unexpected bulk delete answer from the server: not a JSON object")
        # Built field by field: a server's odd types (a null list, a count as a string) must not
        # reach the printing code.
        return BulkDeleteResult(
            dry_run=data.get("dryRun") is True,
            force=data.get("force") is True,
            registry=str(data.get("registry") or registry),
            pattern=str(data.get("pattern") or packages),
            version_pattern=str(data.get("versionPattern") or versions),
            total=_int(data.get("total"), 0),
            success=_int(data.get("success"), 0),
            failed=_int(data.get("failed"), 0),
            success_packages=_strings(data.get("successPackages")),
            failed_packages=_strings(data.get("failedPackages")),
            message=str(data.get("message") or ""),
        )

    async def copy_version(
        self,
        *,
        src_registry: str,
        package: str,
        version: str,
        dest_registry: str,
        artifact_type: str | None = None,
        artifact_key: Mapping[str, str] | None = None,
    ) -> None:
        """Server-side copy of one version into another registry (``POST v2 /copy``, query only)."""
        params = [
            ("account_identifier", self.endpoint.account),
            ("src_registry_identifier", src_registry),
            ("target_registry_identifier", dest_registry),
            ("src_artifact", package),
            ("src_version", version),
        ]
        if artifact_type:
            params.append(("artifact_type", artifact_type))
        params.extend(("filters", f"{k}:{v}") for k, v in (artifact_key or {}).items())
        # Retried on every transient failure, as the Go CLI (go-retryablehttp) does: a copy is
        # safe to repeat on a registry that treats a file already copied with the same bytes as
        # done (the embedded one does). But an attempt whose answer was lost (a reset, a timeout, a
        # 502 from a proxy after the registry acted) may have copied already, and a registry that
        # refuses to copy onto an existing version then answers 409. That 409 cannot tell our own
        # earlier attempt from a version someone else made, so it stays an error, one that says
        # so; after failures that prove the registry did not act (no connection, 429, 503), a 409
        # is a plain conflict.
        maybe_acted: list[TransientError] = []

        async def once() -> Any:
            try:
                return await self._client.request("POST", V2Paths.copy, params=params, retry=NO_RETRY)
            except TransientError as exc:
                if not proves_not_acted(exc):
                    maybe_acted.append(exc)
                raise
            except Conflict as exc:
                if not maybe_acted:
                    raise
                raise Conflict(
                    f"{exc}; an earlier attempt of this copy failed ({maybe_acted[-1]}) and may have "
                    f"copied {package}/{version} already: check registry {dest_registry!r}",
                    status=exc.status,
                ) from exc

        body = await with_retries(
            once, policy=self._client.retry_policy, what=f"copy {package}/{version} to {dest_registry}"
        )
        status = body.get("status") if isinstance(body, dict) else None
        if isinstance(status, str) and status.upper() in ("FAILURE", "ERROR"):
            raise RemoteError(f"the server could not copy {package}/{version}: status {status}")


def _paging(page: int, size: int) -> list[tuple[str, str]]:
    # As the Go CLI: size only when positive, page only when past the first.
    params = []
    if size > 0:
        params.append(("size", str(size)))
    if page > 0:
        params.append(("page", str(page)))
    return params


def _v1_page(body: Any, key: str, item: Callable[[Any], _T], *, page: int, what: str) -> ListPage[_T]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise RemoteError(f"unexpected {what} from the server: no 'data' object")
    raw = data.get(key) or []
    if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
        raise RemoteError(f"unexpected {what} from the server: {key!r} is not a list of objects")
    return ListPage(
        items=[item(x) for x in raw],
        index=_int(data.get("pageIndex"), page),
        count=_int(data.get("pageCount"), 1),
        total=_int(data.get("itemCount"), None),
        size=_int(data.get("pageSize"), None),
    )


async def _all_numbered(
    fetch: Callable[[int], Awaitable[ListPage[_T]]], *, lookahead: int
) -> AsyncIterator[_T]:
    async def numbered(index: int) -> NumberedPage[_T]:
        page = await fetch(index)
        return NumberedPage(page.items, index=index, count=page.count, total=page.total)

    async with aclosing(iter_numbered_pages(numbered, lookahead=lookahead)) as pages:
        async for page in pages:
            for item in page.items:
                yield item


def _int(value: object, default: Any) -> Any:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return default


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()
