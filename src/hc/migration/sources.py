"""Migration sources: what versions a source registry holds, what files each has, and a Remote to
read them through.

- ``HarSource``: a Harness or hc registry. Versions come from one v3 ``/versions?registry_ids=<uuid>``
  listing (every package at once, as the Go CLI's existing-index build does), files from v3
  ``/files`` per version (exact sizes, all four digests, ``createdAt``); bytes from the generic files
  endpoint through ``HarnessRemote``.
- ``TreeSource``: a plain HTTP/WebDAV tree (``WebDavRemote``). Under the mapping's
  ``sourceRegistry`` directory, GENERIC reads ``<package>/<version>/<path…>``: the first directory
  level is the package, the second the version, everything below the version's files (nested
  directories kept). Files directly in the root or in a package directory have no version and are
  reported as unplaceable (a warning, not migrated). RAW takes every file under the directory,
  its path kept as is. Sizes are ``getcontentlength``; the time is ``getlastmodified`` (WebDAV has no
  creation time, so ``createdAfter`` compares it); there are no digests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Final, Protocol

from hc.api import RegistryClient, iter_cursor_pages
from hc.api.files import HarnessRemote
from hc.api.pagination import CursorPage
from hc.api.webdav import RAW_PACKAGE, RAW_VERSION, WebDavRemote
from hc.errors import RemoteError
from hc.migration.plan import SourceEntry
from hc.protocol.models import VersionV3
from hc.protocol.routes import V3Paths
from hc.transfer import Remote

__all__ = ["HarSource", "MigrationSource", "TreeSource", "VersionRef"]

_VERSION_PAGE: Final = 100


@dataclass(frozen=True, slots=True)
class VersionRef:
    package: str
    version: str


class MigrationSource(Protocol):
    """A source registry as the planner sees it."""

    @property
    def remote(self) -> Remote: ...
    @property
    def registry(self) -> str: ...
    #: whether files carry a last-download time (``dateFilter.downloadedAfter``)
    @property
    def downloads_known(self) -> bool: ...
    def versions(self) -> AsyncIterator[VersionRef]: ...
    def files(self, ref: VersionRef) -> AsyncIterator[SourceEntry]: ...
    def url(self, entry: SourceEntry) -> str | None: ...


class HarSource:
    def __init__(
        self, client: RegistryClient, remote: HarnessRemote, *, raw: bool, read_remote: Remote
    ) -> None:
        self._client = client
        self._listing = remote
        self._raw = raw
        self.remote = read_remote
        self.registry = remote.registry
        self.downloads_known = False

    async def versions(self) -> AsyncIterator[VersionRef]:
        if self._raw:
            yield VersionRef(RAW_PACKAGE, RAW_VERSION)
            return
        registry_id = await self._listing.registry_id()
        endpoint = self._client.endpoint

        async def fetch(index: int) -> CursorPage[VersionV3]:
            params = [("account_identifier", endpoint.account)]
            if endpoint.org:
                params.append(("org_identifier", endpoint.org))
            if endpoint.project:
                params.append(("project_identifier", endpoint.project))
            params += [("registry_ids", registry_id), ("page", str(index)), ("size", str(_VERSION_PAGE))]
            body = await self._client.request("GET", V3Paths.versions, params=params)
            raw = body.get("items") if isinstance(body, dict) else None
            if not isinstance(raw, list):
                raise RemoteError(f"unexpected answer to GET {V3Paths.versions}: no 'items' list")
            items = [VersionV3.from_json(x) for x in raw if isinstance(x, dict)]
            return CursorPage(items, index=index, has_more=bool(body.get("hasMore")) and bool(raw))

        async with aclosing(iter_cursor_pages(fetch)) as pages:
            async for page in pages:
                for version in page.items:
                    if version.package_name and version.name and version.file_count != 0:
                        yield VersionRef(version.package_name, version.name)

    async def files(self, ref: VersionRef) -> AsyncIterator[SourceEntry]:
        async for entry in self._listing.list_files(ref.package, ref.version):
            yield SourceEntry(
                package=ref.package,
                version=ref.version,
                path=entry.path,
                size=entry.size,
                sha256=entry.sha256,
                md5=entry.md5,
                sha1=entry.sha1,
                sha512=entry.sha512,
                modified=entry.created_at / 1000 if entry.created_at is not None else None,
            )

    def url(self, entry: SourceEntry) -> str | None:
        return None


class TreeSource:
    def __init__(self, remote: WebDavRemote, *, warn: Callable[[str], None]) -> None:
        self._dav = remote
        self.remote = remote
        self.registry = remote.root or "/"
        self.downloads_known = False
        self._warn = warn

    async def versions(self) -> AsyncIterator[VersionRef]:
        if self._dav.raw:
            yield VersionRef(RAW_PACKAGE, RAW_VERSION)
            return
        stray = 0
        for package in await self._dav.children():
            if not package.is_dir:
                stray += 1
                continue
            for version in await self._dav.children(package.name):
                if version.is_dir:
                    yield VersionRef(package.name, version.name)
                else:
                    stray += 1
        if stray:
            where = self._dav.root or "the endpoint's root"
            self._warn(
                f"{stray} file(s) directly under {where} or a package directory have no version "
                "(expected <package>/<version>/<file>) and are not migrated"
            )

    async def files(self, ref: VersionRef) -> AsyncIterator[SourceEntry]:
        async for entry in self._dav.list_files(ref.package, ref.version):
            yield SourceEntry(
                package=ref.package,
                version=ref.version,
                path=entry.path,
                size=entry.size,
                modified=entry.modified,
            )

    def url(self, entry: SourceEntry) -> str | None:
        return self._dav.url(entry)
