"""A TCP proxy in front of an hc server that adds latency and counts what crosses it.

- **Latency ("WAN")**: every chunk is delivered ``rtt/2`` after it arrived, in each direction, and
  the first bytes of a connection wait one more ``rtt`` (the TCP handshake a real link would
  cost). A request/response exchange therefore costs ``rtt`` more than on loopback, whatever its
  size, while bandwidth is unchanged: the model of a fast link far away.
- **Counting**: bytes in each direction and HTTP/1.1 requests (by method). Requests are counted by
  following the framing of the client→server stream (heads, ``Content-Length`` and chunked
  bodies), so pipelined and keep-alive requests are all seen.
- **Kill switch**: ``watch_bytes(direction, threshold, callback)`` calls ``callback`` once when
  that many bytes have crossed (used to SIGKILL a client half-way through a transfer).

The proxy runs its own event loop on a background thread, so the harness's main thread can block
in ``os.wait4`` while it works. Only 127.0.0.1 is ever bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Proxy", "ProxyStats", "RequestFramer"]

_CHUNK = 256 * 1024
_MAX_HEAD = 256 * 1024


@dataclass
class ProxyStats:
    bytes_up: int = 0  # client → server
    bytes_down: int = 0  # server → client
    connections: int = 0
    requests: Counter[str] = field(default_factory=Counter)

    @property
    def request_count(self) -> int:
        return sum(self.requests.values())

    def snapshot(self) -> ProxyStats:
        return ProxyStats(self.bytes_up, self.bytes_down, self.connections, Counter(self.requests))

    def minus(self, before: ProxyStats) -> ProxyStats:
        return ProxyStats(
            self.bytes_up - before.bytes_up,
            self.bytes_down - before.bytes_down,
            self.connections - before.connections,
            self.requests - before.requests,
        )


class RequestFramer:
    """Follows HTTP/1.1 request framing in a client→server byte stream and reports each request
    head's method. Bodies are skipped by length (``Content-Length`` or chunked encoding)."""

    def __init__(self, on_request: Callable[[str], None]) -> None:
        self._on_request = on_request
        self._buffer = bytearray()
        self._state = "head"  # head | body | chunk_size | chunk_data | chunk_crlf | trailer
        self._remaining = 0
        self.broken = False

    def feed(self, data: bytes) -> None:
        if self.broken:
            return
        view = memoryview(data)
        while view:
            if self._state in ("body", "chunk_data"):
                take = min(self._remaining, len(view))
                self._remaining -= take
                view = view[take:]
                if self._remaining == 0:
                    self._state = "head" if self._state == "body" else "chunk_crlf"
                continue
            if self._state == "chunk_crlf":
                # the CRLF after a chunk's data: two bytes, possibly split across reads
                self._buffer += view[:1]
                view = view[1:]
                if len(self._buffer) == 2:
                    self._buffer.clear()
                    self._state = "chunk_size"
                continue
            # line-oriented states: gather until the terminator we need
            self._buffer += view
            view = memoryview(b"")
            self._drain_lines()
            if len(self._buffer) > _MAX_HEAD:
                self.broken = True  # not HTTP/1.1 as we know it: stop counting, keep proxying
                return

    def _drain_lines(self) -> None:
        while True:
            if self._state == "head":
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self._buffer[:end]).decode("latin-1")
                rest = bytes(self._buffer[end + 4 :])
                self._buffer.clear()
                self._start_request(head)
            elif self._state == "chunk_size":
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(self._buffer[:end]).split(b";")[0].strip() or b"0", 16)
                rest = bytes(self._buffer[end + 2 :])
                self._buffer.clear()
                if size == 0:
                    self._state = "trailer"
                else:
                    self._state, self._remaining = "chunk_data", size
            elif self._state == "trailer":
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    return
                line = bytes(self._buffer[:end])
                rest = bytes(self._buffer[end + 2 :])
                self._buffer.clear()
                if not line:
                    self._state = "head"
            else:
                return
            if rest:
                self.feed(rest)
            return

    def _start_request(self, head: str) -> None:
        lines = head.split("\r\n")
        method = lines[0].split(" ", 1)[0]
        self._on_request(method)
        length, chunked = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if chunked:
            self._state = "chunk_size"
        elif length > 0:
            self._state, self._remaining = "body", length
        else:
            self._state = "head"


class Proxy:
    """``with Proxy(target_port, rtt_ms=20) as proxy: ... proxy.base_url ... proxy.stats``."""

    def __init__(self, target_port: int, *, rtt_ms: float = 0.0, target_host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self._one_way = rtt_ms / 2000.0
        self._handshake = rtt_ms / 1000.0
        self.stats = ProxyStats()
        self._lock = threading.Lock()
        self._watches: list[tuple[str, int, Callable[[], None]]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bench-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Proxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def snapshot(self) -> ProxyStats:
        with self._lock:
            return self.stats.snapshot()

    def watch_bytes(self, direction: str, threshold: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the proxy thread) once ``direction`` ("up"/"down") has carried
        ``threshold`` more bytes than now."""
        with self._lock:
            base = self.stats.bytes_up if direction == "up" else self.stats.bytes_down
            self._watches.append((direction, base + threshold, callback))

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._handle, "127.0.0.1", 0, limit=_CHUNK)

    def _count(self, direction: str, n: int) -> None:
        fire: list[tuple[str, int, Callable[[], None]]] = []
        with self._lock:
            if direction == "up":
                self.stats.bytes_up += n
                total = self.stats.bytes_up
            else:
                self.stats.bytes_down += n
                total = self.stats.bytes_down
            if self._watches:
                keep: list[tuple[str, int, Callable[[], None]]] = []
                for watch in self._watches:
                    (fire if watch[0] == direction and total >= watch[1] else keep).append(watch)
                self._watches = keep
        for _, _, callback in fire:
            callback()

    def _count_request(self, method: str) -> None:
        with self._lock:
            self.stats.requests[method] += 1

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        # a handler cancelled at shutdown must end quietly: asyncio's stream callback asks the task
        # for its exception, and a cancelled task answers by raising
        with contextlib.suppress(asyncio.CancelledError):
            await self._relay(client_r, client_w)

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        accepted = time.monotonic()
        with self._lock:
            self.stats.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection(*self._target, limit=_CHUNK)
        except OSError:
            client_w.close()
            return
        framer = RequestFramer(self._count_request)
        up = asyncio.ensure_future(self._pump(client_r, server_w, "up", accepted + self._handshake, framer))
        down = asyncio.ensure_future(self._pump(server_r, client_w, "down", 0.0, None))
        try:
            await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (up, down):
                task.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
            for writer in (client_w, server_w):
                with contextlib.suppress(Exception):
                    writer.close()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: str,
        not_before: float,
        framer: RequestFramer | None,
    ) -> None:
        if self._one_way <= 0 and not_before <= 0:
            await self._copy(reader, writer, direction, framer)
            return
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=512)

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
            with contextlib.suppress(OSError):
                writer.write_eof()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(_CHUNK)
                self._note(direction, data, framer)
                await queue.put((max(time.monotonic(), not_before) + self._one_way, data))
                if not data:
                    break
            await sender
        finally:
            sender.cancel()

    async def _copy(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: str,
        framer: RequestFramer | None,
    ) -> None:
        while True:
            data = await reader.read(_CHUNK)
            self._note(direction, data, framer)
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    def _note(self, direction: str, data: bytes, framer: RequestFramer | None) -> None:
        if data:
            self._count(direction, len(data))
            if framer is not None:
                framer.feed(data)
