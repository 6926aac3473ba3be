"""SIGKILL of a real ``hc artifact push`` whose large file went up without hashing first (the
registry takes the sha256 at commit): the journal ties the session to the file's stat stamp, and
the same command run again carries on with that session instead of opening another.

Deterministic: the proxy holds every part (``hang``), so the client is killed with its session
open and no part acknowledged; the re-run goes through the same proxy with the faults off.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from .support import (
    LoopThread,
    Sandbox,
    create_registry,
    fsck,
    kill_process,
    list_files,
    listing_triples,
    sha256,
    wait_until,
)
from .test_crashes import _push_args

MiB = 1 << 20


def _journal_rows(hc_home: Path) -> list[tuple[str, str, str | None]]:
    rows = []
    for db in (hc_home / "jobs").glob("*.db"):
        with contextlib.closing(sqlite3.connect(db)) as conn:
            rows += conn.execute("SELECT key, fingerprint, session_id FROM items").fetchall()
    return rows


def test_a_killed_deferred_push_resumes_its_session(
    sandbox: Sandbox, loop: LoopThread, tmp_path: Path
) -> None:
    registry = loop.serve_registry(tmp_path / "store")
    create_registry(sandbox, registry, "gen")
    src = tmp_path / "src"
    src.mkdir()
    data = os.urandom(40 * MiB)  # over the 16 MiB chunk size: an upload session of 3 parts
    (src / "big.bin").write_bytes(data)

    proxy = loop.proxy(registry.url, record=True, rate=1.0, faults=["hang"], methods=frozenset({"PATCH"}))
    proc = sandbox.hc_popen(*_push_args(proxy.url, registry.token, src), log=tmp_path / "push.log")
    try:
        wait_until(
            lambda: proxy.stats.injected["hang"] >= 1 or proc.poll() is not None,
            timeout=120,
            what="a part in flight",
        )
        assert proc.poll() is None, (tmp_path / "push.log").read_text()
    finally:
        kill_process(proc)

    # The session was opened without a sha256 and journaled under the file's stamp.
    [(key, fingerprint, session_id)] = _journal_rows(sandbox.hc_home)
    st = (src / "big.bin").stat()
    assert key == "big.bin" and session_id
    assert fingerprint == f"stamp:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
    posts = [line for line in proxy.stats.request_lines if line.startswith("POST ") and "/uploads" in line]
    assert len(posts) == 1

    proxy.config.rate = 0.0
    again = sandbox.hc(*_push_args(proxy.url, registry.token, src))
    assert again.code == 0, again
    posts = [line for line in proxy.stats.request_lines if line.startswith("POST ") and "/uploads" in line]
    assert len(posts) == 1  # the re-run opened no session of its own
    assert any(
        line.startswith("GET ") and line.endswith(f"/uploads/{session_id}")
        for line in proxy.stats.request_lines
    )
    assert listing_triples(list_files(sandbox, registry, "gen", "pkg", "1")) == [
        ("big.bin", len(data), sha256(data))
    ]
    assert not [p for p in (registry.data_dir / "uploads").glob("*") if p.is_file()]  # no orphan session
    assert not list((sandbox.hc_home / "jobs").glob("*.db"))
    check = fsck(sandbox, registry.data_dir)
    assert check.code == 0, check
