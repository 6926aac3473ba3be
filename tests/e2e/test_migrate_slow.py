"""The issue's judging scenario (slow; run with ``pytest -m slow``): 20,000 files in 50 versions
from nginx WebDAV into an ``hc server run`` registry, then that registry into another one on a
different port; each followed by a re-run that must be a no-op. Timings are printed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hc.server.embedded import ensure_local_credentials

from ._artifact_support import LiveRegistry
from .conftest import HcRunner, Sandbox
from .test_migrate import Nginx, _free_port, expected, nginx, registry_contents, write_config

__all__ = ["nginx"]  # the module-scoped fixture, shared


@contextmanager
def hc_server(data_dir: Path) -> Iterator[LiveRegistry]:
    """``hc server run`` as its own process (the destination does not share the client's CPU)."""
    credentials = ensure_local_credentials(data_dir)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hc", "server", "run", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        assert "serving http://127.0.0.1:" in line, line
        yield LiveRegistry(
            url=f"http://127.0.0.1:{port}", account=credentials.account, token=credentials.token
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


def _timed(sandbox: Sandbox, config: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "hc", "registry", "migrate", "-c", str(config), "--progress", "none"],
        env={**os.environ, **sandbox.env, **env},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout, proc.stderr[-3000:])
    return time.monotonic() - started, proc.stderr


@pytest.mark.slow
def test_twenty_thousand_files_in_fifty_versions(
    nginx: Nginx, hc: HcRunner, sandbox: Sandbox, tmp_path: Path
) -> None:
    root = nginx.tree("big")
    tree: dict[str, bytes] = {}
    an_hour_ago = time.time() - 3600
    for p in range(5):
        for v in range(10):
            for f in range(400):
                rel = f"pkg{p}/2.{v}.0/" + (f"d{f % 10}/f{f}.dat" if f % 2 else f"f{f}.dat")
                data = (f"{rel}\n" * (1 + (f * 37) % 100)).encode()
                tree[rel] = data
                path = root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                os.utime(path, (an_hour_ago, an_hour_ago))
    assert len(tree) == 20_000
    with hc_server(tmp_path / "one") as one, hc_server(tmp_path / "two") as two:
        for live in (one, two):
            made = hc(*live.args(), "registry", "create", "dst", "--package-type", "GENERIC")
            assert made.exit_code == 0, made
        config = write_config(
            tmp_path / "a.yaml", source_type="WEBDAV", source_url=nginx.url, source_registry="big", dest=one,
            concurrency=32,
        )  # fmt: skip
        first, out1 = _timed(sandbox, config, {"DEST_KEY": one.token})
        rerun, out2 = _timed(sandbox, config, {"DEST_KEY": one.token})
        assert "Success : 20000" in out1 and "Skipped : 20000" in out2
        assert registry_contents(one, "dst") == expected(tree)
        config2 = write_config(
            tmp_path / "b.yaml", source_type="HAR", source_url=one.url, source_registry="dst",
            source_key=one.token, dest=two, concurrency=32,
        )  # fmt: skip
        second, out3 = _timed(sandbox, config2, {"DEST_KEY": two.token})
        rerun2, out4 = _timed(sandbox, config2, {"DEST_KEY": two.token})
        assert "Success : 20000" in out3 and "Skipped : 20000" in out4
        assert registry_contents(two, "dst") == expected(tree)
    print(
        f"\nwebdav→hc: {first:.1f}s (re-run {rerun:.1f}s); hc→hc: {second:.1f}s (re-run {rerun2:.1f}s)\n"
        + out1.strip().splitlines()[-1]
        + "\n"
        + out3.strip().splitlines()[-1]
    )
