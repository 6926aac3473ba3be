"""A fault-injecting HTTP reverse proxy for reliability tests and benchmarks.

It sits between hc and a registry (127.0.0.1 only), streams request and response bodies both ways,
and breaks a chosen fraction of requests in a chosen way:

=================  =====================================================================================
fault              what the client sees
=================  =====================================================================================
``reset``          a TCP RST before any response byte (the upstream never sees the request)
``reset-request``  part of the request body reaches the upstream, then both connections are reset
``reset-response`` the upstream's status, headers and part of its body, then a RST
``stall``          nothing for ``stall_seconds``, then the normal answer
``hang``           nothing until the client gives up (or ``hang_max`` seconds pass; then a RST)
``500`` ``502``    that status with a JSON error body, from the proxy (the upstream never sees it)
``503`` ``504``
``502-after``      the request *is* forwarded and answered upstream; the client gets a 502 instead
``429``            429 with ``Retry-After: <retry_after>`` (seconds)
``429-date``       429 with ``Retry-After: <HTTP date retry_after seconds from now>``
``truncate``       the upstream's headers (true Content-Length), half the body, then a clean close
``bad-length``     a Content-Length larger than the body, the whole body, then a clean close
``short-length``   a Content-Length smaller than the body: the client silently gets a short body
``flip``           one bit flipped in the response body (length unchanged)
``flip-request``   one bit flipped in the request body on its way to the upstream
``refuse``         a RST, and the proxy stops listening for ``refuse_seconds`` (connection refused)
=================  =====================================================================================

Which requests fail is decided by a seeded RNG keyed on ``(seed, method, raw path, how many times
this exact request was seen)``, so the same job meets the same faults whatever the interleaving of
its concurrent requests, and a retried request draws again. Faults that cannot apply to a request
(a body fault on a HEAD, ``reset-request`` without a body) are chosen only among those that can;
a body fault whose response turns out to be empty is counted in ``stats.inapplicable``.

Everything is counted (``stats``: requests by method and status, faults injected, upstream errors),
in process or as JSON at ``GET /__faultproxy__/stats``; ``POST /__faultproxy__/config`` with a
JSON object changes ``rate``/``faults``/``latency``/``match`` on the fly.

Use it in process::

    async with FaultProxy("http://127.0.0.1:3000", rate=0.1, faults=["reset", "503"]) as proxy:
        ...  # point the client at proxy.url; afterwards assert proxy.stats.injected[...] > 0

or as a script::

    python tests/reliability/faultproxy.py --listen 127.0.0.1:8080 --upstream http://127.0.0.1:3000 \\
        --rate 0.1 --faults reset,500,429 --latency 0.02

The module is self-contained (aiohttp and the standard library) so benchmarks can import it by path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import enum
import hashlib
import json
import random
import re
import signal
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector, web
from yarl import URL

__all__ = [
    "ALL_FAULTS",
    "Fault",
    "FaultProxy",
    "ProxyConfig",
    "ProxyStats",
    "ThreadedProxy",
    "main",
]

CONTROL_PREFIX = "/__faultproxy__/"
_CHUNK = 64 * 1024
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


class Fault(enum.StrEnum):
    RESET = "reset"
    RESET_REQUEST = "reset-request"
    RESET_RESPONSE = "reset-response"
    STALL = "stall"
    HANG = "hang"
    HTTP_500 = "500"
    HTTP_502 = "502"
    HTTP_503 = "503"
    HTTP_504 = "504"
    HTTP_502_AFTER = "502-after"
    RATE_LIMIT = "429"
    RATE_LIMIT_DATE = "429-date"
    TRUNCATE = "truncate"
    BAD_LENGTH = "bad-length"
    SHORT_LENGTH = "short-length"
    FLIP = "flip"
    FLIP_REQUEST = "flip-request"
    REFUSE = "refuse"


ALL_FAULTS: tuple[Fault, ...] = tuple(Fault)

_STATUS_FAULTS = {Fault.HTTP_500: 500, Fault.HTTP_502: 502, Fault.HTTP_503: 503, Fault.HTTP_504: 504}
#: Faults that need a response body to exist (not for HEAD).
_RESPONSE_BODY_FAULTS = frozenset(
    {Fault.RESET_RESPONSE, Fault.TRUNCATE, Fault.BAD_LENGTH, Fault.SHORT_LENGTH, Fault.FLIP}
)
#: Faults that need a request body.
_REQUEST_BODY_FAULTS = frozenset({Fault.RESET_REQUEST, Fault.FLIP_REQUEST})


def parse_faults(text: str | Iterable[str]) -> tuple[Fault, ...]:
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else list(text)
    try:
        return tuple(Fault(n) for n in names if n)
    except ValueError as exc:
        raise ValueError(f"{exc}; known faults: {', '.join(f.value for f in Fault)}") from None


@dataclass(kw_only=True)
class ProxyConfig:
    """What to break and how. Mutable: tests may change it between (or during) jobs."""

    rate: float = 0.0
    faults: tuple[Fault, ...] = ()
    seed: int = 0
    #: fixed delay added to every request before it is forwarded (benchmarks' "WAN": 0.02)
    latency: float = 0.0
    stall_seconds: float = 1.0
    #: a hanging request is reset after this long if the client has not given up by then
    hang_max: float = 300.0
    retry_after: int = 1
    refuse_seconds: float = 0.3
    #: only requests whose raw path matches may fail (``None``: every request)
    match: re.Pattern[str] | None = None
    #: only these methods may fail (``None``: every method)
    methods: frozenset[str] | None = None
    #: only the first N attempts of each distinct request may fail (``None``: any attempt), so
    #: ``rate=1, first_attempts=1`` fails every request exactly once
    first_attempts: int | None = None
    #: keep "METHOD raw-path" of every request in ``stats.request_lines``
    record: bool = False
    #: requests whose raw path matches are held (their body unread) until ``release()``: a test
    #: can then change the world (a source file, the server) while a request is in flight
    hold: re.Pattern[str] | None = None

    def update(self, data: dict[str, Any]) -> None:
        if "rate" in data:
            self.rate = float(data["rate"])
        if "faults" in data:
            self.faults = parse_faults(data["faults"])
        if "latency" in data:
            self.latency = float(data["latency"])
        if "match" in data:
            self.match = re.compile(data["match"]) if data["match"] else None
        if "seed" in data:
            self.seed = int(data["seed"])
        if "first_attempts" in data:
            self.first_attempts = None if data["first_attempts"] is None else int(data["first_attempts"])


@dataclass
class ProxyStats:
    requests: int = 0
    by_method: Counter[str] = field(default_factory=Counter)
    #: status sent to the client (0 when the connection was reset or hung up before a status)
    by_status: Counter[int] = field(default_factory=Counter)
    #: status the upstream answered, for requests that reached it
    upstream_status: Counter[int] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    inapplicable: Counter[str] = field(default_factory=Counter)
    upstream_errors: int = 0
    #: requests held so far (see ``ProxyConfig.hold``)
    held: int = 0
    #: total time the listener was closed by ``refuse`` faults
    refused_seconds: float = 0.0
    request_lines: list[str] = field(default_factory=list)

    @property
    def faults(self) -> int:
        return sum(self.injected.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_method": dict(self.by_method),
            "by_status": {str(k): v for k, v in self.by_status.items()},
            "upstream_status": {str(k): v for k, v in self.upstream_status.items()},
            "injected": dict(self.injected),
            "inapplicable": dict(self.inapplicable),
            "upstream_errors": self.upstream_errors,
            "refused_seconds": round(self.refused_seconds, 3),
        }


class _Cut(Exception):
    """Raised inside a forwarded request body to break the upstream request off."""


def _reset(request: web.BaseRequest) -> None:
    """Abort the client's connection with a RST (SO_LINGER 0), not a polite FIN."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _close(request: web.BaseRequest) -> None:
    """Close the client's connection cleanly (FIN) after what was written is flushed."""
    if request.transport is not None:
        request.transport.close()


def _has_body(request: web.BaseRequest) -> bool:
    return (request.content_length or 0) > 0 or request.headers.get("Transfer-Encoding", "") == "chunked"


class FaultProxy:
    """The proxy, on the running event loop. ``async with`` starts and stops it."""

    def __init__(
        self,
        upstream: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        config: ProxyConfig | None = None,
        **config_fields: Any,
    ) -> None:
        if config is not None and config_fields:
            raise TypeError("pass either config or its fields, not both")
        if "faults" in config_fields:
            config_fields["faults"] = parse_faults(config_fields["faults"])
        for name in ("match", "hold"):
            if isinstance(config_fields.get(name), str):
                config_fields[name] = re.compile(config_fields[name])
        self.upstream = upstream.rstrip("/")
        self.host = host
        self.port = port
        self.config = config or ProxyConfig(**config_fields)
        self.stats = ProxyStats()
        self._seen: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None
        self._site: web.SockSite | None = None
        self._session: ClientSession | None = None
        self._refusing_until = 0.0
        self._reopen: asyncio.TimerHandle | None = None
        self._released: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- lifecycle ----------------------------------------------------------------------------

    def release(self) -> None:
        """Let every held request (and any later one that matches ``hold``) go on. Call it on the
        proxy's loop (``loop.call_soon_threadsafe(proxy.release)`` from another thread)."""
        if self._released is None:
            self._released = asyncio.Event()
        self._released.set()

    async def start(self) -> FaultProxy:
        if self._released is None:
            self._released = asyncio.Event()
        app = web.Application(handler_args={"max_field_size": 65536})
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # aiohttp's own disconnect cancellation would hide hangs; the handler watches the transport.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        self._session = ClientSession(
            connector=TCPConnector(limit=0, force_close=False),
            timeout=ClientTimeout(total=None, sock_connect=10, sock_read=None),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        )
        await self._listen()
        return self

    async def stop(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _listen(self) -> None:
        assert self._runner is not None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._site = web.SockSite(self._runner, sock)
        await self._site.start()

    async def _stop_listening(self) -> None:
        """Close the listening socket (live connections stay); new connections are refused."""
        if self._site is not None:
            site, self._site = self._site, None
            await site.stop()

    def _refuse_for(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        until = max(self._refusing_until, now + seconds)
        self.stats.refused_seconds += until - max(self._refusing_until, now)
        self._refusing_until = until
        if self._site is not None:
            self._keep(loop.create_task(self._stop_listening()))
        if self._reopen is not None:
            self._reopen.cancel()
        self._reopen = loop.call_at(
            self._refusing_until, lambda: self._keep(loop.create_task(self._relisten()))
        )

    def _keep(self, task: asyncio.Task[None]) -> None:
        # The loop only keeps weak references to tasks: hold them until they are done.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _relisten(self) -> None:
        self._reopen = None
        if self._site is None and self._runner is not None:
            with contextlib.suppress(OSError):  # the port was taken meanwhile: stay closed
                await self._listen()

    # -- decisions ----------------------------------------------------------------------------

    def _choose(self, request: web.BaseRequest) -> tuple[Fault | None, random.Random]:
        """The fault for this request (or None) and the RNG that decides its details (where a
        body is cut, which bit flips), both a pure function of the seed and the request."""
        config = self.config
        key = f"{request.method} {request.raw_path}"
        attempt = self._seen[key]
        self._seen[key] += 1
        rng = random.Random(hashlib.sha256(f"{config.seed}\0{key}\0{attempt}".encode()).digest())
        if config.rate <= 0 or not config.faults:
            return None, rng
        if config.match is not None and not config.match.search(request.raw_path):
            return None, rng
        if config.methods is not None and request.method not in config.methods:
            return None, rng
        if config.first_attempts is not None and attempt >= config.first_attempts:
            return None, rng
        if rng.random() >= config.rate:
            return None, rng
        candidates = [
            f
            for f in config.faults
            if not (f in _RESPONSE_BODY_FAULTS and request.method == "HEAD")
            and not (f in _REQUEST_BODY_FAULTS and not _has_body(request))
        ]
        if not candidates:
            return None, rng
        return rng.choice(candidates), rng

    # -- the handler --------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await self._control(request)
        stats = self.stats
        stats.requests += 1
        stats.by_method[request.method] += 1
        if self.config.record:
            stats.request_lines.append(f"{request.method} {request.raw_path}")
        fault, rng = self._choose(request)
        hold = self.config.hold
        if hold is not None and hold.search(request.raw_path) and self._released is not None:
            stats.held += 1
            await self._released.wait()
        if self.config.latency > 0:
            await asyncio.sleep(self.config.latency)
        try:
            if fault is None:
                return await self._forward(request, None, rng)
            return await self._inject(request, fault, rng)
        except ConnectionError:
            return web.Response()  # the client went away (or was killed): nothing left to say

    async def _inject(self, request: web.Request, fault: Fault, rng: random.Random) -> web.StreamResponse:
        stats, config = self.stats, self.config
        if fault in (Fault.RESET, Fault.REFUSE):
            stats.injected[fault] += 1
            stats.by_status[0] += 1
            _reset(request)
            if fault is Fault.REFUSE:
                self._refuse_for(config.refuse_seconds)
            return web.Response()
        if fault is Fault.HANG:
            stats.injected[fault] += 1
            stats.by_status[0] += 1
            deadline = time.monotonic() + config.hang_max
            while request.transport is not None and not request.transport.is_closing():
                if time.monotonic() >= deadline:
                    _reset(request)
                    break
                await asyncio.sleep(0.05)
            return web.Response()
        if fault in _STATUS_FAULTS:
            stats.injected[fault] += 1
            return self._answer(_STATUS_FAULTS[fault], "injected by faultproxy")
        if fault in (Fault.RATE_LIMIT, Fault.RATE_LIMIT_DATE):
            stats.injected[fault] += 1
            if fault is Fault.RATE_LIMIT:
                retry_after = str(config.retry_after)
            else:
                retry_after = email.utils.formatdate(time.time() + config.retry_after, usegmt=True)
            return self._answer(429, "slow down (faultproxy)", {"Retry-After": retry_after})
        if fault is Fault.STALL:
            stats.injected[fault] += 1
            await asyncio.sleep(config.stall_seconds)
            return await self._forward(request, None, rng)
        return await self._forward(request, fault, rng)

    def _answer(self, status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
        self.stats.by_status[status] += 1
        body = json.dumps({"code": "FAULTPROXY", "message": message})
        response = web.Response(status=status, text=body, content_type="application/json", headers=headers)
        response.force_close()
        return response

    async def _forward(
        self, request: web.Request, fault: Fault | None, rng: random.Random
    ) -> web.StreamResponse:
        assert self._session is not None
        stats = self.stats
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body: AsyncIterator[bytes] | None = None
        if _has_body(request):
            body = self._request_body(request, fault, rng)
        url = URL(self.upstream + request.raw_path, encoded=True)
        try:
            upstream = await self._session.request(
                request.method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
            )
        except _Cut:
            stats.by_status[0] += 1
            _reset(request)
            return web.Response()
        except (ClientError, OSError, TimeoutError) as exc:
            if fault is Fault.RESET_REQUEST and isinstance(exc.__cause__ or exc.__context__, _Cut):
                stats.by_status[0] += 1
                _reset(request)
                return web.Response()
            stats.upstream_errors += 1
            return self._answer(502, f"upstream unavailable: {type(exc).__name__}")
        async with upstream:
            stats.upstream_status[upstream.status] += 1
            if fault is Fault.HTTP_502_AFTER:
                await upstream.read()
                stats.injected[fault] += 1
                return self._answer(502, "bad gateway after the upstream answered (faultproxy)")
            return await self._relay(request, upstream, fault, rng)

    async def _request_body(
        self, request: web.Request, fault: Fault | None, rng: random.Random
    ) -> AsyncIterator[bytes]:
        length = request.content_length
        cut: int | None = None
        flip: int | None = None
        if fault is Fault.RESET_REQUEST:
            cut = rng.randrange(max(1, length or 1))
        elif fault is Fault.FLIP_REQUEST:
            flip = rng.randrange(max(1, length or 1))
        position = 0
        async for chunk in request.content.iter_chunked(_CHUNK):
            if cut is not None and position + len(chunk) > cut:
                head = chunk[: cut - position]
                self.stats.injected[Fault.RESET_REQUEST] += 1
                if head:
                    yield head
                    await asyncio.sleep(0.05)  # let the partial body reach the upstream first
                raise _Cut()
            if flip is not None and position <= flip < position + len(chunk):
                mutable = bytearray(chunk)
                mutable[flip - position] ^= 1 << rng.randrange(8)
                chunk = bytes(mutable)
                self.stats.injected[Fault.FLIP_REQUEST] += 1
            position += len(chunk)
            yield chunk

    async def _relay(
        self, request: web.Request, upstream: Any, fault: Fault | None, rng: random.Random
    ) -> web.StreamResponse:
        stats = self.stats
        headers = {
            k: v
            for k, v in upstream.headers.items()
            if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"
        }
        length = upstream.content_length
        no_body = request.method == "HEAD" or upstream.status in (204, 304) or length == 0
        if fault in _RESPONSE_BODY_FAULTS and no_body:
            stats.inapplicable[fault] += 1
            fault = None
        response = web.StreamResponse(status=upstream.status, headers=headers)
        if length is not None:
            response.content_length = length
        if fault is not None and fault in _RESPONSE_BODY_FAULTS:
            # Body faults need the whole body first (its length decides where to break it).
            data = await upstream.read()
            if len(data) < 2:
                stats.inapplicable[fault] += 1
                fault = None
            else:
                return await self._broken_body(request, response, data, fault, rng)
        stats.by_status[upstream.status] += 1
        await response.prepare(request)
        if request.method != "HEAD":
            async for chunk in upstream.content.iter_chunked(_CHUNK):
                await response.write(chunk)
        await response.write_eof()
        return response

    async def _broken_body(
        self,
        request: web.Request,
        response: web.StreamResponse,
        data: bytes,
        fault: Fault,
        rng: random.Random,
    ) -> web.StreamResponse:
        stats = self.stats
        stats.injected[fault] += 1
        stats.by_status[response.status] += 1
        if fault is Fault.FLIP:
            mutable = bytearray(data)
            mutable[rng.randrange(len(mutable))] ^= 1 << rng.randrange(8)
            response.content_length = len(mutable)
            await response.prepare(request)
            await response.write(bytes(mutable))
            await response.write_eof()
            return response
        if fault is Fault.SHORT_LENGTH:
            short = rng.randrange(1, len(data))
            response.content_length = short
            await response.prepare(request)
            await response.write(data[:short])
            await response.write_eof()
            response.force_close()  # what the client did not read must not poison the next answer
            return response
        if fault is Fault.BAD_LENGTH:
            response.content_length = len(data) + rng.randrange(1, 4096)
            await response.prepare(request)
            await response.write(data)
            await asyncio.sleep(0.01)
            _close(request)
            return response
        # reset-response and truncate: part of the body, then a RST or a clean close
        response.content_length = len(data)
        await response.prepare(request)
        await response.write(data[: rng.randrange(1, len(data))])
        await asyncio.sleep(0.01)  # let the partial body leave before the connection goes
        if fault is Fault.RESET_RESPONSE:
            _reset(request)
        else:
            _close(request)
        return response

    async def _control(self, request: web.Request) -> web.Response:
        name = request.path[len(CONTROL_PREFIX) :]
        if name == "stats" and request.method == "GET":
            return web.json_response(self.stats.to_json())
        if name == "config" and request.method == "POST":
            try:
                self.config.update(await request.json())
            except (ValueError, TypeError, re.error) as exc:
                return web.json_response({"message": str(exc)}, status=400)
            return web.json_response({"rate": self.config.rate, "faults": list(self.config.faults)})
        return web.json_response({"message": "unknown faultproxy control"}, status=404)


class ThreadedProxy:
    """A ``FaultProxy`` on an event loop of its own in a daemon thread (for synchronous callers,
    such as a test that runs the CLI with ``asyncio.run`` in the main thread)."""

    def __init__(self, upstream: str, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faultproxy", daemon=True)
        self._thread.start()
        self.proxy = FaultProxy(upstream, **kwargs)
        self.call(self.proxy.start())

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def stats(self) -> ProxyStats:
        return self.proxy.stats

    @property
    def config(self) -> ProxyConfig:
        return self.proxy.config

    def close(self) -> None:
        try:
            self.call(self.proxy.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()

    def __enter__(self) -> ThreadedProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def threaded_proxy(upstream: str, **kwargs: Any) -> Iterator[ThreadedProxy]:
    proxy = ThreadedProxy(upstream, **kwargs)
    try:
        yield proxy
    finally:
        proxy.close()


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, not {text!r}")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=_address, default=("127.0.0.1", 0), help="HOST:PORT to listen on")
    parser.add_argument("--upstream", required=True, help="base URL of the real server")
    parser.add_argument("--rate", type=float, default=0.0, help="fraction of requests to break (0..1)")
    parser.add_argument("--faults", default="", help="comma-separated: " + ",".join(f.value for f in Fault))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--stall", type=float, default=1.0, help="seconds a 'stall' waits")
    parser.add_argument("--hang-max", type=float, default=300.0, help="seconds before a 'hang' resets")
    parser.add_argument("--retry-after", type=int, default=1, help="seconds a 429 asks the client to wait")
    parser.add_argument("--refuse-seconds", type=float, default=0.3, help="how long 'refuse' stays closed")
    parser.add_argument("--match", default=None, help="only paths matching this regex may fail")
    parser.add_argument(
        "--first-attempts", type=int, default=None, help="only the first N attempts of a request may fail"
    )
    args = parser.parse_args(argv)
    host, port = args.listen
    if host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the fault proxy only listens on loopback")
    config = ProxyConfig(
        rate=args.rate,
        faults=parse_faults(args.faults),
        seed=args.seed,
        latency=args.latency,
        stall_seconds=args.stall,
        hang_max=args.hang_max,
        retry_after=args.retry_after,
        refuse_seconds=args.refuse_seconds,
        match=re.compile(args.match) if args.match else None,
        first_attempts=args.first_attempts,
    )

    async def serve() -> None:
        async with FaultProxy(args.upstream, host=host, port=port, config=config) as proxy:
            print(f"faultproxy listening on {proxy.url} -> {args.upstream}", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            print(json.dumps(proxy.stats.to_json()), flush=True)

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
