"""Client side of batch reads (``hc.protocol.batchread``): whole small files asked for one by one
by the engine's workers, fetched many to a request (``hc.api._coalesce``).

A file's own failure (404, 413) is that file's alone; a damaged exchange (the request refused by
its checksum, a record for another file, a malformed header, a body cut short) fails every file
not yet delivered with a TransientError, so that each is asked for again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping

import aiohttp

from hc.api._coalesce import BatchPoster, Coalescer, Waiter
from hc.errors import NotFound, RemoteError, TransientError
from hc.protocol.batchread import BATCH_READ_CONTENT_TYPE, MAX_HEADER_LINE, RecordHeader, encode_request

__all__ = ["BatchReader"]


class BatchReader:
    """Whole small files of one registry, fetched in batches over the command's session."""

    __slots__ = ("_batches", "_poster")

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        headers: Callable[[], Mapping[str, str]],
        *,
        max_files: int,
        stall_timeout: float = 120.0,
    ) -> None:
        self._poster = BatchPoster(session, url, headers, stall_timeout=stall_timeout)
        self._batches: Coalescer[str, bytes] = Coalescer(self._fetch, max_items=max_files)

    async def read(self, filepath: str) -> bytes:
        """The bytes of ``filepath`` (as after ``/files/`` in a GET, unescaped); NotFound, or
        RemoteError/TransientError as a single GET would raise them."""
        return await self._batches.call(filepath)

    async def _fetch(self, batch: list[Waiter[str, bytes]]) -> None:
        waiting = deque(batch)
        body = encode_request([filepath for filepath, _ in batch])
        async with self._poster.post(body, "application/json") as response:
            if response.headers.get("Content-Type", "").split(";")[0].strip() != BATCH_READ_CONTENT_TYPE:
                raise RemoteError(f"POST {self._poster.url}: the answer is not a batch read")
            try:
                await self._deliver(response.content, waiting)
            except asyncio.IncompleteReadError:  # the body ended inside a file's bytes
                raise TransientError(f"batch read: the answer broke off inside {waiting[0][0]!r}") from None
            except ValueError:  # aiohttp: a header line longer than the read buffer
                raise TransientError("batch read: a record header is too long") from None
        if waiting:
            raise TransientError(f"batch read: the answer ended before {waiting[0][0]!r}")

    @staticmethod
    async def _deliver(content: aiohttp.StreamReader, waiting: deque[Waiter[str, bytes]]) -> None:
        while waiting:
            line = await content.readuntil(b"\n")
            if not line.endswith(b"\n"):
                if not line:
                    return  # the caller reports the files that did not come
                raise TransientError("batch read: the answer ended inside a record header")
            if len(line) > MAX_HEADER_LINE:
                raise TransientError("batch read: a record header is too long")
            header = RecordHeader.decode(line)
            filepath, future = waiting[0]
            if header.file != filepath:  # the request or the answer was damaged on the way
                raise TransientError(f"batch read: expected the record of {filepath!r}, got {header.file!r}")
            body = await content.readexactly(header.size) if header.status == 200 else b""
            waiting.popleft()
            if future.done():
                continue
            if header.status == 200:
                future.set_result(body)
            elif header.status == 404:
                future.set_exception(NotFound(header.message or f"file {filepath!r} not found"))
            else:
                future.set_exception(
                    RemoteError(f"batch read of {filepath!r}: HTTP {header.status}: {header.message}")
                )
