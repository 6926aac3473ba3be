"""Batch writes: ``POST /pkg/{account}/{registry}/batch-write`` stores many small files at once
(the wire format is in ``hc.protocol.batchwrite``).

Each file becomes one ``SmallPut``, exactly what a small ``PUT …/files/{path}`` makes: the group
writer (``hc.server.smallputs``) hashes, verifies and stores them with the other small uploads
of the moment in one worker call and one transaction, so a file here is as durable and as checked
as one PUT alone, and answers with the status that PUT would have had.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Final

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

from hc.errors import HcError, IntegrityError, StorageError, UsageError
from hc.protocol.batchwrite import (
    BATCH_WRITE_CONTENT_TYPE,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FILE_SIZE,
    DEFAULT_MAX_FILES,
    BatchWriteLimits,
    WriteRecord,
    WriteResult,
)
from hc.protocol.routes import PkgPaths

from ..blobs import SMALL_BODY
from ..metadata import PutOutcome
from ..smallputs import SmallPut, put_target
from . import _common as c
from .files import generic_registry, locate, overwrite_requested

routes = web.RouteTableDef()

LIMITS: Final = BatchWriteLimits(
    max_files=DEFAULT_MAX_FILES,
    max_bytes=DEFAULT_MAX_BYTES,
    max_file_size=min(DEFAULT_MAX_FILE_SIZE, SMALL_BODY),  # what the group writer takes whole
)
#: The whole body: the files' bytes plus their header lines (a path is at most a few KiB).
_MAX_BODY: Final = LIMITS.max_bytes + LIMITS.max_files * 8192


class _TooLarge(HcError):
    http_status = 413
    code = "PAYLOAD_TOO_LARGE"


async def _read_body(request: web.Request) -> bytes:
    length = request.content_length
    if length is not None and length > _MAX_BODY:
        raise _TooLarge(f"a batch write carries at most {LIMITS.max_bytes} bytes of files")
    try:
        if length is not None:
            return await request.content.readexactly(length)
        body = bytearray()
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > _MAX_BODY:
                raise _TooLarge(f"a batch write carries at most {LIMITS.max_bytes} bytes of files")
        return bytes(body)
    except (asyncio.IncompleteReadError, ClientPayloadError, HttpProcessingError, ConnectionError) as exc:
        raise IntegrityError(f"the request body ended early ({exc}); nothing was stored") from exc


def _parse(body: bytes) -> list[tuple[WriteRecord, bytes]]:
    """The records, or UsageError (nothing stored) when the body is not a well-formed batch."""
    records: list[tuple[WriteRecord, bytes]] = []
    view = memoryview(body)
    position, total = 0, 0
    while position < len(body):
        end = body.find(b"\n", position)
        if end < 0:
            raise UsageError("batch write: the body ends inside a record header")
        record = WriteRecord.decode(body[position:end])
        start = end + 1
        if start + record.size > len(body):
            raise UsageError(f"batch write: the body ends inside the bytes of {record.file!r}")
        records.append((record, bytes(view[start : start + record.size])))
        position = start + record.size
        total += record.size
        if len(records) > LIMITS.max_files:
            raise UsageError(f"a batch write takes at most {LIMITS.max_files} files")
    if not records:
        raise UsageError("a batch write needs at least one file")
    if total > LIMITS.max_bytes:
        raise _TooLarge(f"a batch write carries at most {LIMITS.max_bytes} bytes of files")
    return records


@routes.post(PkgPaths.batch_write)
async def batch_write(request: web.Request) -> web.Response:
    registry = await generic_registry(request)
    overwrite = overwrite_requested(request)
    if request.content_type != BATCH_WRITE_CONTENT_TYPE:
        raise UsageError(f"a batch write is sent as {BATCH_WRITE_CONTENT_TYPE}")
    body = await _read_body(request)
    declared = request.headers.get("X-Checksum-Sha256")
    if declared is not None and hashlib.sha256(body).hexdigest() != declared.strip().lower():
        # Damaged on the way: the records cannot be trusted, not even which files they name.
        raise IntegrityError("the batch write request does not match its X-Checksum-Sha256")
    records = _parse(body)
    small_puts = c.state(request).small_puts

    async def store(record: WriteRecord, data: bytes) -> WriteResult:
        if record.size > LIMITS.max_file_size:
            message = f"{record.size} bytes is more than a batch write takes ({LIMITS.max_file_size}); PUT it"
            return WriteResult(record.file, 413, code=_TooLarge.code, message=message)
        try:
            package, version, path = locate(registry, record.file)
            target = put_target(
                registry_id=registry.id, package=package, version=version, path=path, overwrite=overwrite
            )
            expected = {"sha256": record.sha256} if record.sha256 else {}
            checksums, outcome = await small_puts.put(SmallPut(data, record.size, expected, target))
        except HcError as exc:
            return WriteResult(record.file, exc.http_status, code=exc.code, message=str(exc))
        except OSError as exc:  # disk full, permissions, I/O error: that file's failure, said so
            error = StorageError(f"cannot store the upload: {exc.strerror or exc}")
            return WriteResult(record.file, error.http_status, code=error.code, message=str(error))
        status = 201 if outcome is PutOutcome.CREATED else 200
        return WriteResult(record.file, status, sha256=checksums.sha256)

    results = await asyncio.gather(*(store(record, data) for record, data in records))
    return c.ok({"results": [result.to_json() for result in results]})


__all__ = ["LIMITS", "routes"]
