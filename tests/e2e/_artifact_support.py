"""Helpers for the ``hc artifact`` end-to-end tests: servers in a background thread.

The CLI runs its own event loop (``asyncio.run``), so a server it talks to must not live in the
test's loop: these helpers run an aiohttp app on 127.0.0.1 in a thread with a loop of its own.
``live_registry`` serves the real embedded registry (with a request counter in front of it);
``serve_app`` serves any app (a fake for hostile answers).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from hc.server.app import create_app
from hc.server.embedded import ensure_local_credentials

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class LiveRegistry:
    url: str
    account: str
    token: str
    #: (method, "pkg" | "api") → requests seen
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)

    def args(self, token: str | None = None) -> tuple[str, ...]:
        """Global flags pointing hc at this server."""
        return ("--api-url", self.url, "--token", token or self.token)

    def count(self, method: str, kind: str = "pkg") -> int:
        return self.requests[(method, kind)]

    def uploads(self) -> int:
        """Files received: one per ``PUT …/files/…``, one per file of a batch write."""
        return self.requests[("upload", "file")]


@contextmanager
def serve_app(app: web.Application) -> Iterator[str]:
    """Serve ``app`` on a free 127.0.0.1 port in a background thread; yields its base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, name="test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


@contextmanager
def live_registry(data_dir: Path) -> Iterator[LiveRegistry]:
    """The real registry app over ``data_dir``, counting requests by method and kind."""
    credentials = ensure_local_credentials(data_dir)
    counter: Counter[tuple[str, str]] = Counter()

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        counter[(request.method, "pkg" if request.path.startswith("/pkg/") else "api")] += 1
        response = await handler(request)
        if request.method == "PUT" and "/files/" in request.path:
            counter[("upload", "file")] += 1
        elif request.path.endswith("/batch-write") and isinstance(response, web.Response) and response.body:
            body = response.body if isinstance(response.body, bytes) else b"{}"
            counter[("upload", "file")] += len(json.loads(body).get("data", {}).get("results", []))
        return response

    app = create_app(data_dir=data_dir)
    app.middlewares.insert(0, count)
    with serve_app(app) as url:
        yield LiveRegistry(url=url, account=credentials.account, token=credentials.token, requests=counter)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_tree(root: Path) -> dict[str, bytes]:
    """A small tree: nested dirs, a hidden file and dir, an empty file and a 3 MiB file.
    Returns relative path → bytes for the files that a push without --include-hidden sends."""
    files = {
        "a.txt": b"alpha\n",
        "empty.bin": b"",
        "nested/deeper/b.txt": b"bravo" * 100,
        "nested/c with space.txt": b"charlie\n",
        "big.bin": bytes(range(256)) * (3 * 4096),  # 3 MiB
    }
    hidden = {".hidden": b"secret\n", ".dotdir/inside.txt": b"inside\n"}
    for rel, data in {**files, **hidden}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files
