"""Ctrl-C during a push: exit 130, a summary, cancelled items in --results, and a journal that the
same command picks up again.

Deterministic, with no timing: the server holds the first upload open and tells the test when it
arrived; only then does the test send SIGINT to the real ``hc`` process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from ._artifact_support import serve_app
from .conftest import Sandbox, lines

TOKEN = "pat.acct.key1.secret"


class HangingRegistry:
    """A registry whose first upload never completes (until the test is over)."""

    def __init__(self) -> None:
        self.first_put = threading.Event()
        self.release = asyncio.Event()
        self.puts = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_shutdown.append(self._shutdown)
        return app

    async def _shutdown(self, _app: web.Application) -> None:
        self.release.set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/gateway/har/api/v1/registry/"):
            return web.json_response(
                {"status": "SUCCESS", "data": {"identifier": "gen", "packageType": "GENERIC"}}
            )
        if path == "/gateway/har/api/v3/system/info":
            return web.json_response({"status": "SUCCESS", "data": {}})
        if path == "/gateway/har/api/v3/registries":
            return web.json_response({"hasMore": False, "items": [{"id": "reg-1", "name": "gen"}]})
        if path.startswith("/gateway/har/api/v3/"):
            return web.json_response({"hasMore": False, "items": []})  # nothing pushed yet
        if request.method == "PUT" and path.startswith("/pkg/acct/gen/files/"):
            await request.read()
            self.puts += 1
            if self.puts == 1:
                self.first_put.set()
                await self.release.wait()
            return web.Response(status=201)
        return web.json_response({"message": "no such route"}, status=404)


@pytest.fixture
def hanging() -> Iterator[tuple[HangingRegistry, str]]:
    registry = HangingRegistry()
    with serve_app(registry.app()) as url:
        yield registry, url


def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(
    hanging: tuple[HangingRegistry, str], sandbox: Sandbox, tmp_path: Path
) -> None:
    registry, url = hanging
    src = tmp_path / "src"
    src.mkdir()
    for n in range(5):
        (src / f"f{n}.txt").write_text(f"file {n}\n")
    results = tmp_path / "results.jsonl"
    command = [
        sys.executable, "-m", "hc", "--api-url", url, "--token", TOKEN,
        "artifact", "push", "generic", "gen", str(src), "--name", "p",
        "--concurrency", "1", "--results", str(results), "--progress", "none",
    ]  # fmt: skip
    env = {**os.environ, **sandbox.env}
    env.pop("HARNESS_API_URL", None)
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert registry.first_put.wait(timeout=60), "the upload never arrived"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (stdout, stderr)
    assert lines(stderr)[-1] == "error: interrupted: run the same command again to resume"
    assert "push (interrupted):" in stderr
    statuses = [line for line in results.read_text().splitlines() if '"cancelled"' in line]
    assert statuses  # the upload in flight is reported as cancelled
    journals = list((sandbox.hc_home / "jobs").glob("*.db"))
    assert len(journals) == 1

    # the same command again: the server now answers, the job completes and its journal goes
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done
    assert "push: 5 succeeded" in done.stderr
    assert not list((sandbox.hc_home / "jobs").glob("*.db"))
