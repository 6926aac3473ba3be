"""Load: many ``hc`` processes pushing into one ``hc server run`` while others list.

Every pusher sends its own folder into the same package version (so they all race to create the
package and the version), with ``-v`` so that any retry or 5xx would be written to its log. Listers
run ``hc artifact list`` over and over meanwhile. Each pusher has a home of its own, like separate
CI runners (several hc processes sharing one HC_HOME is the next test). Then:

- every pusher exited 0, and no client log mentions a retry or an HTTP 5xx;
- every listing taken during the load showed only whole files (known sha256); rows it showed
  twice (offset paging while files are added: a known bug, pinned by the listing test below) are
  counted and printed;
- the final listing is exactly the union of the trees (no lost row, every file once);
- ``hc server fsck`` is clean, the server stops cleanly on SIGTERM with nothing alarming logged;
- the server's peak RSS (``VmHWM``) stays under a bound; the figure is printed (``-s``) and kept
  in docs/RELIABILITY.md.

The default run is small (4 × 50 files); ``-m slow`` runs the real thing (32 × 200 files).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .support import (
    LoopThread,
    Registry,
    Sandbox,
    ServerProcess,
    create_registry,
    expected_listing,
    fsck,
    list_files,
    listing_triples,
    make_sandbox,
    make_tree,
    wait_until,
)

_TROUBLE = re.compile(r"HTTP 5\d\d|retrying|; retry \d|Traceback|internal error")


def _load(
    sandbox: Sandbox, tmp_path: Path, *, pushers: int, files: int, listers: int, rss_bound_mib: int
) -> None:
    data_dir = tmp_path / "store"
    server = ServerProcess(sandbox, data_dir, tmp_path / "server.log").start()
    try:
        registry = Registry(server.url, server.token, "local", data_dir)
        create_registry(sandbox, registry, "gen")
        expected: dict[str, bytes] = {}
        for n in range(pushers):
            tree = make_tree(tmp_path / f"c{n}" / f"p{n:02d}", small=files, seed=n)
            expected.update({f"p{n:02d}/{rel}": data for rel, data in tree.items()})
        known = set(expected_listing(expected))

        started = time.monotonic()
        procs = [
            make_sandbox(tmp_path / f"home{n}").hc_popen(
                "-v",
                "--api-url",
                server.url,
                "--token",
                server.token,
                "artifact",
                "push",
                "generic",
                "gen",
                f"{tmp_path / f'c{n}'}/.",
                "--name",
                "load",
                "--version",
                "1",
                "--progress",
                "plain",
                log=tmp_path / f"pusher{n}.log",
            )
            for n in range(pushers)
        ]
        done = threading.Event()
        listings: list[list[tuple[str, int, str]]] = []
        lister_logs: list[str] = []

        def lister() -> None:
            while not done.is_set():
                run = subprocess.run(
                    [
                        *sandbox_python(),
                        "-v",
                        "--api-url",
                        server.url,
                        "--token",
                        server.token,
                        "artifact",
                        "list",
                        "--registry",
                        "gen",
                        "--package",
                        "load",
                        "--version",
                        "1",
                        "--format",
                        "json",
                    ],
                    capture_output=True,
                    text=True,
                    env=sandbox.process_env(),
                    timeout=300,
                    check=False,
                )
                lister_logs.append(run.stderr)
                if run.returncode == 0:
                    listings.append(listing_triples(json.loads(run.stdout)))
                else:  # before the first file lands, the version does not exist yet
                    assert "not found" in run.stderr, run.stderr

        with ThreadPoolExecutor(max_workers=max(1, listers)) as pool:
            futures = [pool.submit(lister) for _ in range(listers)]
            codes = [proc.wait(timeout=1800) for proc in procs]
            done.set()
            for future in futures:
                future.result()
        elapsed = time.monotonic() - started
        peak_kib = server.status_kib("VmHWM")

        for n, code in enumerate(codes):
            log = (tmp_path / f"pusher{n}.log").read_text()
            assert code == 0, log[-3000:]
            assert not _TROUBLE.search(log), log[-3000:]
        for log in lister_logs:
            assert not _TROUBLE.search(log), log[-3000:]
        assert lister_logs, "no listing ran during the load"
        duplicates = 0
        for listing in listings:
            # Offset paging shows rows twice while files are added (the listing test below, a
            # known bug): counted and reported here; what must hold is that every row is whole.
            duplicates += len(listing) - len(set(listing))
            assert set(listing) <= known, "a listing showed a file that is not whole"
        final = listing_triples(list_files(sandbox, registry, "gen", "load", "1"))
        assert final == expected_listing(expected)
        versions = sandbox.hc(
            "--api-url",
            server.url,
            "--token",
            server.token,
            "artifact",
            "list",
            "--registry",
            "gen",
            "--package",
            "load",
            "--format",
            "json",
        )
        assert [v["name"] for v in json.loads(versions.stdout)] == ["1"]
        assert server.terminate() == 0
        server_log = server.log_text()
        assert not _TROUBLE.search(server_log), server_log[-3000:]
        check = fsck(sandbox, data_dir)
        assert check.code == 0, check
        print(
            f"load: {pushers} pushers x {files} files + {listers} listers: {len(final)} files in "
            f"{elapsed:.1f}s, {len(listings)} listings during the load ({duplicates} rows shown twice), "
            f"server peak RSS {peak_kib / 1024:.0f} MiB"
        )
        assert peak_kib < rss_bound_mib * 1024, f"server peak RSS {peak_kib / 1024:.0f} MiB"
    finally:
        server.kill()


def sandbox_python() -> list[str]:
    return [sys.executable, "-m", "hc"]


def test_load_small(sandbox: Sandbox, tmp_path: Path) -> None:
    _load(sandbox, tmp_path, pushers=4, files=50, listers=2, rss_bound_mib=200)


@pytest.mark.slow
def test_load_32_pushers_200_files_each(sandbox: Sandbox, tmp_path: Path) -> None:
    _load(sandbox, tmp_path, pushers=32, files=200, listers=4, rss_bound_mib=400)


def test_a_hash_cache_locked_by_another_process_never_fails_a_push(
    sandbox: Sandbox, loop: LoopThread, tmp_path: Path
) -> None:
    """Deterministic stand-in for another hc process in the middle of a cache batch: the test
    holds the cache's write lock while a push runs."""
    registry = loop.serve_registry(tmp_path / "store")
    create_registry(sandbox, registry, "gen")
    via = ("--api-url", registry.url, "--token", registry.token)
    make_tree(tmp_path / "warm", small=1, seed=2)
    warm = sandbox.hc(*via, "artifact", "push", "generic", "gen", f"{tmp_path / 'warm'}/.", "--name", "warm")
    assert warm.code == 0, warm  # the cache and its schema exist
    tree = make_tree(tmp_path / "src", small=1, seed=1)
    an_hour_ago = time.time() - 3600  # older than the cache's "racily recent" window
    for path in (tmp_path / "src").rglob("*"):
        os.utime(path, (an_hour_ago, an_hour_ago))
    other = sqlite3.connect(sandbox.hc_home / "cache" / "hashes.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process's batch, not yet committed
        run = sandbox.hc(
            *via,
            "artifact",
            "push",
            "generic",
            "gen",
            f"{tmp_path / 'src'}/.",
            "--name",
            "pkg",
            "--progress",
            "none",
        )
    finally:
        other.rollback()
        other.close()
    assert run.code == 0, run
    assert listing_triples(list_files(sandbox, registry, "gen", "pkg", "1.0.0")) == expected_listing(tree)


def test_a_listing_taken_during_a_push_shows_every_file_once(
    sandbox: Sandbox, loop: LoopThread, tmp_path: Path
) -> None:
    """Deterministic: the proxy holds the listing's second page until ten files that sort first
    have been added, which is what concurrent pushers do at random. Listings page by offset, so
    those files push rows already seen onto the second page (bug 6, found by the load test: 267
    duplicates in a 2543-row listing); hc drops a path it has already listed."""
    registry = loop.serve_registry(tmp_path / "store")
    create_registry(sandbox, registry, "gen")
    first = {f"m/{n:04d}": b"x" for n in range(1001)}  # two pages of 1000
    for rel, data in first.items():
        (tmp_path / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / rel).write_bytes(data)
    via = ("--api-url", registry.url, "--token", registry.token)
    pushed = sandbox.hc(*via, "artifact", "push", "generic", "gen", f"{tmp_path / 'src'}/.", "--name", "pkg")
    assert pushed.code == 0, pushed
    proxy = loop.proxy(registry.url, hold=r"/v3/files\?.*page=1")
    listing = subprocess.Popen(
        [
            *sandbox_python(),
            "--api-url",
            proxy.url,
            "--token",
            registry.token,
            "artifact",
            "list",
            "--registry",
            "gen",
            "--package",
            "pkg",
            "--version",
            "1.0.0",
            "--format",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=sandbox.process_env(),
    )
    try:
        wait_until(lambda: proxy.stats.held >= 1, timeout=60, what="the second page to be asked for")
        for n in range(10):  # meanwhile another client adds files that sort before the first page's end
            request = urllib.request.Request(
                f"{registry.url}/pkg/local/gen/files/pkg/1.0.0/a/{n}",
                data=b"new",
                method="PUT",
                headers={"x-api-key": registry.token},
            )
            with urllib.request.urlopen(request) as response:
                assert response.status == 201
        loop.loop.call_soon_threadsafe(proxy.release)
        stdout, stderr = listing.communicate(timeout=120)
    finally:
        if listing.poll() is None:
            listing.kill()
            listing.communicate()
    assert listing.returncode == 0, stderr
    paths = [item["path"] for item in json.loads(stdout)]
    assert len(paths) == len(set(paths)), f"{len(paths) - len(set(paths))} files listed twice"
    assert set(first) <= set(paths), "a file that was there all along is missing"
