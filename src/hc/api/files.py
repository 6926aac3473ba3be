"""Generic files over HTTP: ``HarnessRemote``, the transfer engine's ``Remote`` for one registry.

It satisfies ``hc.transfer.remote.Remote`` by shape only (``hc.api`` and ``hc.transfer`` are
siblings and may not import each other); ``tests/unit/test_api_files.py`` pins the match.

Wire mapping:

- ``put_file``  → ``PUT {pkg}/pkg/{acct}/{reg}/files/{package}/{version}/{path}`` (raw ``/`` between
  segments, as the Go CLI since 329d705), ``Content-Type: application/octet-stream``, an explicit
  ``Content-Length`` (the Go CLI sends chunked; a length lets the server refuse a short body), and
  ``X-Checksum-Md5/Sha1/Sha256/Sha512``. 200 and 201 (any 2xx) are success. ``overwrite`` adds
  ``X-Hc-Overwrite: true`` (an hc registry answers 409 to different bytes without it; Harness
  ignores the header).
- ``stat``      → ``HEAD`` of the same URL: size, ``X-Checksum-*`` digests, the
  ``Content-Disposition`` file name; ``None`` on 404.
- ``open_read`` → ``GET`` with ``Range`` and ``If-Range: "<sha256>"``; a 200 instead of a 206 means the
  whole file from byte 0 (``ReadStream.start == 0``). Downloads use the same raw-``/`` URL as
  uploads, as the ar_pkg spec describes the path ("include package/version as path segments");
  the Go CLI's pull sends it as one ``%2F``-escaped parameter instead (not checked against SaaS).
- ``list_files`` → ``GET v3 /files?registry_id&version_id`` page by page (names resolved to v3
  UUIDs once, then cached).

Every method makes one attempt and raises ``hc.errors`` (the engine's pacer retries); the session
is the command's, sized for its concurrency.
"""

from __future__ import annotations

import posixpath
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.message import Message
from email.utils import collapse_rfc2231_value
from typing import Any, Final, Protocol, cast
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from hc.api._filebody import RegionSource, SendfileBody, sends_regions
from hc.api._http import keep_credentials_home, map_http_errors, pkg_headers, raise_for_status, server_message
from hc.api.artifacts import ArtifactClient
from hc.api.batchread import BatchReader
from hc.api.batchwrite import BatchUploader
from hc.api.client import RegistryClient
from hc.errors import IntegrityError, NotFound, RemoteError, UsageError
from hc.protocol.batchread import BatchReadLimits
from hc.protocol.batchwrite import BatchWriteLimits
from hc.protocol.digest import ALGORITHMS, Checksums, hex_digest
from hc.protocol.files import FileLocation, FileRecord
from hc.protocol.models import FileV3
from hc.protocol.ranges import parse_content_range
from hc.protocol.routes import PkgPaths, generic_file_path, path_escape
from hc.protocol.uploads import BeginUpload, UploadCapabilities, UploadState, commit_query, part_content_range

__all__ = [
    "GenericFile",
    "HarnessRemote",
    "RemoteFeatures",
    "content_disposition_filename",
    "features_from_system_info",
]

#: Bodies up to this size are sent as one bytes object (one write) instead of a chunk stream.
_INLINE_BODY: Final = 256 * 1024
#: How much of a download body may wait in the client's buffer before reading from the socket
#: pauses (aiohttp pauses at twice this). aiohttp's 64 KiB default pauses and resumes the socket
#: every couple of reads on a fast link; each cycle costs loop work.
_READ_BUFSIZE: Final = 1024 * 1024
#: v3 /files page size: hc registries allow 1000 a page; Harness is asked for its usual 100.
_HC_PAGE_SIZE: Final = 1000
_DEFAULT_PAGE_SIZE: Final = 100
#: Same-origin 307/308 redirects of an upload that are followed (the body is re-opened each time).
_MAX_REDIRECTS: Final = 3
_CHECKSUM_HEADER: Final = {
    "md5": "X-Checksum-Md5",
    "sha1": "X-Checksum-Sha1",
    "sha256": "X-Checksum-Sha256",
    "sha512": "X-Checksum-Sha512",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteFeatures:
    """What the server can do beyond plain Harness (``Remote.capabilities``)."""

    upload_sessions: bool = False
    parallel_parts: bool = False
    ranged_reads: bool = True
    min_part_size: int = 0
    max_part_size: int | None = None
    #: a session may be opened without the sha256 (the commit's digest decides)
    digest_at_commit: bool = False
    #: the server is an hc registry (bigger listing pages, overwrite header understood)
    hc_server: bool = False
    #: digests an upload carries: all four for Harness (as the Go CLI), sha256 for an hc registry
    checksum_algorithms: tuple[str, ...] = ALGORITHMS
    #: an upload whose bytes miss its declared digests is refused, nothing stored (``verifiesChecksums``)
    verifies_checksums: bool = False
    #: batch reads (``hc.protocol.batchread``): files up to this size, this many to a request
    batch_read_max_size: int = 0
    batch_read_max_files: int = 0
    #: batch writes (``hc.protocol.batchwrite``): files up to this size, this many (and bytes) to a request
    batch_write_max_size: int = 0
    batch_write_max_files: int = 0
    batch_write_max_bytes: int = 0


def features_from_system_info(info: Mapping[str, Any] | None) -> RemoteFeatures:
    """Read the ``hc`` block of ``GET v3 /system/info``; a plain Harness answer has none."""
    block = info.get("hc") if isinstance(info, Mapping) else None
    if not isinstance(block, Mapping):
        return RemoteFeatures()
    sessions = UploadCapabilities.from_json(block)
    batch_reads = BatchReadLimits.from_json(block)
    batch_writes = BatchWriteLimits.from_json(block)
    return RemoteFeatures(
        upload_sessions=sessions.upload_sessions,
        parallel_parts=sessions.parallel_parts,
        min_part_size=sessions.min_part_size,
        max_part_size=sessions.max_part_size,
        digest_at_commit=sessions.digest_at_commit,
        ranged_reads=block.get("rangeRequests") is not False,
        hc_server=True,
        # An hc registry hashes md5/sha1/sha512 itself while storing; sha256 is what it verifies.
        checksum_algorithms=("sha256",),
        verifies_checksums=block.get("verifiesChecksums") is True,
        batch_read_max_size=batch_reads.max_file_size,
        batch_read_max_files=batch_reads.max_files,
        batch_write_max_size=batch_writes.max_file_size,
        batch_write_max_files=batch_writes.max_files,
        batch_write_max_bytes=batch_writes.max_bytes,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class GenericFile(FileRecord):
    """A file of a generic version as a listing or a HEAD describes it (``hc.transfer.FileEntry``)."""

    #: epoch milliseconds, when the listing says
    created_at: int | None = None
    #: the name a download offers (``Content-Disposition``), from a HEAD only; not yet sanitised
    filename: str | None = None


class _Session(Protocol):
    """An upload session state this remote returned (``hc.transfer.SessionState``)."""

    @property
    def id(self) -> str: ...


class _Source(Protocol):
    """A re-openable body of ``size`` bytes (``hc.transfer.ByteSource``)."""

    @property
    def size(self) -> int: ...
    def open(self) -> AsyncIterator[bytes]: ...


class _Download:
    """An open GET body (``hc.transfer.ReadStream``); errors while reading become ``hc.errors``."""

    __slots__ = ("_response", "_url", "etag", "start", "total_size")

    def __init__(
        self, response: aiohttp.ClientResponse, *, url: str, start: int, total_size: int | None
    ) -> None:
        self._response = response
        self._url = url
        self.start = start
        self.total_size = total_size
        self.etag = _strip_etag(response.headers.get("ETag"))

    async def _chunks(self) -> AsyncIterator[bytes]:
        # Each chunk as the socket delivered it: no re-slicing into fixed sizes, which joins (copies)
        # buffered chunks. HTTP chunk boundaries show up as empty chunks, skipped.
        with map_http_errors("GET", self._url):
            async for chunk, _ in self._response.content.iter_chunks():
                if chunk:
                    yield chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()


class HarnessRemote:
    """The engine's ``Remote`` for one generic (or raw) registry, over a command's HTTP session."""

    def __init__(
        self, client: RegistryClient, registry: str, *, features: RemoteFeatures | None = None
    ) -> None:
        self._client = client
        self._artifacts = ArtifactClient(client)
        self._session = client.session
        self._endpoint = client.endpoint
        self.registry = registry
        self._features = features or RemoteFeatures()
        self._page_size = _HC_PAGE_SIZE if self._features.hc_server else _DEFAULT_PAGE_SIZE
        self._registry_id: str | None = None
        self._package_ids: dict[str, str] = {}
        self._version_ids: dict[tuple[str, str], str] = {}
        self._url_prefixes: dict[tuple[str, str], str] = {}
        self._batch_reader: BatchReader | None = None
        self._batch_writers: dict[bool, BatchUploader] = {}  # by overwrite: it goes with the request

    @classmethod
    async def open(cls, client: RegistryClient, registry: str) -> HarnessRemote:
        """A remote whose capabilities come from the server's ``system/info`` (none if it fails)."""
        try:
            info = await client.system_info()
        except (NotFound, RemoteError):
            info = None
        return cls(client, registry, features=features_from_system_info(info))

    def __repr__(self) -> str:
        return f"HarnessRemote(registry={self.registry!r}, {self._endpoint!r})"

    @property
    def capabilities(self) -> RemoteFeatures:
        return self._features

    # -- names → v3 ids ----------------------------------------------------------------------

    async def registry_id(self) -> str:
        """The registry's v3 UUID; NotFound when it does not exist."""
        if self._registry_id is None:
            found = await self._artifacts.find_registry(self.registry)
            if found is None or not found.id:
                raise NotFound(f"registry {self.registry!r} not found")
            self._registry_id = found.id
        return self._registry_id

    # Only hits are cached: a package or version missing now may exist after this command's push.

    async def _package_id(self, package: str) -> str | None:
        if package not in self._package_ids:
            found = await self._artifacts.find_package(await self.registry_id(), package)
            if found is None or not found.id:
                return None
            self._package_ids[package] = found.id
        return self._package_ids[package]

    async def _version_id(self, package: str, version: str) -> str | None:
        key = (package, version)
        if key not in self._version_ids:
            package_id = await self._package_id(package)
            if package_id is None:
                return None
            found = await self._artifacts.find_version(await self.registry_id(), package_id, version)
            if found is None or not found.id:
                return None
            self._version_ids[key] = found.id
        return self._version_ids[key]

    async def version_exists(self, package: str, version: str) -> bool:
        return await self._version_id(package, version) is not None

    async def versions(self, package: str) -> AsyncIterator[str]:
        """The names of every version of ``package`` (none when the package does not exist)."""
        package_id = await self._package_id(package)
        if package_id is None:
            return
        async for version in self._artifacts.iter_package_versions(await self.registry_id(), package_id):
            if version.id:
                self._version_ids[(package, version.name)] = version.id
            yield version.name

    # -- Remote ------------------------------------------------------------------------------

    async def list_files(
        self, package: str, version: str, *, search_term: str | None = None
    ) -> AsyncIterator[GenericFile]:
        """Every file of one version, page by page; nothing when the package or version does not
        exist (NotFound when the registry does not). ``search_term`` narrows the listing to paths
        containing it."""
        version_id = await self._version_id(package, version)
        if version_id is None:
            return
        files = self._artifacts.iter_files(
            registry_id=await self.registry_id(),
            version_id=version_id,
            page_size=self._page_size,
            search_term=search_term,
        )
        async for file in files:
            yield _entry(file, package=package, version=version)

    async def files_page(
        self, package: str, version: str, *, page: int, size: int
    ) -> tuple[list[GenericFile], bool]:
        """One page of a version's files and whether another follows (empty if it does not exist)."""
        version_id = await self._version_id(package, version)
        if version_id is None:
            return [], False
        found = await self._artifacts.files_page(
            registry_id=await self.registry_id(), version_id=version_id, page=page, size=size
        )
        return [_entry(f, package=package, version=version) for f in found.items], found.has_more

    async def find_file(self, package: str, version: str, path: str) -> GenericFile | None:
        """The listing entry of one file (a narrowed listing, so its digests are the server's).
        The search is by base name, which matches whether a server searches names or paths."""
        async for entry in self.list_files(package, version, search_term=posixpath.basename(path)):
            if entry.path == path:
                return entry
        return None

    async def stat(self, location: FileLocation) -> GenericFile | None:
        url = self._url(location)
        with map_http_errors("HEAD", url):
            async with self._session.head(
                URL(url, encoded=True),
                headers=self._headers(),
                allow_redirects=True,
                middlewares=keep_credentials_home(),
            ) as response:
                if response.status == 404:
                    return None
                await raise_for_status(response)
                headers = response.headers

                def digest(algorithm: str) -> str | None:
                    return hex_digest(headers.get(_CHECKSUM_HEADER[algorithm]), algorithm)

                return GenericFile(
                    package=location.package,
                    version=location.version,
                    path=location.path,
                    size=response.content_length or 0,
                    # hc registries tag a file with its sha256; any other ETag is not a digest
                    sha256=digest("sha256") or hex_digest(_strip_etag(headers.get("ETag")), "sha256"),
                    md5=digest("md5"),
                    sha1=digest("sha1"),
                    sha512=digest("sha512"),
                    filename=content_disposition_filename(headers.get("Content-Disposition")),
                )

    @asynccontextmanager
    async def open_read(
        self,
        location: FileLocation,
        *,
        offset: int = 0,
        length: int | None = None,
        if_range: str | None = None,
    ) -> AsyncIterator[_Download]:
        url = self._url(location)
        headers = self._headers()
        if offset > 0 or length is not None:
            last = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{last}"
            if if_range:
                headers["If-Range"] = if_range if if_range.startswith(('"', "W/")) else f'"{if_range}"'
        with map_http_errors("GET", url):
            async with self._session.get(
                URL(url, encoded=True),
                headers=headers,
                read_bufsize=_READ_BUFSIZE,
                middlewares=keep_credentials_home(),
            ) as response:
                if response.status == 416:
                    raise IntegrityError(f"{location.path}: the requested bytes are beyond the file's end")
                await raise_for_status(response)
                start, total = 0, response.content_length
                if response.status == 206:
                    start, total = _content_range(response.headers.get("Content-Range"), location.path)
                yield _Download(response, url=url, start=start, total_size=total)

    async def read_whole(self, location: FileLocation, *, stall_timeout: float) -> bytes:
        """One small file, fetched in a batch with the others being read meanwhile (only when the
        server advertises batch reads: ``capabilities.batch_read_max_size``)."""
        reader = self._batch_reader
        if reader is None:
            reader = BatchReader(
                self._session,
                self._registry_url(PkgPaths.batch_read),
                self._headers,
                max_files=self._features.batch_read_max_files,
                stall_timeout=stall_timeout,
            )
            self._batch_reader = reader
        return await reader.read(self._filepath(location))

    async def write_whole(
        self,
        location: FileLocation,
        data: bytes,
        *,
        checksums: Checksums,
        overwrite: bool,
        stall_timeout: float,
    ) -> None:
        """One small file, uploaded in a batch with the others being pushed meanwhile (only when the
        server advertises batch writes: ``capabilities.batch_write_max_size``)."""
        writer = self._batch_writers.get(overwrite)
        if writer is None:
            features = self._features
            writer = BatchUploader(
                self._session,
                self._registry_url(PkgPaths.batch_write),
                self._headers,
                max_files=features.batch_write_max_files,
                max_bytes=features.batch_write_max_bytes,
                overwrite=overwrite,
                stall_timeout=stall_timeout,
            )
            self._batch_writers[overwrite] = writer
        await writer.write(self._filepath(location), data, sha256=checksums.sha256)

    def _filepath(self, location: FileLocation) -> str:
        """The file as the files endpoint's path names it (unescaped)."""
        return f"{location.package}/{location.version}/{location.path}"

    async def put_file(
        self, location: FileLocation, source: _Source, *, checksums: Checksums, overwrite: bool
    ) -> None:
        url = self._url(location)
        headers = self._headers()
        headers.update(checksums.headers())
        headers["Content-Type"] = "application/octet-stream"
        headers["Content-Length"] = str(source.size)
        if overwrite:
            headers["X-Hc-Overwrite"] = "true"
        for _ in range(_MAX_REDIRECTS + 1):
            body = await _body(source, url)
            with map_http_errors("PUT", url):
                async with self._session.put(
                    URL(url, encoded=True), data=body, headers=headers, allow_redirects=False
                ) as response:
                    if response.status in (307, 308):
                        url = self._redirect(url, response.headers.get("Location"))
                        continue
                    await _raise_for_upload_status(response, location.path)
                    if not 200 <= response.status < 300:
                        raise RemoteError(f"PUT {location.path}: unexpected HTTP {response.status}")
                    await response.read()  # drain, so the connection goes back to the pool
                    return
        raise RemoteError(f"PUT {location.path}: too many redirects")

    # Upload sessions (hc.protocol.uploads): only called when ``capabilities.upload_sessions``.
    # A session whose file is already stored with these bytes comes back complete with an empty
    # id: the engine then sends no part, and commit and abort have nothing to do.
    # No checksums (``digest_at_commit``): the sha256 is left empty, the commit's digest decides.
    async def begin_upload(
        self, location: FileLocation, *, size: int, checksums: Checksums | None
    ) -> UploadState:
        url = self._uploads_url()
        body = BeginUpload(
            package=location.package,
            version=location.version,
            path=location.path,
            size=size,
            sha256=checksums.sha256 if checksums is not None else "",
        ).to_json()
        with map_http_errors("POST", url):
            async with self._session.post(
                URL(url, encoded=True), json=body, headers=self._headers(), allow_redirects=False
            ) as response:
                await raise_for_status(response)
                data = _data(await _json(response))
        if data.get("outcome") == "unchanged" and not data.get("id"):
            return UploadState(id="", size=size, received=((0, size),) if size else ())
        return UploadState.from_json(data)

    async def resume_upload(self, location: FileLocation, session_id: str) -> UploadState:
        if not session_id:
            raise NotFound("the upload needed no session")
        url = self._upload_url(session_id)
        with map_http_errors("GET", url):
            async with self._session.get(
                URL(url, encoded=True), headers=self._headers(), middlewares=keep_credentials_home()
            ) as response:
                await raise_for_status(response)
                return UploadState.from_json(_data(await _json(response)))

    async def put_part(
        self, location: FileLocation, session: _Session, *, offset: int, source: _Source
    ) -> UploadState:
        url = self._upload_url(session.id)
        headers = self._headers()
        headers["Content-Type"] = "application/octet-stream"
        headers["Content-Length"] = str(source.size)
        headers["Content-Range"] = part_content_range(offset, offset + source.size, _session_size(session))
        with map_http_errors("PATCH", url):
            async with self._session.patch(
                URL(url, encoded=True),
                data=await _body(source, url),
                headers=headers,
                middlewares=keep_credentials_home(),
            ) as response:
                await raise_for_status(response)
                return UploadState.from_json(_data(await _json(response)))

    async def commit_upload(
        self, location: FileLocation, session: _Session, *, checksums: Checksums, overwrite: bool
    ) -> None:
        if not session.id:
            return
        url = self._upload_url(session.id)
        query = commit_query(checksums.sha256, overwrite=overwrite)
        with map_http_errors("PUT", url):
            async with self._session.put(
                URL(url, encoded=True),
                params=query,
                headers=self._headers(),
                middlewares=keep_credentials_home(),
            ) as response:
                await _raise_for_upload_status(response, location.path)
                await response.read()

    async def abort_upload(self, location: FileLocation, session: _Session) -> None:
        if not session.id:
            return
        url = self._upload_url(session.id)
        with map_http_errors("DELETE", url):
            async with self._session.delete(
                URL(url, encoded=True), headers=self._headers(), middlewares=keep_credentials_home()
            ) as response:
                if response.status != 404:
                    await raise_for_status(response)

    # -- plumbing ----------------------------------------------------------------------------

    def _url(self, location: FileLocation) -> str:
        # Everything up to the file's own path is the same for every file of a version: escape it
        # once (a push of many small files builds thousands of these).
        key = (location.package, location.version)
        prefix = self._url_prefixes.get(key)
        if prefix is None:
            prefix = self._endpoint.pkg_url + generic_file_path(
                self._endpoint.account, self.registry, location.package, location.version, ""
            )
            self._url_prefixes[key] = prefix
        return prefix + "/".join(path_escape(segment) for segment in location.path.split("/"))

    def _registry_url(self, template: str) -> str:
        """A package-endpoint URL of this registry: ``template`` is one of ``PkgPaths``'."""
        return self._endpoint.pkg_url + template.format(
            account=path_escape(self._endpoint.account), registry=path_escape(self.registry)
        )

    def _uploads_url(self) -> str:
        return self._registry_url(PkgPaths.uploads)

    def _upload_url(self, session_id: str) -> str:
        return self._uploads_url() + "/" + path_escape(session_id)

    def _headers(self) -> dict[str, str]:
        # The Go CLI's generic push sends x-api-key always, plus the raw JWT when it is one.
        headers = {"x-api-key": self._endpoint.token}
        headers.update(pkg_headers(self._endpoint.token))
        return headers

    def _redirect(self, url: str, location: str | None) -> str:
        """Follow a redirect only to the same origin: the key must not travel to another host."""
        if not location:
            raise RemoteError("the server redirected an upload without a Location")
        target = str(URL(url, encoded=True).join(URL(location, encoded=True)))
        here, there = urlsplit(url), urlsplit(target)
        if (here.scheme, here.netloc) != (there.scheme, there.netloc):
            raise RemoteError(f"the server redirected an upload to another host ({there.netloc}); refused")
        return target


async def _raise_for_upload_status(response: aiohttp.ClientResponse, path: str) -> None:
    """Like raise_for_status, but a 400 ``CHECKSUM_MISMATCH`` (the registry received other bytes
    than the digests promise: corrupted on the way) is an IntegrityError, which the engine retries
    by sending the file again; anything else a server refuses with 400 is final."""
    if response.status == 400:
        raw = await response.content.read(64 * 1024)
        if b"CHECKSUM_MISMATCH" in raw:
            raise IntegrityError(f"{path}: the registry received different bytes than were sent")
        raise RemoteError(f"{path}: upload refused (HTTP 400): {server_message(raw) or 'no reason given'}")
    await raise_for_status(response)


async def _json(response: aiohttp.ClientResponse) -> Any:
    """The decoded body; RemoteError (not a bare ValueError, an "internal error") when it is not JSON."""
    try:
        return await response.json(content_type=None)
    except ValueError:
        raise RemoteError(
            f"{response.method} {response.url.path}: the registry did not answer with JSON"
        ) from None


def _data(body: Any) -> Mapping[str, Any]:
    """The ``data`` object of a ``{"status", "data"}`` answer; RemoteError when there is none."""
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, Mapping):
        raise RemoteError("the registry's answer has no data object")
    return data


def _session_size(session: _Session) -> int:
    size = getattr(session, "size", None)
    if not isinstance(size, int):
        raise RemoteError("upload session state without a size")
    return size


async def _body(source: _Source, url: str) -> bytes | AsyncIterator[bytes] | SendfileBody:
    """Small bodies as one bytes object (fewer writes); larger ones sent from the file by the kernel
    over plain HTTP when the source is a file (``_filebody``), else streamed from the source."""
    if source.size <= _INLINE_BODY:
        return b"".join([chunk async for chunk in source.open()])
    if sends_regions(source) and url.startswith("http://"):
        return SendfileBody(cast(RegionSource, source))
    return source.open()


def _entry(file: FileV3, *, package: str, version: str) -> GenericFile:
    try:
        size = int(str(file.size).strip())
    except ValueError:
        raise RemoteError(f"the listing gave {file.path!r} a size of {file.size!r}") from None
    return GenericFile(
        package=package,
        version=version,
        # v3 paths are rooted inside the version ("/dir/a.txt"); the engine wants "dir/a.txt".
        path=str(file.path or file.name).lstrip("/"),
        size=size,
        sha256=hex_digest(file.sha256, "sha256"),
        md5=hex_digest(file.md5, "md5"),
        sha1=hex_digest(file.sha1, "sha1"),
        sha512=hex_digest(file.sha512, "sha512"),
        created_at=file.created_at if isinstance(file.created_at, int) else None,
    )


def _strip_etag(value: str | None) -> str | None:
    if not value:
        return None
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    return text.strip('"') or None


def _content_range(value: str | None, path: str) -> tuple[int, int | None]:
    if not value:
        raise RemoteError(f"{path}: a partial answer (206) without Content-Range")
    try:
        rng, total = parse_content_range(value)
    except UsageError as exc:
        raise RemoteError(f"{path}: {exc}") from None
    if rng is None:
        raise RemoteError(f"{path}: a partial answer with no range ({value!r})")
    return rng.start, total


def content_disposition_filename(value: str | None) -> str | None:
    """The file name a ``Content-Disposition`` offers (``filename*`` preferred), or None.

    Only parsed here: the name comes from a server, so the caller must sanitise it before it
    touches the disk (``hc.transfer.sanitize_relpath``).
    """
    if not value:
        return None
    message = Message()
    message["Content-Disposition"] = value
    plain: str | None = None
    for key, param in message.get_params(header="Content-Disposition", failobj=[]):
        if key.lower() != "filename":
            continue
        if isinstance(param, tuple):  # RFC 2231 filename*=UTF-8''…, preferred over the plain form
            name = collapse_rfc2231_value(param).strip()
            if name:
                return name
        elif plain is None:
            # Go's hc takes the text after "filename=" with quotes and spaces trimmed.
            plain = str(param).strip().strip('"').strip()
    return plain or None
