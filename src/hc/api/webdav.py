"""A plain HTTP / WebDAV file tree as a migration source (read-only ``Remote``).

Wire use:

- directories are listed with ``PROPFIND`` and ``Depth: 1`` (``Depth: infinity`` is disabled on many
  servers, nginx's dav-ext module included), one request per directory, walked depth-first in
  name order so a listing is stable from one run to the next;
- a file's size is its ``getcontentlength``, its time ``getlastmodified`` (RFC 1123, one-second
  resolution); a WebDAV server offers no digests, so entries carry none and the bytes are hashed as
  they stream through;
- bytes come from ``GET`` (with ``Range`` when asked; ``If-Range`` with the server's ETag).

Layout: ``WebDavRemote`` maps the Remote's ``package/version/path`` onto
``{endpoint}/{root}/{package}/{version}/{path…}``. With ``raw=True`` (RAW registries) the location is
``default/default/<uri>`` and maps to ``{endpoint}/{root}/{uri}``.

Everything from the server (hrefs, names, sizes) is checked before use: a child must sit directly
under the directory that was listed, and its name must be one safe path segment.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import posixpath
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit

import aiohttp
from yarl import URL

from hc.api._http import (
    RetryPolicy,
    keep_credentials_home,
    map_http_errors,
    open_session,
    raise_for_status,
    remember_secret,
    with_retries,
)
from hc.api.files import RemoteFeatures
from hc.errors import IntegrityError, NotFound, RemoteError
from hc.protocol.files import FileLocation, FileRecord

__all__ = [
    "RAW_PACKAGE",
    "RAW_VERSION",
    "DavEntry",
    "DavFile",
    "WebDavClient",
    "WebDavRemote",
    "open_webdav",
]

#: A RAW registry's files live in one package and version of this name (as in the hc registry).
RAW_PACKAGE: Final = "default"
RAW_VERSION: Final = "default"

_DAV: Final = "{DAV:}"
#: A PROPFIND answer larger than this is refused (a directory of ~100 000 entries fits).
_MAX_PROPFIND_BYTES: Final = 64 * 1024 * 1024
_READ_CHUNK: Final = 256 * 1024
_PROPFIND_BODY: Final = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<D:propfind xmlns:D="DAV:"><D:prop>'
    b"<D:resourcetype/><D:getcontentlength/><D:getlastmodified/><D:getetag/>"
    b"</D:prop></D:propfind>"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DavEntry:
    """One PROPFIND answer entry: its name in the listed directory, kind, size and time."""

    name: str
    is_dir: bool
    size: int = 0
    #: epoch seconds (``getlastmodified``), None when the server gave none
    modified: float | None = None
    etag: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DavFile(FileRecord):
    """A file as ``WebDavRemote.list_files`` describes it (``hc.transfer.FileEntry``, no digests)."""

    modified: float | None = None
    etag: str | None = None


class _Download:
    """An open GET body (``hc.transfer.ReadStream``)."""

    __slots__ = ("_response", "_url", "etag", "start", "total_size")

    def __init__(
        self, response: aiohttp.ClientResponse, *, url: str, start: int, total_size: int | None
    ) -> None:
        self._response = response
        self._url = url
        self.start = start
        self.total_size = total_size
        etag = response.headers.get("ETag")
        self.etag = etag.strip() if etag else None

    async def _chunks(self) -> AsyncIterator[bytes]:
        with map_http_errors("GET", self._url):
            async for chunk in self._response.content.iter_chunked(_READ_CHUNK):
                yield chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()


class WebDavClient:
    """PROPFIND and GET against one WebDAV server (the command's session and credentials)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        headers: dict[str, str],
        retry: RetryPolicy | None = None,
    ) -> None:
        self._session = session
        parts = urlsplit(base_url.rstrip("/"))
        self._origin = f"{parts.scheme}://{parts.netloc}"
        # The endpoint's own path (already URL-encoded as the user wrote it), without a trailing /.
        self._base_path = unquote(parts.path.rstrip("/"))
        self._headers = headers
        self._retry = retry or RetryPolicy()

    def __repr__(self) -> str:
        return f"WebDavClient({self._origin + self._base_path!r})"

    def url(self, path: str, *, directory: bool = False) -> str:
        """The URL of ``path`` (relative to the endpoint, ``/``-separated, not escaped)."""
        full = posixpath.join(self._base_path + "/", path) if path else self._base_path + "/"
        if directory and not full.endswith("/"):
            full += "/"
        return self._origin + quote(full, safe="/-_.~!$&'()*+,;=:@")

    async def list_dir(self, path: str) -> list[DavEntry]:
        """The children of directory ``path`` (one ``PROPFIND``, ``Depth: 1``), sorted by name.
        NotFound when the directory does not exist; transient failures are retried."""
        return await with_retries(lambda: self._list_dir(path), policy=self._retry, what=f"PROPFIND {path}")

    async def _list_dir(self, path: str) -> list[DavEntry]:
        url = self.url(path, directory=True)
        headers = {**self._headers, "Depth": "1", "Content-Type": "application/xml; charset=utf-8"}
        with map_http_errors("PROPFIND", url):
            async with self._session.request(
                "PROPFIND",
                URL(url, encoded=True),
                data=_PROPFIND_BODY,
                headers=headers,
                middlewares=keep_credentials_home(),
            ) as response:
                if response.status == 404:
                    raise NotFound(f"{url}: no such directory on the WebDAV server")
                await raise_for_status(response)
                if response.status != 207:
                    raise RemoteError(
                        f"PROPFIND {url}: expected a 207 multistatus answer, got HTTP {response.status}"
                        " (is WebDAV enabled on this server?)"
                    )
                body = bytearray()
                async for chunk in response.content.iter_chunked(_READ_CHUNK):
                    body += chunk
                    if len(body) > _MAX_PROPFIND_BYTES:
                        raise RemoteError(f"PROPFIND {url}: the answer is larger than 64 MiB")
        listed = urlsplit(url).path
        entries = parse_multistatus(bytes(body), listed_path=unquote(listed), where=url)
        return sorted(entries, key=lambda e: e.name)

    async def stat(self, path: str) -> DavEntry | None:
        """One file's entry (``HEAD``); None on 404."""
        url = self.url(path)
        with map_http_errors("HEAD", url):
            async with self._session.head(
                URL(url, encoded=True), headers=self._headers, middlewares=keep_credentials_home()
            ) as response:
                if response.status == 404:
                    return None
                await raise_for_status(response)
                modified = response.headers.get("Last-Modified")
                return DavEntry(
                    name=posixpath.basename(path),
                    is_dir=False,
                    size=response.content_length or 0,
                    modified=_http_date(modified),
                    etag=response.headers.get("ETag"),
                )

    async def walk_files(self, path: str) -> AsyncIterator[tuple[str, DavEntry]]:
        """Every file under directory ``path`` as (path relative to it, entry), depth-first in name
        order; nothing when the directory does not exist."""
        stack: list[str] = [""]
        while stack:
            relative = stack.pop()
            try:
                children = await self.list_dir(posixpath.join(path, relative) if relative else path)
            except NotFound:
                if not relative:
                    return
                continue  # removed while we walked
            subdirs = []
            for child in children:
                child_path = f"{relative}/{child.name}" if relative else child.name
                if child.is_dir:
                    subdirs.append(child_path)
                else:
                    yield child_path, child
            stack.extend(reversed(subdirs))

    @asynccontextmanager
    async def open_read(
        self, path: str, *, offset: int = 0, length: int | None = None, if_range: str | None = None
    ) -> AsyncIterator[_Download]:
        url = self.url(path)
        headers = dict(self._headers)
        if offset > 0 or length is not None:
            last = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{last}"
            if if_range and if_range.startswith('"'):
                headers["If-Range"] = if_range
        with map_http_errors("GET", url):
            async with self._session.get(
                URL(url, encoded=True), headers=headers, middlewares=keep_credentials_home()
            ) as response:
                if response.status == 416:
                    raise IntegrityError(f"{path}: the requested bytes are beyond the file's end")
                if response.status == 404:
                    raise NotFound(f"{url}: no such file on the WebDAV server")
                await raise_for_status(response)
                start, total = 0, response.content_length
                if response.status == 206:
                    start, total = _content_range(response.headers.get("Content-Range"), path)
                yield _Download(response, url=url, start=start, total_size=total)


class WebDavRemote:
    """The read side of ``hc.transfer.Remote`` over a WebDAV tree rooted at ``root``.

    ``package``/``version``/``path`` is ``{root}/{package}/{version}/{path}``; with ``raw`` the
    location ``default/default/<uri>`` is ``{root}/{uri}``. Writing is refused.
    """

    def __init__(self, client: WebDavClient, root: str, *, raw: bool = False) -> None:
        self._client = client
        self.root = root.strip("/")
        self.raw = raw
        # A read-only file tree: ranged reads, no sessions, nothing to upload to.
        self._features = RemoteFeatures()

    def __repr__(self) -> str:
        return f"WebDavRemote({self._client!r}, root={self.root!r}, raw={self.raw})"

    @property
    def capabilities(self) -> RemoteFeatures:
        return self._features

    def _join(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.root, *parts) if p.strip("/"))

    def _path(self, location: FileLocation) -> str:
        if self.raw:
            return self._join(location.path)
        return self._join(location.package, location.version, location.path)

    def url(self, location: FileLocation) -> str:
        return self._client.url(self._path(location))

    async def children(self, path: str = "") -> list[DavEntry]:
        """The entries of a directory under the root (``""``: the root itself)."""
        return await self._client.list_dir(self._join(path))

    async def list_files(self, package: str, version: str) -> AsyncIterator[DavFile]:
        directory = self._join() if self.raw else self._join(package, version)
        async for relative, entry in self._client.walk_files(directory):
            yield DavFile(
                package=package,
                version=version,
                path=relative,
                size=entry.size,
                modified=entry.modified,
                etag=entry.etag,
            )

    async def stat(self, location: FileLocation) -> DavFile | None:
        found = await self._client.stat(self._path(location))
        if found is None:
            return None
        return DavFile(
            package=location.package,
            version=location.version,
            path=location.path,
            size=found.size,
            modified=found.modified,
            etag=found.etag,
        )

    def open_read(
        self,
        location: FileLocation,
        *,
        offset: int = 0,
        length: int | None = None,
        if_range: str | None = None,
    ) -> Any:
        # ``if_range`` from the engine is a sha256, which a WebDAV ETag never is: not sent.
        return self._client.open_read(self._path(location), offset=offset, length=length)

    async def read_whole(self, location: FileLocation, *, stall_timeout: float) -> bytes:
        # Not called (no batch reads here: capabilities.batch_read_max_size is 0); one GET.
        with map_http_errors("GET", self.url(location)):
            async with asyncio.timeout(stall_timeout), self._client.open_read(self._path(location)) as stream:
                return b"".join([chunk async for chunk in stream])

    async def write_whole(
        self, location: FileLocation, data: bytes, *, checksums: Any, overwrite: bool, stall_timeout: float
    ) -> None:
        raise RemoteError("a WebDAV migration source is read-only")

    async def put_file(self, location: FileLocation, source: Any, *, checksums: Any, overwrite: bool) -> None:
        raise RemoteError("a WebDAV migration source is read-only")

    async def begin_upload(self, location: FileLocation, *, size: int, checksums: Any) -> Any:
        raise RemoteError("a WebDAV migration source is read-only")

    async def resume_upload(self, location: FileLocation, session_id: str) -> Any:
        raise NotFound("a WebDAV migration source has no upload sessions")

    async def put_part(self, location: FileLocation, session: Any, *, offset: int, source: Any) -> Any:
        raise RemoteError("a WebDAV migration source is read-only")

    async def commit_upload(
        self, location: FileLocation, session: Any, *, checksums: Any, overwrite: bool
    ) -> None:
        raise RemoteError("a WebDAV migration source is read-only")

    async def abort_upload(self, location: FileLocation, session: Any) -> None:
        return None


@asynccontextmanager
async def open_webdav(
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    insecure: bool = False,
    ca_bundle: Path | None = None,
    connections: int = 16,
    retry: RetryPolicy | None = None,
) -> AsyncIterator[WebDavClient]:
    """A client with its own session, closed on exit. Basic auth with a username, else a password
    alone is sent as a bearer token; no credentials: anonymous. A ``user:password@`` in ``url`` is
    the login when none is given, and is taken out of the URL either way: a URL is shown in errors
    and log lines, a password must not be."""
    url, url_user, url_password = _split_userinfo(url)
    if not username and not password:
        username, password = url_user, url_password
    headers: dict[str, str] = {}
    if username:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
    elif password:
        headers["Authorization"] = f"Bearer {password}"
    # a server's error text never carries them back to the terminal (see hc.api._http.redact)
    remember_secret(password)
    remember_secret(headers.get("Authorization"))
    async with open_session(
        insecure=insecure,
        ca_bundle=ca_bundle,
        proxy_for=(url,),
        limit=max(64, connections + 8),
        limit_per_host=max(32, connections + 8),
    ) as session:
        yield WebDavClient(session, url, headers=headers, retry=retry)


def _split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """``url`` without its ``user:password@`` part, and the (unquoted) user and password."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, secret = userinfo.partition(":")
    return parts._replace(netloc=host).geturl(), unquote(user) or None, unquote(secret) or None


# -- parsing -------------------------------------------------------------------------------------


def parse_multistatus(body: bytes, *, listed_path: str, where: str) -> list[DavEntry]:
    """The children of ``listed_path`` in a PROPFIND 207 body (the directory itself is dropped).

    Hrefs may be absolute URLs or paths, percent-encoded; a child must be directly under the listed
    directory and be one safe segment, or the answer is refused.
    """
    try:
        # Python's expat refuses entity-expansion bombs (expat >= 2.4), and DTDs are not loaded.
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise RemoteError(f"PROPFIND {where}: the answer is not valid XML ({exc})") from None
    parent = listed_path.rstrip("/") + "/"
    entries: list[DavEntry] = []
    for response in root.iter(f"{_DAV}response"):
        href = response.findtext(f"{_DAV}href")
        if not href:
            continue
        path = unquote(urlsplit(href.strip()).path)
        if path.rstrip("/") + "/" == parent:
            continue  # the directory itself
        if not path.startswith(parent):
            raise RemoteError(f"PROPFIND {where}: the answer lists {path!r}, outside the directory")
        name = path[len(parent) :].rstrip("/")
        if not name or "/" in name or name in (".", "..") or "\\" in name or any(ord(c) < 32 for c in name):
            raise RemoteError(f"PROPFIND {where}: the answer lists an unsafe name {name!r}")
        props = _ok_props(response)
        is_dir = props.find(f"{_DAV}resourcetype/{_DAV}collection") is not None or (
            path.endswith("/") and props.find(f"{_DAV}resourcetype") is None
        )
        size = 0
        if not is_dir:
            text = (props.findtext(f"{_DAV}getcontentlength") or "").strip()
            if not text.isdigit():
                raise RemoteError(f"PROPFIND {where}: {name!r} has no valid getcontentlength ({text!r})")
            size = int(text)
        etag = (props.findtext(f"{_DAV}getetag") or "").strip() or None
        entries.append(
            DavEntry(
                name=name,
                is_dir=is_dir,
                size=size,
                modified=_http_date(props.findtext(f"{_DAV}getlastmodified")),
                etag=etag,
            )
        )
    return entries


def _ok_props(response: ET.Element) -> ET.Element:
    """The ``prop`` elements of every 200 ``propstat``, merged into one element."""
    merged = ET.Element(f"{_DAV}prop")
    for propstat in response.iter(f"{_DAV}propstat"):
        status = propstat.findtext(f"{_DAV}status") or "200"
        if " 200 " not in f" {status} " and not status.strip().endswith("200 OK"):
            continue
        for prop in propstat.findall(f"{_DAV}prop"):
            merged.extend(list(prop))
    return merged


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value.strip()).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _content_range(value: str | None, path: str) -> tuple[int, int | None]:
    # "bytes 10-99/1000" (or "/*")
    if not value or not value.startswith("bytes "):
        raise RemoteError(f"{path}: a partial answer (206) without a valid Content-Range")
    spec, _, total = value[6:].partition("/")
    first, _, _ = spec.partition("-")
    if not first.strip().isdigit():
        raise RemoteError(f"{path}: unreadable Content-Range {value!r}")
    return int(first), int(total) if total.strip().isdigit() else None
