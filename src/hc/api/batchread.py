"""Client side of batch reads (``hc.protocol.batchread``): whole small files asked for one by one
by the engine's workers, fetched many to a request.

Each ``read`` joins a queue and waits for its own bytes. A request goes out as soon as fewer than
``max_requests`` are in flight, carrying everything queued by then (up to ``max_files``); the
files that arrive while requests are in flight wait for the next. So a lone file goes at once,
and under load the batches grow by themselves (the group-commit pattern), with no timer.

A request that fails (connection, status, a malformed record) fails every file it had not yet
delivered, each with that error: the engine retries files, not batches, and a retried file simply
joins a later batch. A file's own failure (404, 413) is that file's alone.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Callable, Mapping
from typing import Final

import aiohttp
from yarl import URL

from hc.api._http import map_http_errors, raise_for_status
from hc.errors import NotFound, RemoteError, TransientError
from hc.protocol.batchread import BATCH_READ_CONTENT_TYPE, MAX_HEADER_LINE, RecordHeader, encode_request

__all__ = ["BatchReader"]

#: Requests in flight at once: one being answered while the next one gathers and is sent.
MAX_REQUESTS: Final = 2

_Waiter = tuple[str, "asyncio.Future[bytes]"]


class BatchReader:
    """Whole small files of one registry, fetched in batches over the command's session."""

    __slots__ = (
        "_headers",
        "_inflight",
        "_max_files",
        "_queue",
        "_scheduled",
        "_session",
        "_tasks",
        "_timeout",
        "_url",
    )

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
        # A request that receives nothing for this long fails its files (TransientError).
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=stall_timeout, sock_read=stall_timeout)
        self._url = url
        self._headers = headers
        self._max_files = max(1, max_files)  # 0 would never take a file off the queue
        self._queue: deque[_Waiter] = deque()
        self._inflight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()  # strong references while they run

    async def read(self, filepath: str) -> bytes:
        """The bytes of ``filepath`` (as after ``/files/`` in a GET, unescaped); NotFound, or
        RemoteError/TransientError as a single GET would raise them."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._queue.append((filepath, future))
        self._schedule()
        return await future

    def _schedule(self) -> None:
        # On the next loop turn, so that every worker ready in this one joins the same request.
        if not self._scheduled and self._inflight < MAX_REQUESTS and self._queue:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._send_queued)

    def _send_queued(self) -> None:
        self._scheduled = False
        while self._inflight < MAX_REQUESTS and self._queue:
            batch: list[_Waiter] = []
            while self._queue and len(batch) < self._max_files:
                waiter = self._queue.popleft()
                if not waiter[1].done():  # its reader gave up (cancelled): not worth asking for
                    batch.append(waiter)
            if not batch:
                continue
            self._inflight += 1
            task = asyncio.get_running_loop().create_task(self._fetch(batch))
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._inflight -= 1
        self._schedule()

    async def _fetch(self, batch: list[_Waiter]) -> None:
        waiting = deque(batch)
        try:
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
                    if response.status == 400 and b"CHECKSUM_MISMATCH" in await response.content.read(
                        64 * 1024
                    ):
                        raise TransientError(f"POST {self._url}: the request was damaged on the way")
                    await raise_for_status(response)
                    if (
                        response.headers.get("Content-Type", "").split(";")[0].strip()
                        != BATCH_READ_CONTENT_TYPE
                    ):
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
        except BaseException as exc:
            error = exc if isinstance(exc, Exception) else TransientError("batch read: interrupted")
            for _, future in waiting:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise

    @staticmethod
    async def _deliver(content: aiohttp.StreamReader, waiting: deque[_Waiter]) -> None:
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
