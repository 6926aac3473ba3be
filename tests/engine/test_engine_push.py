"""Bulk push against a faulty fake registry: whole PUTs, resumable sessions, skip-identical."""

from __future__ import annotations

import os
import random
from pathlib import Path

import anyio
import pytest

from hc.transfer._files import read_and_hash
from hc.transfer.hashcache import HashCache
from hc.transfer.journal import Journal
from hc.transfer.manager import TransferManager
from hc.transfer.remote import Capabilities
from hc.transfer.results import Status
from hc.transfer.walk import LocalItem, walk, walk_async

from .fakes import FakeRemote, Fault, Faults
from .support import PACKAGE, VERSION, Recorder, fast_config, make_payloads, write_tree

KiB, MiB = 1024, 1024 * 1024
UPLOAD_FAULTS = [Fault.RESET, Fault.HTTP_500, Fault.HTTP_502, Fault.HTTP_503, Fault.RATE_LIMIT]
SESSIONS = Capabilities(upload_sessions=True)
PARALLEL_SESSIONS = Capabilities(upload_sessions=True, parallel_parts=True)


def stored(remote: FakeRemote) -> dict[str, bytes]:
    return {path: s.data for (pkg, ver, path), s in remote.files.items() if (pkg, ver) == (PACKAGE, VERSION)}


def tree(tmp_path: Path, payloads: dict[str, bytes]) -> Path:
    root = tmp_path / "src"
    write_tree(root, payloads)
    return root


def items(root: Path) -> list[LocalItem]:
    # "<dir>/." maps to relative paths without the directory's own name, as the Go CLI does for "."
    return list(walk([os.path.join(root, ".")]))


@pytest.mark.parametrize(
    "capabilities", [Capabilities(), SESSIONS, PARALLEL_SESSIONS], ids=["put", "sessions", "parallel-parts"]
)
async def test_bulk_push_with_faults_stores_every_byte(tmp_path: Path, capabilities: Capabilities) -> None:
    payloads = make_payloads(small=250, big_sizes=(3 * MiB + 5, 1 * MiB + 1, 600 * KiB))
    root = tree(tmp_path, payloads)
    faults = Faults(seed=11).at_rate("put_file", 0.12, UPLOAD_FAULTS).at_rate("put_part", 0.15, UPLOAD_FAULTS)
    remote = FakeRemote(capabilities=capabilities, faults=faults)
    manager = TransferManager(remote, fast_config())
    recorder = Recorder(manager.accounting)

    summary = await manager.push(walk_async([os.path.join(root, ".")]), package=PACKAGE, version=VERSION)

    assert recorder.with_status(Status.FAILED) == {}
    assert summary.succeeded == len(payloads)
    assert stored(remote) == payloads
    assert sum(faults.injected.values()) > 20
    assert summary.bytes == sum(len(d) for d in payloads.values())
    assert remote.max_in_flight <= manager.config.concurrency
    assert remote.sessions == {}  # every session committed (or aborted)
    if capabilities.upload_sessions:
        assert remote.calls["commit_upload"] == 3  # only files above chunk_size use a session
        assert {recorder.results[f"big/b{i}.bin"].action for i in range(3)} == {"upload-session"}


BATCHES = Capabilities(upload_sessions=True, batch_write_max_size=64 * KiB)


async def test_small_files_pushed_in_batches_survive_faults_each_verified(tmp_path: Path) -> None:
    """A registry with batch writes (hc.protocol.batchwrite): small files go by ``write_whole``,
    each checked on its own (a flipped bit is refused and the file sent again); large ones still
    by sessions."""
    payloads = make_payloads(small=250, big_sizes=(3 * MiB + 5, 100 * KiB))
    root = tree(tmp_path, payloads)
    faults = Faults(seed=13).at_rate("put_file", 0.15, [*UPLOAD_FAULTS, Fault.BITFLIP])
    remote = FakeRemote(capabilities=BATCHES, faults=faults)
    manager = TransferManager(remote, fast_config())

    summary = await manager.push(walk_async([os.path.join(root, ".")]), package=PACKAGE, version=VERSION)

    assert summary.succeeded == len(payloads) and summary.failed == 0
    assert stored(remote) == payloads
    assert faults.injected[Fault.BITFLIP] > 0
    small = sum(1 for data in payloads.values() if len(data) <= 64 * KiB)
    assert remote.calls["write_whole"] >= small > 0
    assert remote.calls["put_file"] >= 1  # the 100 KiB file (retried when a fault hit it): above
    # the batch limit, below a session's
    assert summary.bytes == sum(len(d) for d in payloads.values())


async def test_small_files_with_cached_digests_are_read_for_their_batch(tmp_path: Path) -> None:
    payloads = make_payloads(small=30)
    root = tree(tmp_path, payloads)
    remote = FakeRemote(capabilities=BATCHES)
    cache = await pushed_with_cache(root, remote)
    before = remote.calls["write_whole"]
    summary = await TransferManager(remote, fast_config(), hash_cache=cache).push(
        items(root), package=PACKAGE, version="2.0"
    )
    assert summary.succeeded == len(payloads)
    assert remote.calls["write_whole"] - before == len(payloads)
    for name, data in payloads.items():
        assert remote.data(PACKAGE, "2.0", name) == data


async def pushed_with_cache(root: Path, remote: FakeRemote) -> HashCache:
    """Push ``root`` once with an in-memory hash cache that trusts its files (made old)."""
    old = 1_600_000_000
    for path in root.rglob("*"):
        os.utime(path, (old, old))  # old enough for the hash cache to trust
    cache = HashCache.in_memory()
    await TransferManager(remote, fast_config(), hash_cache=cache).push(
        items(root), package=PACKAGE, version=VERSION
    )
    return cache


def spy_on_hashing(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files the engine reads to hash them from now on."""
    hashed: list[Path] = []
    real = read_and_hash

    async def spy(path: Path, **kwargs: object) -> object:
        hashed.append(path)
        return await real(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("hc.transfer._pushing.read_and_hash", spy)
    return hashed


async def test_a_re_push_of_unchanged_files_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payloads = make_payloads(small=60, big_sizes=(1 * MiB,))
    root = tree(tmp_path, payloads)
    remote = FakeRemote(capabilities=SESSIONS, page_size=25)
    cache = await pushed_with_cache(root, remote)
    calls_before, received_before = remote.calls.copy(), remote.bytes_received

    hashed = spy_on_hashing(monkeypatch)
    manager = TransferManager(remote, fast_config(), hash_cache=cache)
    summary = await manager.push(items(root), package=PACKAGE, version=VERSION)

    assert summary.skipped == len(payloads) and summary.succeeded == 0
    assert remote.bytes_received == received_before
    new_calls = remote.calls - calls_before
    assert new_calls == {"list_files": 3}  # one listing (3 pages), no HEAD or PUT per file
    assert hashed == []  # unchanged files are not even re-read


async def test_files_with_cached_digests_go_to_a_new_version_byte_exact_without_rehashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CI case: the same files pushed again under another version. Their digests come from the
    # hash cache, so a small file is read once, for its upload (on the loop: FileSource's
    # loop_limit), and a large one streams from disk.
    payloads = make_payloads(small=40, big_sizes=(1 * MiB,))
    root = tree(tmp_path, payloads)
    remote = FakeRemote(capabilities=SESSIONS)
    cache = await pushed_with_cache(root, remote)

    hashed = spy_on_hashing(monkeypatch)
    summary = await TransferManager(remote, fast_config(), hash_cache=cache).push(
        items(root), package=PACKAGE, version="2.0"
    )
    assert summary.succeeded == len(payloads) and summary.failed == 0
    assert hashed == []
    for name, data in payloads.items():
        assert remote.data(PACKAGE, "2.0", name) == data


async def test_changed_and_new_files_are_uploaded_identical_ones_skipped(tmp_path: Path) -> None:
    root = tree(tmp_path, {"same.txt": b"same", "changed.txt": b"new!", "new.txt": b"fresh"})
    remote = FakeRemote()
    remote.add(PACKAGE, VERSION, "same.txt", b"same")
    remote.add(PACKAGE, VERSION, "changed.txt", b"old!")
    manager = TransferManager(remote, fast_config())
    recorder = Recorder(manager.accounting)
    await manager.push(items(root), package=PACKAGE, version=VERSION)
    assert {p: r.status for p, r in recorder.results.items()} == {
        "same.txt": Status.SKIPPED,
        "changed.txt": Status.DONE,
        "new.txt": Status.DONE,
    }
    assert stored(remote) == {"same.txt": b"same", "changed.txt": b"new!", "new.txt": b"fresh"}
    assert remote.calls["put_file"] == 2


async def test_overwrite_uploads_even_identical_files_without_listing(tmp_path: Path) -> None:
    root = tree(tmp_path, {"same.txt": b"same"})
    remote = FakeRemote()
    remote.add(PACKAGE, VERSION, "same.txt", b"same")
    summary = await TransferManager(remote, fast_config(overwrite=True)).push(
        items(root), package=PACKAGE, version=VERSION
    )
    assert summary.succeeded == 1
    assert remote.calls["put_file"] == 1 and remote.calls["list_files"] == 0


async def test_a_refused_item_fails_alone_and_its_session_is_aborted(tmp_path: Path) -> None:
    payloads = {"ok.bin": b"k" * 1000, "taken.bin": random.Random(1).randbytes(700 * KiB)}
    root = tree(tmp_path, payloads)
    remote = FakeRemote(capabilities=SESSIONS, reject_overwrite=True)
    remote.add(PACKAGE, VERSION, "taken.bin", b"someone else's")
    manager = TransferManager(remote, fast_config())
    recorder = Recorder(manager.accounting)
    summary = await manager.push(items(root), package=PACKAGE, version=VERSION)
    assert summary.failed == 1 and summary.succeeded == 1
    assert "already exists" in (recorder.results["taken.bin"].error or "")
    assert remote.calls["commit_upload"] == 1  # a Conflict is not retried
    assert remote.sessions == {}  # the failure cleanup aborted the session
    assert remote.calls["abort_upload"] == 1
    assert stored(remote)["ok.bin"] == payloads["ok.bin"]


async def test_a_killed_session_upload_resumes_from_the_last_acknowledged_chunk(tmp_path: Path) -> None:
    data = random.Random(5).randbytes(4 * MiB + 3)
    root = tree(tmp_path, {"big.bin": data})
    journal_path = tmp_path / "jobs" / "push.sqlite"
    remote = FakeRemote(capabilities=SESSIONS)
    remote.block_after_received = 2 * MiB + 100 * KiB  # stalls in the middle of a part

    with Journal.open(journal_path) as journal:
        manager = TransferManager(remote, fast_config(), journal=journal)
        recorder = Recorder(manager.accounting)
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: manager.push(items(root), package=PACKAGE, version=VERSION))
            await remote.blocked.wait()
            tg.cancel_scope.cancel()
    assert recorder.results["big.bin"].status is Status.CANCELLED
    (session,) = remote.sessions.values()  # a cancel does not abort: the session stays resumable
    acknowledged = session.state().offset
    assert acknowledged >= 2 * MiB
    with Journal.open(journal_path) as journal:
        entry = journal.get("big.bin")
        assert entry is not None and entry.session_id == session.id
        assert 2 * MiB - manager.config.chunk_size <= entry.acked <= acknowledged
    remote.block_after_received = None
    received_before = remote.bytes_received

    with Journal.open(journal_path) as journal:
        manager = TransferManager(remote, fast_config(), journal=journal)
        recorder = Recorder(manager.accounting)
        summary = await manager.push(items(root), package=PACKAGE, version=VERSION)

    assert summary.succeeded == 1
    assert stored(remote)["big.bin"] == data
    assert remote.calls["begin_upload"] == 1  # the same session carried on
    assert remote.bytes_received - received_before == len(data) - acknowledged
    assert recorder.results["big.bin"].action == "upload-session"


async def test_a_reset_part_continues_from_what_the_server_kept(tmp_path: Path) -> None:
    data = random.Random(9).randbytes(1 * MiB)
    root = tree(tmp_path, {"f.bin": data})
    remote = FakeRemote(
        capabilities=SESSIONS, faults=Faults().script("put_part", [None, Fault.RESET], path="f.bin")
    )
    summary = await TransferManager(remote, fast_config()).push(items(root), package=PACKAGE, version=VERSION)
    assert summary.succeeded == 1
    assert stored(remote)["f.bin"] == data
    # The broken part delivered half of itself, which the server kept: nothing was sent twice.
    assert remote.bytes_received == len(data)


async def test_a_source_that_changes_mid_upload_is_rehashed_and_sent_again(tmp_path: Path) -> None:
    root = tree(tmp_path, {"f.bin": b"a" * 300 * KiB})
    item = items(root)[0]
    remote = FakeRemote()
    real_put = remote.put_file
    calls = 0

    async def put_while_changing(*args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            (root / "f.bin").write_bytes(b"b" * 300 * KiB)  # same size, new bytes
        await real_put(*args, **kwargs)  # type: ignore[arg-type]

    remote.put_file = put_while_changing  # type: ignore[method-assign]
    summary = await TransferManager(remote, fast_config()).push([item], package=PACKAGE, version=VERSION)
    assert summary.succeeded == 1
    assert stored(remote)["f.bin"] == b"b" * 300 * KiB
    assert calls == 2


async def test_dry_run_plans_without_touching_the_remote(tmp_path: Path) -> None:
    root = tree(tmp_path, {"a": b"1", "b": b"22", "big": b"x" * 600 * KiB})
    remote = FakeRemote(capabilities=SESSIONS)
    remote.add(PACKAGE, VERSION, "a", b"1")
    manager = TransferManager(remote, fast_config(dry_run=True))
    recorder = Recorder(manager.accounting)
    summary = await manager.push(items(root), package=PACKAGE, version=VERSION)
    assert (summary.planned, summary.skipped) == (2, 1)
    assert {p: r.action for p, r in recorder.results.items()} == {
        "a": "identical",
        "b": "upload",
        "big": "upload-session",
    }
    assert set(remote.calls) == {"list_files"}
    assert stored(remote) == {"a": b"1"}


async def test_an_unreadable_file_fails_alone(tmp_path: Path) -> None:
    root = tree(tmp_path, {"ok": b"ok", "gone": b"soon deleted"})
    listed = items(root)
    (root / "gone").unlink()
    manager = TransferManager(FakeRemote(), fast_config())
    recorder = Recorder(manager.accounting)
    summary = await manager.push(listed, package=PACKAGE, version=VERSION)
    assert summary.failed == 1 and summary.succeeded == 1
    assert "No such file" in (recorder.results["gone"].error or "")


async def test_a_listing_that_keeps_failing_fails_the_job(tmp_path: Path) -> None:
    root = tree(tmp_path, {"a": b"1"})
    remote = FakeRemote(faults=Faults().script("list_files", [Fault.HTTP_503] * 20))
    remote.add(PACKAGE, VERSION, "other", b"x")
    from hc.errors import TransientError

    with pytest.raises(TransientError):
        await TransferManager(remote, fast_config(max_attempts=2)).push(
            items(root), package=PACKAGE, version=VERSION
        )
    assert remote.calls["put_file"] == 0


@pytest.mark.parametrize(
    ("capabilities", "expected"),
    [
        (Capabilities(), {"md5", "sha1", "sha256", "sha512"}),  # Harness: all four, as the Go CLI
        (Capabilities(checksum_algorithms=("sha256",)), {"sha256"}),  # an hc registry hashes the rest
    ],
    ids=["harness", "hc-registry"],
)
async def test_an_upload_carries_the_digests_the_remote_asks_for(
    tmp_path: Path, capabilities: Capabilities, expected: set[str]
) -> None:
    root = tree(tmp_path, {"a.bin": b"x" * 5000})
    remote = FakeRemote(capabilities=capabilities)
    sent: list[set[str]] = []
    real_put = remote.put_file

    async def recording_put(location, source, *, checksums, overwrite):  # type: ignore[no-untyped-def]
        sent.append({alg for alg in ("md5", "sha1", "sha256", "sha512") if checksums.get(alg)})
        await real_put(location, source, checksums=checksums, overwrite=overwrite)

    remote.put_file = recording_put  # type: ignore[method-assign]
    summary = await TransferManager(remote, fast_config()).push(items(root), package=PACKAGE, version=VERSION)
    assert summary.succeeded == 1
    assert sent == [expected]
