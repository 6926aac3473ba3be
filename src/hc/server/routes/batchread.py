"""Batch reads: ``POST /pkg/{account}/{registry}/batch-read`` answers many small files at once
(the wire format is in ``hc.protocol.batchread``).

One request costs about the same whether it carries one 4 KiB file or two hundred: the lookups run
as one hop on the database thread, and the answer goes out in windows of about 1 MiB, the bodies
kept in files of each window read in one hop on a worker thread (so memory stays bounded).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Sequence
from typing import Final

from aiohttp import web

from hc.errors import HcError, IntegrityError
from hc.protocol.batchread import (
    BATCH_READ_CONTENT_TYPE,
    DEFAULT_MAX_FILE_SIZE,
    DEFAULT_MAX_FILES,
    BatchReadLimits,
    RecordHeader,
    parse_request,
)
from hc.protocol.routes import PkgPaths

from ..metadata import Catalog, FileRow
from . import _common as c
from .files import generic_registry, locate

routes = web.RouteTableDef()

BATCH_READ: Final = PkgPaths.batch_read
LIMITS: Final = BatchReadLimits(max_files=DEFAULT_MAX_FILES, max_file_size=DEFAULT_MAX_FILE_SIZE)
#: The answer is read and written in windows of about this many bytes (bounded memory, few writes).
_WINDOW: Final = 1 << 20


def _look_up(
    catalog: Catalog, registry_id: int, targets: Sequence[tuple[str, tuple[str, str, str] | str]]
) -> list[tuple[str, FileRow | None, bytes | None, str]]:
    """On the database thread: each target's row and inline body (or why it cannot be read)."""
    found: list[tuple[str, FileRow | None, bytes | None, str]] = []
    for requested, target in targets:
        if isinstance(target, str):  # the path was refused: target is the reason
            found.append((requested, None, None, target))
            continue
        hit = catalog.get_file_body(registry_id, *target)
        if hit is None:
            found.append((requested, None, None, ""))
        else:
            found.append((requested, hit[0], hit[1], ""))
    return found


def _read_blobs(paths: Sequence[tuple[int, str, int]]) -> dict[int, bytes | str]:
    """On a worker thread: the bodies kept as blob files, by index; a message when one is missing."""
    bodies: dict[int, bytes | str] = {}
    for index, path, size in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            bodies[index] = "the file's bytes are missing from the store; run 'hc server fsck'"
            continue
        try:
            body = os.pread(fd, size, 0)
        finally:
            os.close(fd)
        bodies[index] = body if len(body) == size else "the file's bytes in the store are short"
    return bodies


@routes.post(BATCH_READ)
async def batch_read(request: web.Request) -> web.StreamResponse:
    registry = await generic_registry(request)
    state = c.state(request)
    declared = request.headers.get("X-Checksum-Sha256")
    if declared is not None and hashlib.sha256(await request.read()).hexdigest() != declared.strip().lower():
        # A request damaged on the way would name other files: refused whole, so it is asked again.
        raise IntegrityError("the batch read request does not match its X-Checksum-Sha256")
    requested = parse_request(await c.json_body(request), max_files=LIMITS.max_files)
    targets: list[tuple[str, tuple[str, str, str] | str]] = []
    for filepath in requested:
        try:
            targets.append((filepath, locate(registry, filepath)))
        except HcError as exc:
            targets.append((filepath, str(exc)))
    rows = await state.db.run(_look_up, registry.id, targets)

    records: list[tuple[RecordHeader, bytes | None, str | None]] = []  # header, inline body, blob
    for filepath, row, inline, refused in rows:
        if refused:
            records.append((RecordHeader(filepath, 400, message=refused), None, None))
        elif row is None:
            message = f"file {filepath!r} not found in registry {registry.identifier!r}"
            records.append((RecordHeader(filepath, 404, message=message), None, None))
        elif row.size > LIMITS.max_file_size:
            message = f"{row.size} bytes is more than a batch read carries ({LIMITS.max_file_size}); GET it"
            records.append((RecordHeader(filepath, 413, message=message), None, None))
        else:
            blob = str(state.blobs.path_for(row.sha256)) if inline is None and row.size else None
            records.append((RecordHeader(filepath, 200, size=row.size, sha256=row.sha256), inline, blob))

    response = web.StreamResponse(status=200, headers={"Content-Type": BATCH_READ_CONTENT_TYPE})
    await response.prepare(request)
    # Window by window: the blob files of about _WINDOW of answer read in one worker call, then
    # written, so a batch of 256 files of 1 MiB never sits in memory whole.
    loop = asyncio.get_running_loop()
    start = 0
    while start < len(records):
        end, size = start, 0
        while end < len(records) and (end == start or size < _WINDOW):
            size += records[end][0].size
            end += 1
        window = records[start:end]
        reads = [(i, blob, header.size) for i, (header, _, blob) in enumerate(window) if blob is not None]
        bodies = await loop.run_in_executor(state.blobs.executor, _read_blobs, reads) if reads else {}
        pieces: list[bytes] = []
        for i, (header, inline, _) in enumerate(window):
            body = bodies.get(i, inline)
            if isinstance(body, str):  # its blob is missing or short: that file fails, not the batch
                header, body = RecordHeader(header.file, 500, message=body), None
            pieces.append(header.encode())
            if body is not None and header.status == 200:
                pieces.append(body)
        await response.write(b"".join(pieces))
        start = end
    await response.write_eof()
    return response


__all__ = ["BATCH_READ", "LIMITS", "routes"]
