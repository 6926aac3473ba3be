"""Calls made one at a time by many tasks, sent many to a request (batch reads and writes): the
queue (``Coalescer``) and the request (``BatchPoster``).

Each ``call`` joins a queue and waits for its own answer. A request goes out as soon as fewer than
``MAX_REQUESTS`` are in flight, carrying its share of what is queued by then (up to ``max_items``,
and up to ``max_bytes`` of payload); what is queued while requests are in flight waits for the
next. So a lone call goes at once, and under load the batches grow by themselves (the
group-commit pattern), with no timer to tune.

A request that fails fails every call it had not yet answered, each with that error: the engine
retries items, not batches, and a retried item simply joins a later batch. Every request carries
the sha256 of its body (``X-Checksum-Sha256``): a body damaged on the way is refused whole (400
``CHECKSUM_MISMATCH``, a TransientError here) rather than read as a request for other files.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Final, Generic, TypeVar

import aiohttp
from yarl import URL

from hc.api._http import map_http_errors, raise_for_status
from hc.errors import TransientError

__all__ = ["MAX_REQUESTS", "BatchPoster", "Coalescer", "Waiter"]

#: Requests in flight at once: one being answered while the next one gathers and is sent.
MAX_REQUESTS: Final = 2

Req = TypeVar("Req")
Res = TypeVar("Res")

#: One queued call: what it asks for and where its answer goes.
Waiter = tuple[Req, "asyncio.Future[Res]"]


class Coalescer(Generic[Req, Res]):
    """Queue, batch and send; ``send`` (given) answers every future of the batch it is handed."""

    __slots__ = (
        "_inflight",
        "_max_bytes",
        "_max_items",
        "_queue",
        "_scheduled",
        "_send",
        "_size_of",
        "_tasks",
    )

    def __init__(
        self,
        send: Callable[[list[Waiter[Req, Res]]], Awaitable[None]],
        *,
        max_items: int,
        max_bytes: int | None = None,
        size_of: Callable[[Req], int] | None = None,
    ) -> None:
        self._send = send
        self._max_items = max(1, max_items)  # 0 would never take an item off the queue
        self._max_bytes = max_bytes
        self._size_of = size_of
        self._queue: deque[Waiter[Req, Res]] = deque()
        self._inflight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()  # strong references while they run

    async def call(self, request: Req) -> Res:
        future: asyncio.Future[Res] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        self._schedule()
        return await future

    def _schedule(self) -> None:
        # On the next loop turn, so that every task ready in this one joins the same request.
        if not self._scheduled and self._inflight < MAX_REQUESTS and self._queue:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._send_queued)

    def _take_batch(self) -> list[Waiter[Req, Res]]:
        # The queue is shared among the free request slots: a burst becomes two half batches, so
        # the callers of one can prepare their next items while the other is answered (all in one
        # batch, they would all wait together and the requests would go in lock-step).
        share = min(self._max_items, -(-len(self._queue) // (MAX_REQUESTS - self._inflight)))
        batch: list[Waiter[Req, Res]] = []
        size = 0
        while self._queue and len(batch) < share:
            request, future = self._queue[0]
            if future.done():  # its caller gave up (cancelled): not worth sending
                self._queue.popleft()
                continue
            if self._max_bytes is not None and self._size_of is not None:
                size += self._size_of(request)
                if batch and size > self._max_bytes:
                    break
            batch.append(self._queue.popleft())
        return batch

    def _send_queued(self) -> None:
        self._scheduled = False
        while self._inflight < MAX_REQUESTS and self._queue:
            batch = self._take_batch()
            if not batch:
                continue
            self._inflight += 1
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._inflight -= 1
        self._schedule()

    async def _run(self, batch: list[Waiter[Req, Res]]) -> None:
        try:
            await self._send(batch)
        except BaseException as exc:
            error = exc if isinstance(exc, Exception) else TransientError("batch request interrupted")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
        else:
            for request, future in batch:
                if not future.done():  # the answer skipped it: a broken server
                    future.set_exception(TransientError(f"the batch answer left out {request!r}"))


class BatchPoster:
    """The requests of one batch endpoint: its URL, the command's headers, a stall timeout."""

    __slots__ = ("_headers", "_session", "_timeout", "url")

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        headers: Callable[[], Mapping[str, str]],
        *,
        stall_timeout: float,
    ) -> None:
        self._session = session
        self.url = url
        self._headers = headers
        # A request that receives nothing for this long fails its items (TransientError).
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=stall_timeout, sock_read=stall_timeout)

    @asynccontextmanager
    async def post(self, body: bytes, content_type: str) -> AsyncIterator[aiohttp.ClientResponse]:
        """POST ``body``; the 2xx response, its errors (reading it included) as ``hc.errors``."""
        headers = {
            **self._headers(),
            "Content-Type": content_type,
            "X-Checksum-Sha256": hashlib.sha256(body).hexdigest(),
        }
        with map_http_errors("POST", self.url):
            async with self._session.post(
                URL(self.url, encoded=True),
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                if response.status == 400 and b"CHECKSUM_MISMATCH" in await response.content.read(64 * 1024):
                    raise TransientError(f"POST {self.url}: the request was damaged on the way")
                await raise_for_status(response)
                yield response
