"""Crashes: SIGKILL of the client mid-push or mid-pull, SIGKILL of the server mid-upload and
mid-commit, and a registry that is down for a few seconds.

Client: ``python -m hc artifact push|pull generic …`` runs as a real process behind a counting
proxy and is killed after a seeded random number of requests (so kills land in the listing, in
small files, inside a large body). Afterwards nothing wrong may be visible (every listed file is
whole, every file under its final name is byte-exact), and running the same command again must
converge to the exact tree: bytes identical, listing identical, no ``.part`` left.

Server: ``python -m hc server run`` is killed while an upload streams into its temp folder, or
while a complete body is being committed (its temp file at full size: fsync, link, row). After a
restart no partial blob is visible, ``hc server fsck`` is clean, and the client completes.

The default run does four seeded client kills; ``-m slow`` runs 24 more (28 in all), and the
five-second registry outage.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .faultproxy import ProxyStats
from .support import (
    LoopThread,
    Registry,
    Sandbox,
    ServerProcess,
    create_registry,
    expected_listing,
    fsck,
    kill_process,
    list_files,
    list_files_or_empty,
    listing_triples,
    make_tree,
    read_tree,
    target,
    wait_until,
)

SMALL, BIG = 60, (4 << 20,)


def _push_args(
    url: str, token: str, src: Path, *, version: str = "1", concurrency: int = 8
) -> tuple[str, ...]:
    return (
        "--api-url",
        url,
        "--token",
        token,
        "artifact",
        "push",
        "generic",
        "gen",
        f"{src}/.",
        "--name",
        "pkg",
        "--version",
        version,
        "--progress",
        "none",
        "--concurrency",
        str(concurrency),
    )


def _pull_args(url: str, token: str, dest: Path) -> tuple[str, ...]:
    return (
        "--api-url",
        url,
        "--token",
        token,
        "artifact",
        "pull",
        "generic",
        "gen",
        "pkg/1",
        str(dest),
        "--progress",
        "none",
        "--concurrency",
        "8",
    )


@dataclass(frozen=True)
class Trial:
    seed: int
    direction: str  # "push" or "pull"

    @property
    def id(self) -> str:
        return f"{self.direction}-{self.seed}"


DEFAULT_TRIALS = [Trial(1, "push"), Trial(2, "push"), Trial(4, "pull"), Trial(5, "pull")]
SLOW_TRIALS = [Trial(seed, "push") for seed in (3, *range(100, 111))] + [
    Trial(seed, "pull") for seed in range(200, 212)
]


def _command(trial: Trial, url: str, token: str, tmp_path: Path) -> tuple[str, ...]:
    if trial.direction == "push":
        return _push_args(url, token, tmp_path / "src")
    return _pull_args(url, token, tmp_path / "dest")


def _kill_after_requests(
    sandbox: Sandbox, proxy_url: str, stats: ProxyStats, token: str, tmp_path: Path, trial: Trial
) -> tuple[int, int]:
    """Run the command through a counting proxy; SIGKILL it after a random number of requests.
    Returns (requests seen when killed, the kill point chosen)."""
    rng = random.Random(trial.seed)
    args = _command(trial, proxy_url, token, tmp_path)
    kill_at = rng.randint(1, SMALL + len(BIG) + 6)
    proxy = stats
    proc = sandbox.hc_popen(*args, log=tmp_path / f"{trial.direction}.log")
    try:
        wait_until(
            lambda: proxy.requests >= kill_at or proc.poll() is not None,
            timeout=120,
            what=f"{kill_at} requests",
        )
        seen = proxy.requests
    finally:
        kill_process(proc)
    return seen, kill_at


@pytest.mark.parametrize("trial", DEFAULT_TRIALS, ids=lambda t: t.id)
def test_client_sigkill_then_rerun_converges(
    trial: Trial, sandbox: Sandbox, loop: LoopThread, tmp_path: Path
) -> None:
    _client_kill_trial(trial, sandbox, loop, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("trial", SLOW_TRIALS, ids=lambda t: t.id)
def test_client_sigkill_then_rerun_converges_many(
    trial: Trial, sandbox: Sandbox, loop: LoopThread, tmp_path: Path
) -> None:
    _client_kill_trial(trial, sandbox, loop, tmp_path)


def _client_kill_trial(trial: Trial, sandbox: Sandbox, loop: LoopThread, tmp_path: Path) -> None:
    registry = loop.serve_registry(tmp_path / "store")
    create_registry(sandbox, registry, "gen")
    src, dest = tmp_path / "src", tmp_path / "dest"
    tree = make_tree(src, small=SMALL, big=BIG, seed=trial.seed)
    if trial.direction == "pull":
        seed = sandbox.hc(*_push_args(registry.url, registry.token, src))
        assert seed.code == 0, seed

    # The client talks through a proxy that only counts (and adds 3 ms), to know when to kill it.
    proxy = loop.proxy(registry.url, latency=0.003)
    seen, kill_at = _kill_after_requests(sandbox, proxy.url, proxy.stats, registry.token, tmp_path, trial)
    print(f"{trial.id}: killed after {seen} requests (aimed at {kill_at})")

    # What the kill left behind is never wrong, only incomplete.
    listed = listing_triples(list_files_or_empty(sandbox, registry, "gen", "pkg", "1"))
    assert len(set(listed)) == len(listed)
    assert set(listed) <= set(expected_listing(tree))
    for name, data in read_tree(dest).items():
        if not name.endswith(".part"):
            assert data == tree[name], f"{name} is under its final name but its bytes are wrong"

    # The same command again (same URL, so it finds its journal) converges to the exact tree.
    again = sandbox.hc(*_command(trial, proxy.url, registry.token, tmp_path))
    assert again.code == 0, again
    assert listing_triples(list_files(sandbox, registry, "gen", "pkg", "1")) == expected_listing(tree)
    if trial.direction == "pull":
        assert read_tree(dest) == tree  # byte for byte, and no .part left behind
    versions = sandbox.hc(
        *target(registry, registry.token),
        "artifact",
        "list",
        "--registry",
        "gen",
        "--package",
        "pkg",
        "--format",
        "json",
    )
    assert [v["name"] for v in json.loads(versions.stdout)] == ["1"]
    assert not list((sandbox.hc_home / "jobs").glob("*.db"))  # a finished job leaves no journal
    check = fsck(sandbox, registry.data_dir)
    assert check.code == 0, check


# -- the server ------------------------------------------------------------------------------------


def _temp_files(data_dir: Path) -> list[tuple[str, int]]:
    """Named temp files of single-PUT uploads in flight (small bodies use unnamed O_TMPFILE files)."""
    return _sizes(data_dir / "tmp")


def _session_files(data_dir: Path) -> list[tuple[str, int]]:
    """Upload sessions' data files (preallocated to the full size when the session opens)."""
    return _sizes(data_dir / "uploads")


def _sizes(folder: Path) -> list[tuple[str, int]]:
    out = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for entry in entries:
        with contextlib.suppress(FileNotFoundError):  # finished (or swept) while we looked
            out.append((entry.name, entry.stat().st_size))
    return out


def _server_kill_scenario(
    sandbox: Sandbox, tmp_path: Path, *, kill_when: str, big: tuple[int, ...], outage: float = 0.0
) -> tuple[dict[str, bytes], ServerProcess, Path]:
    """Start ``hc server run``, push to it from a real client process, SIGKILL the server when
    ``kill_when`` holds, check the store while it is down, restart it. Returns the tree, the
    (restarted) server and the client's log.

    - "streaming": a single-PUT body is filling its temp file;
    - "committing": a temp file holds a whole body (fsync, link, row in progress);
    - "session": an upload session is open (its parts arriving; files over the client's 16 MiB
      chunk size go this way when the registry offers sessions).
    """
    data_dir = tmp_path / "server-store"
    server = ServerProcess(sandbox, data_dir, tmp_path / "server.log").start()
    create_registry(sandbox, Registry(server.url, server.token, "local", data_dir), "gen")
    src = tmp_path / "src"
    tree = make_tree(src, small=30, big=big, seed=21)
    sizes = set(big)
    rng = random.Random(len(big) + sum(big))
    client_log = tmp_path / "client.log"
    client = sandbox.hc_popen(*_push_args(server.url, server.token, src, concurrency=4), log=client_log)
    try:
        if kill_when == "streaming":
            wait_until(
                lambda: any(0 < size < max(sizes) for _, size in _temp_files(data_dir)),
                timeout=120,
                interval=0.001,
                what="an upload streaming into the store",
            )
        elif kill_when == "committing":
            wait_until(
                lambda: any(size in sizes for _, size in _temp_files(data_dir)),
                timeout=120,
                interval=0.0005,
                what="a complete body being committed",
            )
        else:
            wait_until(
                lambda: bool(_session_files(data_dir)), timeout=120, interval=0.001, what="an upload session"
            )
            time.sleep(rng.uniform(0.05, 0.4))
        server.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        server.proc.wait(timeout=30)  # type: ignore[union-attr]
        print(
            f"killed while {kill_when}: temp files {_temp_files(data_dir)}, "
            f"session files {_session_files(data_dir)}"
        )
        # While it is down: every blob under a real name is whole (named by its own sha256).
        down = fsck(sandbox, data_dir)
        assert down.code == 0, down
        assert _temp_files(data_dir) == []  # the dead writer's temp files are swept
        if outage:
            time.sleep(outage)
        server.start()
        code = client.wait(timeout=180)
    finally:
        kill_process(client)
    print(f"client exit {code} after the restart")
    return tree, server, client_log


def _converge_and_check(
    sandbox: Sandbox, server: ServerProcess, tree: dict[str, bytes], tmp_path: Path
) -> None:
    registry = Registry(server.url, server.token, "local", server.data_dir)
    # Nothing partial is visible: every listed file is one of ours, whole.
    listed = listing_triples(list_files_or_empty(sandbox, registry, "gen", "pkg", "1"))
    assert set(listed) <= set(expected_listing(tree))
    again = sandbox.hc(*_push_args(server.url, server.token, tmp_path / "src"))
    assert again.code == 0, again
    assert listing_triples(list_files(sandbox, registry, "gen", "pkg", "1")) == expected_listing(tree)
    pulled = sandbox.hc(*_pull_args(server.url, server.token, tmp_path / "back"))
    assert pulled.code == 0, pulled
    assert read_tree(tmp_path / "back") == tree
    assert server.terminate() == 0
    check = fsck(sandbox, server.data_dir)
    assert check.code == 0, check
    assert "Traceback" not in server.log_text()


def test_server_sigkill_mid_upload_then_restart(sandbox: Sandbox, tmp_path: Path) -> None:
    tree, server, _ = _server_kill_scenario(
        sandbox, tmp_path, kill_when="streaming", big=(14 << 20, 12 << 20)
    )
    try:
        _converge_and_check(sandbox, server, tree, tmp_path)
    finally:
        server.kill()


def test_server_sigkill_mid_commit_then_restart(sandbox: Sandbox, tmp_path: Path) -> None:
    tree, server, _ = _server_kill_scenario(sandbox, tmp_path, kill_when="committing", big=(14 << 20,))
    try:
        _converge_and_check(sandbox, server, tree, tmp_path)
    finally:
        server.kill()


def test_server_sigkill_mid_upload_session_then_restart(sandbox: Sandbox, tmp_path: Path) -> None:
    tree, server, _ = _server_kill_scenario(sandbox, tmp_path, kill_when="session", big=(40 << 20,))
    try:
        _converge_and_check(sandbox, server, tree, tmp_path)
    finally:
        server.kill()


@pytest.mark.slow
def test_a_push_rides_out_a_five_second_registry_restart(sandbox: Sandbox, tmp_path: Path) -> None:
    tree, server, client_log = _server_kill_scenario(
        sandbox, tmp_path, kill_when="streaming", big=(14 << 20, 12 << 20), outage=5.0
    )
    try:
        log = client_log.read_text()
        assert "push: " in log and " 0 failed" in log, log[-3000:]
        registry = Registry(server.url, server.token, "local", server.data_dir)
        assert listing_triples(list_files(sandbox, registry, "gen", "pkg", "1")) == expected_listing(tree)
    finally:
        server.kill()
