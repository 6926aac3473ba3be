"""Durable state and value objects: journal, hash cache, coordinator, TransferConfig, public names."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import hc.transfer
from hc.errors import NotFound, UsageError
from hc.protocol.digest import Checksums
from hc.protocol.ranges import ByteRange
from hc.transfer.config import TransferConfig
from hc.transfer.coordinator import InvalidTransition, TransferCoordinator
from hc.transfer.hashcache import HashCache
from hc.transfer.journal import Journal, job_key
from hc.transfer.results import ItemResult, Status

# --- journal --------------------------------------------------------------------------------


def test_journal_state_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "jobs" / "j.sqlite"
    with Journal.open(path) as journal:
        assert journal.begin("a.bin", fingerprint="10:abc", size=10) is None
        journal.set_download("a.bin", "/dest/a.bin.part", [ByteRange(0, 6), ByteRange(6, 10)])
        journal.set_progress("a.bin", 1, 3)
        journal.begin("s.bin", fingerprint="5:def", size=5)
        journal.set_session("s.bin", "session-1")
        journal.begin("done.bin", fingerprint="1:x", size=1)
        journal.mark_done("done.bin", sha256="x")
    with Journal.open(path) as journal:
        prior = journal.begin("a.bin", fingerprint="10:abc", size=10)
        assert prior is not None and prior.part_path == "/dest/a.bin.part"
        assert journal.download_plan("a.bin") == ([ByteRange(0, 6), ByteRange(6, 10)], {0: 0, 1: 3})
        session = journal.get("s.bin")
        assert session is not None and session.session_id == "session-1"
        assert journal.counts() == {"pending": 2, "done": 1}


def test_a_changed_source_forgets_the_partial_state(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.sqlite") as journal:
        journal.begin("a", fingerprint="10:old", size=10)
        journal.set_download("a", "/a.part", [ByteRange(0, 10)])
        journal.set_progress("a", 0, 7)
        assert journal.begin("a", fingerprint="10:new", size=10) is None
        assert journal.download_plan("a") == ([], {})


def test_a_second_process_cannot_run_the_same_job(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal.open(path), pytest.raises(UsageError, match="another hc process"):
        Journal.open(path)
    Journal.open(path).close()  # free again once the first one closed


def test_unflushed_writes_are_batched_and_flush_commits_them(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = Journal.open(path, commit_every=1000, commit_interval=3600)
    journal.begin("a", fingerprint="1:x", size=1)
    import sqlite3

    reader = sqlite3.connect(path)
    assert reader.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 0  # still in the batch
    journal.flush()
    assert reader.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 1
    reader.close()
    journal.close()


def test_job_keys_are_stable_and_distinct() -> None:
    assert job_key("push", "reg", "pkg", "1.0") == job_key("push", "reg", "pkg", "1.0")
    assert job_key("push", "reg", "pkg", "1.0") != job_key("push", "reg", "pkg1", ".0")
    assert len(job_key("x")) == 24


# --- hash cache -----------------------------------------------------------------------------

SUMS = Checksums(size=3, sha256="a" * 64, md5="b" * 32, sha1="c" * 40, sha512="d" * 128)
OLD = 1_600_000_000_000_000_000


def test_hash_cache_hits_only_while_the_stat_identity_matches(tmp_path: Path) -> None:
    with HashCache.open(tmp_path / "h.sqlite") as cache:
        assert cache.put("/f", mtime_ns=OLD, inode=7, checksums=SUMS)
    with HashCache.open(tmp_path / "h.sqlite") as cache:
        assert cache.get("/f", size=3, mtime_ns=OLD, inode=7, require=("md5", "sha512")) == SUMS
        assert cache.get("/f", size=4, mtime_ns=OLD, inode=7) is None
        assert cache.get("/f", size=3, mtime_ns=OLD + 1, inode=7) is None
        assert cache.get("/f", size=3, mtime_ns=OLD, inode=8) is None


def test_hash_cache_refuses_racily_recent_files_unless_trusted() -> None:
    cache = HashCache.in_memory()
    now = OLD + 1_000_000_000  # modified one second ago
    assert not cache.put("/f", mtime_ns=OLD, inode=1, checksums=SUMS, now_ns=now)
    assert cache.get("/f", size=3, mtime_ns=OLD, inode=1) is None
    assert cache.put("/f", mtime_ns=OLD, inode=1, checksums=SUMS, now_ns=now, trust_recent=True)


def test_hash_cache_requires_the_algorithms_asked_for() -> None:
    cache = HashCache.in_memory()
    cache.put("/f", mtime_ns=OLD, inode=1, checksums=Checksums(size=3, sha256="a" * 64))
    assert cache.get("/f", size=3, mtime_ns=OLD, inode=1) is not None
    assert cache.get("/f", size=3, mtime_ns=OLD, inode=1, require=("md5",)) is None


# --- coordinator ----------------------------------------------------------------------------


async def test_coordinator_runs_failure_cleanups_once_and_shows_status_in_repr() -> None:
    done: list[ItemResult] = []
    undone: list[str] = []
    coordinator = TransferCoordinator("a.bin", 10)
    coordinator.add_done_callback(done.append)
    assert "status=queued" in repr(coordinator)
    coordinator.start()
    assert "status=running" in repr(coordinator)

    async def abort() -> None:
        undone.append("abort")

    async def broken_undo() -> None:
        raise NotFound("already gone")

    coordinator.add_failure_cleanup(abort)
    coordinator.add_failure_cleanup(broken_undo)  # a failing undo does not hide the real error
    result = await coordinator.fail(RuntimeError("boom"))
    assert undone == ["abort"]
    assert result.status is Status.FAILED and result.error == "boom"
    assert coordinator.exception is not None and done == [result]
    assert "status=failed" in repr(coordinator)
    with pytest.raises(InvalidTransition):
        coordinator.cancel()


def test_a_cancelled_transfer_keeps_its_resources() -> None:
    coordinator = TransferCoordinator("a.bin", 10)
    coordinator.start()
    ran: list[str] = []

    async def abort() -> None:
        ran.append("abort")

    coordinator.add_failure_cleanup(abort)
    result = coordinator.cancel()
    assert result.status is Status.CANCELLED and ran == []


@pytest.mark.parametrize("status", [Status.DONE, Status.SKIPPED, Status.PLANNED])
def test_coordinator_finishes_once(status: Status) -> None:
    coordinator = TransferCoordinator("x", 1)
    if status is Status.DONE:
        coordinator.start()
    result = coordinator.finish(status, action="a", sha256="s")
    assert coordinator.result == result and result.status is status
    with pytest.raises(InvalidTransition):
        coordinator.finish(Status.DONE)


def test_coordinator_has_no_result_before_it_ends() -> None:
    with pytest.raises(InvalidTransition):
        _ = TransferCoordinator("x", 1).result


# --- config ---------------------------------------------------------------------------------


def test_config_defaults_are_valid_and_frozen() -> None:
    config = TransferConfig()
    assert config.concurrency == 32
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.concurrency = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        TransferConfig(8)  # type: ignore[call-arg]  # keyword-only


@pytest.mark.parametrize(
    "bad",
    [
        {"concurrency": 0},
        {"concurrency": 5000},
        {"buffer_size": 1},
        {"chunk_size": 1024},  # smaller than the buffer
        {"split": 0},
        {"split_threshold": -1},
        {"max_attempts": 0},
        {"backoff_base": 5.0, "backoff_cap": 1.0},
        {"backlog": 0},
        {"hash_threads": 0},
        {"stall_timeout": 0},
    ],
)
def test_config_rejects_bad_values_with_a_usage_error(bad: dict[str, object]) -> None:
    with pytest.raises(UsageError, match="invalid transfer setting"):
        TransferConfig(**bad)  # type: ignore[arg-type]


def test_config_builds_the_retry_policy() -> None:
    policy = TransferConfig(max_attempts=3, backoff_base=0.1, backoff_cap=2.0).retry_policy
    assert policy.max_attempts == 3 and policy.backoff.cap == 2.0


# --- public surface -------------------------------------------------------------------------


def test_public_names_are_pinned() -> None:
    assert sorted(hc.transfer.__all__) == sorted(
        [
            *("Accounting", "ByteSource", "BytesMoved", "Capabilities", "Event", "FileEntry"),
            *("FileLocation", "FileRef", "HashCache", "ItemFinished", "ItemQueued", "ItemResult"),
            *("ItemRetried", "ItemStarted", "Journal", "LocalItem", "ReadStream", "Remote"),
            *("RemoteCapabilities", "RemoteFile", "SessionState", "SkippedEntry", "Stats", "Status"),
            *("Summary", "TransferConfig", "TransferCoordinator", "TransferManager", "UploadSession"),
            *("job_key", "parse_retry_after", "safe_join", "sanitize_relpath", "validate_sources"),
            *("walk", "walk_async"),
            # bulk operations: remote-to-remote copy and sharding
            *("CopyItem", "CopyPair", "Shard", "item_key", "shard_filter"),
        ]
    )
    for name in hc.transfer.__all__:
        assert hasattr(hc.transfer, name)


def test_the_fake_satisfies_the_remote_protocol() -> None:
    from hc.transfer.remote import Remote

    from .fakes import FakeRemote

    remote: Remote = FakeRemote()  # mypy checks the structure; this checks it imports and builds
    assert remote.capabilities.ranged_reads


def _open_cache_at(path: str, barrier: Any) -> None:
    barrier.wait()  # all processes open the new file at the same moment
    HashCache.open(Path(path)).close()


def test_processes_opening_a_new_hash_cache_at_once_all_get_it(tmp_path: Path) -> None:
    """Shards of one migration open one new cache file together: switching it to WAL takes a lock,
    which the others must wait for (busy timeout from the connection on), not fail with
    "database is locked"."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    for attempt in range(6):  # a race: several rounds, so that a regression shows
        barrier = context.Barrier(8)
        path = tmp_path / f"cache{attempt}" / "hashes.db"
        workers = [context.Process(target=_open_cache_at, args=(str(path), barrier)) for _ in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert [worker.exitcode for worker in workers] == [0] * 8
