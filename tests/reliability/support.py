"""What the reliability tests share: servers in a background loop or as processes, the hc CLI
in process or as a subprocess, deterministic file trees, and ground-truth listings.

Ground truth never goes through the fault proxy: listings used to *check* a result are fetched
straight from the registry, and stores are checked with ``hc server fsck``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from click.testing import CliRunner

from hc.cli import cli
from hc.server.app import create_app
from hc.server.embedded import ensure_local_credentials

from .faultproxy import FaultProxy

T = TypeVar("T")

#: Environment variables that would point hc somewhere else than the test's own sandbox.
LEAKY_ENV = (
    "HARNESS_API_URL",
    "HARNESS_API_KEY",
    "HARNESS_ACCOUNT_ID",
    "HARNESS_PKG_URL",
    "ORG_IDENTIFIER",
    "PROJECT_IDENTIFIER",
    "HC_HOME",
    "XDG_DATA_HOME",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "NO_PROXY",
    "no_proxy",
)


# -- event loop in a thread ---------------------------------------------------------------------


class LoopThread:
    """An asyncio loop in a daemon thread: servers and proxies live here while the CLI (which runs
    ``asyncio.run`` itself) runs in the test's thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="reliability-loop", daemon=True)
        self._thread.start()
        self._cleanups: list[Coroutine[Any, Any, Any]] = []

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            with contextlib.suppress(Exception):  # best effort at teardown
                self.run(cleanup)
        with contextlib.suppress(Exception):
            self.run(_cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()

    # -- things served on this loop ---------------------------------------------------------

    def serve_app(self, app: web.Application) -> str:
        """Serve ``app`` on a free 127.0.0.1 port; stopped by ``close``. Returns its base URL."""

        async def start() -> tuple[web.AppRunner, int]:
            runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            return runner, runner.addresses[0][1]

        runner, port = self.run(start())
        self._cleanups.append(runner.cleanup())
        return f"http://127.0.0.1:{port}"

    def serve_registry(self, data_dir: Path) -> Registry:
        credentials = ensure_local_credentials(data_dir)
        url = self.serve_app(create_app(data_dir=data_dir))
        return Registry(url=url, token=credentials.token, account=credentials.account, data_dir=data_dir)

    def proxy(self, upstream: str, **config: Any) -> FaultProxy:
        proxy = FaultProxy(upstream, **config)
        self.run(proxy.start())
        self._cleanups.append(proxy.stop())
        return proxy


async def _cancel_the_rest() -> None:
    """Cancel what the servers left (idle keep-alive handlers), so the loop closes quietly."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@contextmanager
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    try:
        yield thread
    finally:
        thread.close()


@dataclass(frozen=True)
class Registry:
    url: str
    token: str
    account: str
    data_dir: Path


# -- the CLI ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    def __repr__(self) -> str:
        return f"Run(code={self.code}, stdout={self.stdout[-2000:]!r}, stderr={self.stderr[-3000:]!r})"

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


@dataclass(frozen=True)
class Sandbox:
    """An isolated HOME and HC_HOME: nothing of the user's configuration leaks in or out."""

    home: Path
    hc_home: Path

    @property
    def env(self) -> dict[str, str]:
        return {"HOME": str(self.home), "HC_HOME": str(self.hc_home)}

    def process_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if k not in LEAKY_ENV}
        return {**base, **self.env, **(extra or {})}

    def hc(self, *args: str, timeout: float | None = None) -> Run:
        """``hc ARGS`` in this process (click's runner): fast, for most tests."""
        del timeout  # in process there is nothing to time out; kept for a uniform signature
        result = CliRunner().invoke(cli, list(args), env=self.env, catch_exceptions=True)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Run(result.exit_code, result.stdout, result.stderr)

    def hc_process(self, *args: str, timeout: float = 120, extra_env: Mapping[str, str] | None = None) -> Run:
        """``python -m hc ARGS`` as a real process."""
        proc = subprocess.run(
            [sys.executable, "-m", "hc", *args],
            capture_output=True,
            text=True,
            env=self.process_env(extra_env),
            timeout=timeout,
            check=False,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def hc_popen(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        """``python -m hc ARGS`` started in the background, stdout and stderr into ``log``."""
        with log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "hc", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.process_env(),
                start_new_session=True,
            )


def make_sandbox(root: Path) -> Sandbox:
    home, hc_home = root / "home", root / "hc-home"
    home.mkdir(parents=True, exist_ok=True)
    return Sandbox(home=home, hc_home=hc_home)


def target(registry: Registry | str, token: str) -> tuple[str, ...]:
    """Global flags pointing hc at a server (a registry, or a proxy's URL)."""
    url = registry.url if isinstance(registry, Registry) else registry
    return ("--api-url", url, "--token", token)


# -- files --------------------------------------------------------------------------------------


def make_tree(root: Path, *, small: int, big: Sequence[int] = (), seed: int = 0) -> dict[str, bytes]:
    """``small`` files of 0.5–8 KiB spread over a few folders, plus one file per size in ``big``;
    random (seeded) content, so any mix-up of files or bytes shows. Returns relpath → bytes."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    for n in range(small):
        folder = ("", "a/", "a/b/", "c/")[n % 4]
        files[f"{folder}f{n:04d}.bin"] = rng.randbytes(rng.randint(512, 8192))
    for n, size in enumerate(big):
        files[f"big/big{n}.bin"] = rng.randbytes(size)
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` (``.part`` leftovers included, so they show up as extra)."""
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expected_listing(tree: Mapping[str, bytes]) -> list[tuple[str, int, str]]:
    return sorted((rel, len(data), sha256(data)) for rel, data in tree.items())


# -- ground truth from a registry (never through a proxy) ----------------------------------------


def list_files(
    sandbox: Sandbox, registry: Registry, reg: str, package: str, version: str
) -> list[dict[str, Any]]:
    run = sandbox.hc(
        *target(registry, registry.token),
        "artifact",
        "list",
        "--registry",
        reg,
        "--package",
        package,
        "--version",
        version,
        "--format",
        "json",
    )
    assert run.code == 0, run
    items: list[dict[str, Any]] = json.loads(run.stdout)
    return items


def list_files_or_empty(
    sandbox: Sandbox, registry: Registry, reg: str, package: str, version: str
) -> list[dict[str, Any]]:
    """Like ``list_files``, but nothing (rather than an error) when the version does not exist."""
    run = sandbox.hc(
        *target(registry, registry.token),
        "artifact",
        "list",
        "--registry",
        reg,
        "--package",
        package,
        "--format",
        "json",
    )
    if run.code != 0:
        assert "not found" in run.stderr, run
        return []
    if version not in [v["name"] for v in json.loads(run.stdout)]:
        return []
    return list_files(sandbox, registry, reg, package, version)


def listing_triples(items: Sequence[Mapping[str, Any]]) -> list[tuple[str, int, str]]:
    """(path, size, sha256) of every listed file, sorted; duplicates are kept so they show."""
    return sorted((str(i["path"]), int(i["size"]), str(i["sha256"])) for i in items)


def create_registry(sandbox: Sandbox, registry: Registry, name: str, package_type: str = "GENERIC") -> None:
    run = sandbox.hc(
        *target(registry, registry.token), "registry", "create", name, "--package-type", package_type
    )
    assert run.code == 0, run


def fsck(sandbox: Sandbox, data_dir: Path) -> Run:
    """``hc server fsck`` on a store (whose server must not be running a sweep-sensitive job)."""
    return sandbox.hc("server", "fsck", "--data-dir", str(data_dir))


# -- ``hc server run`` as a process ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``python -m hc server run`` on a fixed port (so a restart keeps the clients' URL), its
    output in a log file (scanned later for tokens and errors)."""

    def __init__(self, sandbox: Sandbox, data_dir: Path, log: Path, port: int | None = None) -> None:
        self.sandbox = sandbox
        self.data_dir = data_dir
        self.log = log
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ensure_local_credentials(data_dir).token

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> ServerProcess:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hc",
                    "server",
                    "run",
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.sandbox.process_env(),
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            text = self.log.read_bytes()[offset:].decode(errors="replace")
            if "hc registry serving" in text:
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"hc server run exited with {self.proc.returncode}: {text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"hc server run did not start in {timeout}s: {text}")
            time.sleep(0.02)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def status_kib(self, field: str) -> int:
        """A ``/proc/<pid>/status`` figure in KiB (``VmHWM`` is the peak resident set size)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} in /proc/{self.pid}/status")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def kill_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def wait_until(predicate: Any, *, timeout: float, interval: float = 0.005, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
