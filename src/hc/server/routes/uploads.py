"""Resumable upload sessions: ``/pkg/{account}/{registry}/uploads[/{id}]`` (POST, PATCH, GET, PUT,
DELETE). The wire protocol is documented in ``hc.protocol.uploads``; the work is done by
``hc.server.uploads.UploadSessions``. These handlers only parse, check the registry and answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

from hc.errors import IntegrityError, StorageError
from hc.protocol.routes import PkgPaths, path_escape
from hc.protocol.uploads import BeginUpload, parse_commit_digest

from ..uploads import Unchanged, state_of
from . import _common as c
from .files import check_target, generic_registry, overwrite_requested, put_result

routes = web.RouteTableDef()

UPLOADS: Final = PkgPaths.uploads
UPLOAD: Final = PkgPaths.upload


def _location(account: str, registry: str, upload_id: str) -> str:
    return PkgPaths.upload.format(
        account=path_escape(account), registry=path_escape(registry), upload_id=upload_id
    )


@routes.post(UPLOADS)
async def begin_upload(request: web.Request) -> web.Response:
    registry = await generic_registry(request)
    sessions = c.state(request).uploads
    begin = BeginUpload.from_json(await c.json_body(request), digest_at_commit=sessions.digest_at_commit)
    package, version, path = check_target(registry, begin.package, begin.version, begin.path)
    result = await sessions.begin(
        registry,
        package=package,
        version=version,
        path=path,
        size=begin.size,
        sha256=begin.sha256,
        overwrite=bool(begin.overwrite),
    )
    if isinstance(result, Unchanged):
        f = result.file
        return c.ok(
            {
                "outcome": "unchanged",
                "registry": registry.identifier,
                "package": package,
                "version": version,
                "path": path,
                "size": f.size,
                "sha256": f.sha256,
                "md5": f.md5,
                "sha1": f.sha1,
                "sha512": f.sha512,
            }
        )
    response = c.ok(state_of(result).to_json(), status=201)
    response.headers["Location"] = _location(registry.account, registry.identifier, result.id)
    return response


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    try:
        async for chunk, _ in request.content.iter_chunks():  # no join of waiting buffers (files.py)
            yield chunk
    except (asyncio.IncompleteReadError, ClientPayloadError, HttpProcessingError, ConnectionError) as exc:
        raise IntegrityError(f"the part's body ended early ({exc}); the bytes before it are kept") from exc


@routes.patch(UPLOAD)
async def put_part(request: web.Request) -> web.Response:
    registry = await generic_registry(request)
    upload_id = request.match_info["upload_id"]
    try:
        row = await c.state(request).uploads.write_part(
            registry,
            upload_id,
            content_range=request.headers.get("Content-Range"),
            content_length=request.content_length,
            body=_body(request),
            alive=lambda: request.transport is not None and not request.transport.is_closing(),
        )
    except OSError as exc:  # disk full, I/O error: say so instead of a bare 500
        raise StorageError(f"cannot store the part: {exc.strerror or exc}") from exc
    response = c.ok(state_of(row).to_json(), status=202)
    response.headers["Location"] = _location(registry.account, registry.identifier, row.id)
    return response


@routes.get(UPLOAD)
async def get_upload(request: web.Request) -> web.Response:
    registry = await generic_registry(request)
    row = await c.state(request).uploads.load(registry, request.match_info["upload_id"])
    return c.ok(state_of(row).to_json())


@routes.put(UPLOAD)
async def commit_upload(request: web.Request) -> web.Response:
    registry = await generic_registry(request)
    sha256 = parse_commit_digest(request.query.get("digest"))
    row, checksums, outcome = await c.state(request).uploads.commit(
        registry, request.match_info["upload_id"], sha256=sha256, overwrite=overwrite_requested(request)
    )
    return put_result(registry, row.package, row.version, row.path, checksums, outcome)


@routes.delete(UPLOAD)
async def abort_upload(request: web.Request) -> web.Response:
    registry = await generic_registry(request)
    await c.state(request).uploads.abort(registry, request.match_info["upload_id"])
    return web.Response(status=204)


__all__ = ["routes"]
