"""Client side of batch reads (``hc.protocol.batchread``): whole small files asked for one by one
by the engine's workers, fetched many to a request (``hc.api._coalesce``).

A file's own failure (404, 413) is that file's alone; a damaged exchange (the request refused by
its checksum, a record for another file, a malformed header, a body cut short) fails every file
not yet delivered with a TransientError, so that each is asked for again.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Callable, Mapping

import aiohttp
from yarl import URL

from hc.api._coalesce import Coalescer, Waiter
from hc.api._http import map_http_errors, raise_for_status
from hc.errors import NotFound, RemoteError, TransientError
from hc.protocol.batchread import BATCH_READ_CONTENT_TYPE, MAX_HEADER_LINE, RecordHeader, encode_request

__all__ = ["BatchReader", "raise_for_damaged_request"]


async def raise_for_damaged_request(response: aiohttp.ClientResponse, url: str) -> None:
    """TransientError for a 400 ``CHECKSUM_MISMATCH``: the registry received another request body
    than was sent (its ``X-Checksum-Sha256`` disagrees), so sending it again may well succeed."""
    if response.status == 400 and b"CHECKSUM_MISMATCH" in await response.content.read(64 * 1024):
        raise TransientError(f"POST {url}: the request was damaged on the way")


class BatchReader:
    """Whole small files of one registry, fetched in batches over the command's session."""

    __slots__ = ("_batches", "_headers", "_session", "_timeout", "_url")

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        headers: Callable[[], Mapping[str, str]],
        *,
        max_files: int,
        stall_timeout: float = 120.0,
    ) -> None:
        self._session = session
        self._url = url
        self._headers = headers
        # A request that receives nothing for this long fails its files (TransientError).
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=stall_timeout, sock_read=stall_timeout)
        self._batches: Coalescer[str, bytes] = Coalescer(self._fetch, max_items=max_files)

    async def read(self, filepath: str) -> bytes:
        """The bytes of ``filepath`` (as after ``/files/`` in a GET, unescaped); NotFound, or
        RemoteError/TransientError as a single GET would raise them."""
        return await self._batches.call(filepath)

    async def _fetch(self, batch: list[Waiter[str, bytes]]) -> None:
        waiting = deque(batch)
        body = encode_request([filepath for filepath, _ in batch])
        headers = {
            **self._headers(),
            "Content-Type": "application/json",
            # so that a request damaged on the way is refused, not answered for other files
            "X-Checksum-Sha256": hashlib.sha256(body).hexdigest(),
        }
        with map_http_errors("POST", self._url):
            async with self._session.post(
                URL(self._url, encoded=True),
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                await raise_for_damaged_request(response, self._url)
                await raise_for_status(response)
                if response.headers.get("Content-Type", "").split(";")[0].strip() != BATCH_READ_CONTENT_TYPE:
                    raise RemoteError(f"POST {self._url}: the answer is not a batch read")
                try:
                    await self._deliver(response.content, waiting)
                except asyncio.IncompleteReadError:  # the body ended inside a file's bytes
                    raise TransientError(
                        f"batch read: the answer broke off inside {waiting[0][0]!r}"
                    ) from None
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
