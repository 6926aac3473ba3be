"""Generic files: ``PUT/GET/HEAD/DELETE /pkg/{account}/{registry}/files/{path}``.

The path is ``<package>/<version>/<file path>`` in a GENERIC registry (package and version are
created by their first file) and the file path alone in a RAW registry (all its files live in one
package and version named ``default``). Other registry types refuse these endpoints with a 400:
their packages have formats of their own.

Re-upload rule (so data is never silently replaced):

- a new path → **201 Created**;
- the same bytes to an existing path → **200 OK**, nothing written (idempotent: a retried or
  resumed push succeeds);
- different bytes to an existing path → **409 Conflict**, unless the request says
  ``?overwrite=true`` or ``X-Hc-Overwrite: true``, which replaces the file → **200 OK**.

The body is streamed (never held whole in memory unless ≤ 1 MiB), hashed with md5, sha1, sha256
and sha512 in the same pass, and checked against ``Content-Length`` and any ``X-Checksum-*``
headers before anything becomes visible: a short body or a digest mismatch stores nothing and
answers 400. The response body is ``{"status": "SUCCESS", "data": {"sha256", "size", ...}}``.

Downloads send ``ETag: "<sha256>"``, ``X-Checksum-*``, ``Content-Disposition: attachment;
filename="<basename>"`` and honour a single ``Range`` (206, or 416 when unsatisfiable) guarded by
``If-Range`` (an ETag; a date or another ETag means "send it all"). Large bodies go out with
sendfile; small ones with a single read, which is an order of magnitude faster for 4 KiB files
than opening a file response. Bodies of 64 KiB or less that a PUT stored in the database come
with the file's row, from the same query.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
from collections.abc import Callable
from email.utils import formatdate
from typing import Final
from urllib.parse import quote

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

from hc.errors import IntegrityError, NotFound, StorageError, UsageError
from hc.protocol.digest import CHECKSUM_HEADERS, HEX_LENGTH, Checksums, hex_digest
from hc.protocol.identifiers import validate_relative_path, validate_version_name
from hc.protocol.models import GENERIC_FILE_TYPES
from hc.protocol.ranges import (
    ByteRange,
    RangeNotSatisfiable,
    content_range,
    parse_range_header,
    unsatisfied_content_range,
)
from hc.protocol.routes import PKG_PREFIX

from ..blobs import SMALL_BODY, BlobWriter
from ..metadata import Catalog, PutFile, PutOutcome, RegistryRow
from ..middlewares import require_account
from ..smallputs import SmallPut, put_target
from . import _common as c

routes = web.RouteTableDef()

# ``[\s\S]`` rather than ``.``: a path with a newline must reach ``locate`` and be refused there
# with a reason (400), not fall through to a bare 404.
FILES: Final = PKG_PREFIX + r"/{account}/{registry}/files/{filepath:[\s\S]+}"
#: Downloads up to this size are read in one call instead of sendfile.
SMALL_DOWNLOAD: Final = 64 * 1024


async def generic_registry(request: web.Request) -> RegistryRow:
    """The GENERIC or RAW registry the path names, after checking the key's account."""
    account = require_account(request, request.match_info["account"])
    registry = await c.cached_registry(request, account, request.match_info["registry"])
    if registry.package_type not in GENERIC_FILE_TYPES:
        raise UsageError(
            f"registry {registry.identifier!r} holds {registry.package_type} packages; "
            "the files endpoint serves GENERIC and RAW registries only"
        )
    return registry


def locate(registry: RegistryRow, filepath: str) -> tuple[str, str, str]:
    """(package, version, path inside the version) for a files-endpoint path."""
    if registry.package_type == "RAW":
        return c.RAW_PACKAGE, c.RAW_VERSION, validate_relative_path(filepath)
    parts = filepath.split("/", 2)
    if len(parts) < 3 or not all(parts):
        raise UsageError(f"invalid file path {filepath!r}: expected <package>/<version>/<file path>")
    package, version, path = parts
    validate_version_name(package)  # a generic package is one path segment, like a version
    validate_version_name(version)
    return package, version, validate_relative_path(path)


def check_target(registry: RegistryRow, package: str, version: str, path: str) -> tuple[str, str, str]:
    """(package, version, path) of a file named by its parts (upload sessions), checked like the
    files endpoint checks a path; a RAW registry ignores package and version."""
    if registry.package_type == "RAW":
        return c.RAW_PACKAGE, c.RAW_VERSION, validate_relative_path(path)
    if not package or not version:
        raise UsageError("a file of a GENERIC registry needs a package and a version")
    validate_version_name(package)
    validate_version_name(version)
    return package, version, validate_relative_path(path)


def put_result(
    registry: RegistryRow, package: str, version: str, path: str, checksums: Checksums, outcome: PutOutcome
) -> web.Response:
    """The answer to a stored file: 201 when the path is new, 200 otherwise."""
    data_out = {
        "registry": registry.identifier,
        "package": package,
        "version": version,
        "path": path,
        "size": checksums.size,
        "sha256": checksums.sha256,
        "md5": checksums.md5,
        "sha1": checksums.sha1,
        "sha512": checksums.sha512,
        "outcome": outcome.value,
    }
    return c.ok(data_out, status=201 if outcome is PutOutcome.CREATED else 200)


def _expected_checksums(request: web.Request) -> dict[str, str]:
    expected = {}
    for algorithm, header in CHECKSUM_HEADERS.items():
        value = request.headers.get(header)
        if value is None or value.strip() == "":
            continue
        digest = hex_digest(value, algorithm)
        if digest is None:
            raise UsageError(f"malformed {header} header: expected {HEX_LENGTH[algorithm]} hex characters")
        expected[algorithm] = digest
    return expected


def overwrite_requested(request: web.Request) -> bool:
    header = request.headers.get("X-Hc-Overwrite", "").strip().lower()
    return c.query_bool(request, "overwrite") or header in ("true", "1", "yes")


@routes.put(FILES)
async def put_file(request: web.Request) -> web.Response:
    registry = await generic_registry(request)
    package, version, path = locate(registry, request.match_info["filepath"])
    expected = _expected_checksums(request)
    overwrite = overwrite_requested(request)
    st = c.state(request)
    length = request.content_length
    writer: BlobWriter | None = None
    ensure_blob: Callable[[], None]
    try:
        try:
            if length is not None and length <= SMALL_BODY:
                data = await request.content.readexactly(length) if length else b""
                target = put_target(
                    registry_id=registry.id, package=package, version=version, path=path, overwrite=overwrite
                )
                # Body and row in one group with the other small uploads (hc.server.smallputs).
                checksums, outcome = await st.small_puts.put(SmallPut(data, length, expected, target))
                return put_result(registry, package, version, path, checksums, outcome)
            writer = st.blobs.open_writer()
            # iter_chunks hands over each buffer as received; iter_any joins the buffers waiting
            # while the lanes are busy into one new bytes (a copy of up to the whole body)
            async for chunk, _ in request.content.iter_chunks():
                await writer.write(chunk)
            checksums = await writer.finish(expected_size=length, expected=expected)
            ensure_blob = writer.ensure_blob
        except (asyncio.IncompleteReadError, ClientPayloadError, HttpProcessingError, ConnectionError) as exc:
            raise IntegrityError(f"the request body ended early ({exc}); nothing was stored") from exc
        except OSError as exc:  # disk full, permissions, I/O error: say so instead of a bare 500
            raise StorageError(f"cannot store the upload: {exc.strerror or exc}") from exc
        outcome = await st.db.put_file(
            PutFile(
                registry_id=registry.id,
                package=package,
                version=version,
                path=path,
                checksums=checksums,
                overwrite=overwrite,
                ensure_blob=ensure_blob,
            )
        )
    finally:
        if writer is not None:
            await writer.aclose()
    return put_result(registry, package, version, path, checksums, outcome)


def content_disposition(name: str) -> str:
    ascii_name = name.encode("ascii", "replace").decode("ascii").replace("\\", "_").replace('"', "_")
    value = f'attachment; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [tag.strip() for tag in header.split(",")]
    return "*" in candidates or etag in candidates or f"W/{etag}" in candidates


async def _headers_only(
    request: web.Request, *, status: int, headers: dict[str, str], content_length: int
) -> web.StreamResponse:
    """A HEAD answer (or an empty body): the GET's status and headers, ``Content-Length`` included."""
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = content_length
    await response.prepare(request)
    await response.write_eof()
    return response


@routes.get(FILES)
async def get_file(request: web.Request) -> web.StreamResponse:
    """GET and HEAD (aiohttp routes HEAD to the GET handler)."""
    registry = await generic_registry(request)
    package, version, path = locate(registry, request.match_info["filepath"])
    found = await c.state(request).db.run(Catalog.get_file_body, registry.id, package, version, path)
    if found is None:
        raise NotFound(
            f"file {request.match_info['filepath']!r} not found in registry {registry.identifier!r}"
        )
    row, inline = found
    etag = f'"{row.sha256}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
        "Content-Disposition": content_disposition(posixpath.basename(row.path)),
        "Last-Modified": formatdate(row.created_at / 1000, usegmt=True),
        **row.checksums().headers(),
    }
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match and _etag_matches(if_none_match, etag):
        return web.Response(status=304, headers={"ETag": etag})
    rng: ByteRange | None = None
    range_header = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if range_header and (if_range is None or if_range.strip() == etag):
        try:
            rng = parse_range_header(range_header, row.size)
        except RangeNotSatisfiable:
            return web.Response(
                status=416, headers={"Content-Range": unsatisfied_content_range(row.size), "ETag": etag}
            )
    status = 200
    offset, count = 0, row.size
    if rng is not None:
        status, offset, count = 206, rng.start, rng.length
        headers["Content-Range"] = content_range(rng, row.size)
    if inline is not None:  # a small body kept in the database (hc.server.smallputs)
        if request.method == "HEAD" or count == 0:
            return await _headers_only(request, status=status, headers=headers, content_length=count)
        return web.Response(status=status, body=inline[offset : offset + count], headers=headers)
    blob = c.state(request).blobs.path_for(row.sha256)
    try:
        fd = os.open(blob, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise StorageError(
            f"the bytes of {row.path!r} (sha256 {row.sha256}) are missing from the store; "
            "run 'hc server fsck'"
        ) from None
    with os.fdopen(fd, "rb") as f:
        if request.method == "HEAD" or count == 0:
            return await _headers_only(request, status=status, headers=headers, content_length=count)
        if count <= SMALL_DOWNLOAD:
            # A page-cached read of ≤64 KiB takes microseconds: cheaper inline than a thread hop.
            body = os.pread(f.fileno(), count, offset)
            return web.Response(status=status, body=body, headers=headers)
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = count
        await response.prepare(request)
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("client disconnected")
        await asyncio.get_running_loop().sendfile(transport, f, offset, count)
        await response.write_eof()
        return response


@routes.delete(FILES)
async def delete_file(request: web.Request) -> web.Response:
    registry = await generic_registry(request)
    package, version, path = locate(registry, request.match_info["filepath"])
    if not await c.state(request).db.run(Catalog.delete_file, registry.id, package, version, path):
        raise NotFound(
            f"file {request.match_info['filepath']!r} not found in registry {registry.identifier!r}"
        )
    return web.Response(status=204)


__all__ = [
    "check_target",
    "content_disposition",
    "generic_registry",
    "locate",
    "overwrite_requested",
    "put_result",
    "routes",
]
