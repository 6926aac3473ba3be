"""Bulk pull against a faulty fake registry: verified bytes only, resumable, bounded."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from hc.errors import IntegrityError
from hc.protocol.digest import Checksums
from hc.protocol.ranges import ByteRange
from hc.transfer import _pulling
from hc.transfer.accounting import Accounting, BytesMoved
from hc.transfer.hashcache import HashCache
from hc.transfer.journal import Journal
from hc.transfer.manager import TransferManager
from hc.transfer.remote import Capabilities, RemoteFile
from hc.transfer.results import Status

from .fakes import FakeRemote, Fault, Faults
from .support import PACKAGE, VERSION, Recorder, fast_config, make_payloads, read_tree

KiB, MiB = 1024, 1024 * 1024
ALL_DOWNLOAD_FAULTS = [
    Fault.RESET,
    Fault.TRUNCATE,
    Fault.HTTP_500,
    Fault.HTTP_502,
    Fault.HTTP_503,
    Fault.RATE_LIMIT,
    Fault.BITFLIP,
]


def seeded(remote: FakeRemote, payloads: dict[str, bytes]) -> list[RemoteFile]:
    return [remote.add(PACKAGE, VERSION, path, data) for path, data in payloads.items()]


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*.part"))


async def test_bulk_pull_with_faults_ends_with_every_byte_identical(tmp_path: Path) -> None:
    payloads = make_payloads(small=300, big_sizes=(3 * MiB + 17, 2 * MiB, 700 * KiB))
    remote = FakeRemote(faults=Faults(seed=3).at_rate("open_read", 0.12, ALL_DOWNLOAD_FAULTS))
    entries = seeded(remote, payloads)
    manager = TransferManager(remote, fast_config())
    recorder = Recorder(manager.accounting)

    summary = await manager.pull(entries, tmp_path / "out")

    failed = recorder.with_status(Status.FAILED)
    assert failed == {}
    assert summary.succeeded == len(payloads) and summary.failed == 0
    assert read_tree(tmp_path / "out") == payloads
    assert leftovers(tmp_path / "out") == []
    assert sum(remote.faults.injected.values()) > 20  # the faults really happened
    assert remote.faults.injected[Fault.BITFLIP] > 0
    assert summary.bytes == sum(len(d) for d in payloads.values())  # rewinds keep the count honest
    assert remote.max_in_flight <= manager.config.concurrency


async def test_small_files_read_in_batches_survive_the_same_faults(tmp_path: Path) -> None:
    """A registry with batch reads (hc.protocol.batchread): small files come by ``read_whole``,
    still verified one by one, retried one by one; large ones still by ranged GETs."""
    payloads = make_payloads(small=300, big_sizes=(700 * KiB,))
    remote = FakeRemote(
        faults=Faults(seed=5).at_rate("open_read", 0.12, ALL_DOWNLOAD_FAULTS),
        capabilities=Capabilities(batch_read_max_size=64 * KiB),
    )
    entries = seeded(remote, payloads)
    manager = TransferManager(remote, fast_config())

    summary = await manager.pull(entries, tmp_path / "out")

    assert summary.succeeded == len(payloads) and summary.failed == 0
    assert read_tree(tmp_path / "out") == payloads
    assert leftovers(tmp_path / "out") == []
    assert remote.faults.injected[Fault.BITFLIP] > 0
    small = sum(1 for data in payloads.values() if len(data) <= 64 * KiB)
    assert remote.calls["read_whole"] >= small > 0
    assert summary.bytes == sum(len(d) for d in payloads.values())


async def test_without_batch_reads_even_an_empty_file_is_a_plain_get(tmp_path: Path) -> None:
    remote = FakeRemote()  # batch_read_max_size 0: not even a 0-byte file may take that way
    await TransferManager(remote, fast_config()).pull(seeded(remote, {"empty": b"", "a": b"a"}), tmp_path)
    assert remote.calls["read_whole"] == 0 and remote.calls["open_read"] == 2
    assert read_tree(tmp_path) == {"empty": b"", "a": b"a"}


async def test_large_files_are_fetched_as_parallel_ranges(tmp_path: Path) -> None:
    # Pieces of chunk_size (256 KiB here), in file order, by at most `split` streams at once.
    payloads = {"big.bin": anyio_random_bytes(4 * MiB)}
    remote = FakeRemote()
    entries = seeded(remote, payloads)
    await TransferManager(remote, fast_config(split=4, concurrency=64)).pull(entries, tmp_path)
    assert remote.calls["open_read"] == 16
    assert 1 < remote.max_in_flight <= 4
    assert (tmp_path / "big.bin").read_bytes() == payloads["big.bin"]


@pytest.mark.parametrize("size", [5000, 300 * KiB], ids=["in-memory", "streamed"])
async def test_a_bit_flipped_download_never_reaches_its_final_name(tmp_path: Path, size: int) -> None:
    payloads = {"good.bin": b"g" * 5000, "evil.bin": b"e" * size}
    faults = Faults().always("open_read", Fault.BITFLIP, path="evil.bin")
    remote = FakeRemote(faults=faults)
    entries = seeded(remote, payloads)
    manager = TransferManager(remote, fast_config(max_attempts=3))
    recorder = Recorder(manager.accounting)
    seen_final: list[bool] = []

    def watch(event: object) -> None:
        if isinstance(event, BytesMoved) and event.path == "evil.bin":
            seen_final.append((tmp_path / "evil.bin").exists())

    manager.accounting.subscribe(watch)
    summary = await manager.pull(entries, tmp_path)

    assert summary.failed == 1 and summary.succeeded == 1
    result = recorder.results["evil.bin"]
    assert result.status is Status.FAILED
    assert result.error is not None and "sha256 mismatch" in result.error
    assert result.attempts == 3
    assert not (tmp_path / "evil.bin").exists()
    assert not any(seen_final)
    assert leftovers(tmp_path) == []  # the corrupt partial is gone too
    assert (tmp_path / "good.bin").read_bytes() == payloads["good.bin"]


async def test_one_corrupt_body_is_retried_and_the_file_arrives(tmp_path: Path) -> None:
    payloads = {"x.bin": bytes(range(256)) * 1000}
    remote = FakeRemote(faults=Faults().script("open_read", [Fault.BITFLIP], path="x.bin"))
    summary = await TransferManager(remote, fast_config()).pull(seeded(remote, payloads), tmp_path)
    assert summary.succeeded == 1
    assert (tmp_path / "x.bin").read_bytes() == payloads["x.bin"]
    assert remote.calls["open_read"] == 2


async def test_a_reset_mid_body_resumes_from_the_last_written_byte(tmp_path: Path) -> None:
    data = anyio_random_bytes(400 * KiB)  # below split_threshold: one stream
    remote = FakeRemote(faults=Faults().script("open_read", [Fault.RESET], path="f.bin"))
    entries = seeded(remote, {"f.bin": data})
    await TransferManager(remote, fast_config()).pull(entries, tmp_path)
    assert (tmp_path / "f.bin").read_bytes() == data
    # Half the body came before the reset; only the rest was fetched again.
    assert remote.bytes_served < len(data) * 1.2


async def test_a_cancelled_pull_leaves_part_files_that_the_next_run_resumes(tmp_path: Path) -> None:
    payloads = {f"big{i}.bin": anyio_random_bytes(2 * MiB + i) for i in range(3)}
    total = sum(len(d) for d in payloads.values())
    journal_path = tmp_path / "jobs" / "pull.sqlite"
    dest = tmp_path / "out"

    first = FakeRemote()
    entries = seeded(first, payloads)
    first.block_after_bytes = total // 2  # every stream stalls once half the job arrived
    with Journal.open(journal_path) as journal:
        manager = TransferManager(first, fast_config(), journal=journal)
        recorder = Recorder(manager.accounting)
        async with anyio.create_task_group() as tg:
            tg.start_soon(manager.pull, entries, dest)
            await first.blocked.wait()
            tg.cancel_scope.cancel()  # Ctrl-C
    assert set(r.status for r in recorder.results.values()) <= {Status.CANCELLED, Status.DONE}
    assert leftovers(dest), "a cancelled download keeps its .part"
    assert not any(
        (dest / name).exists() for name in payloads if recorder.results[name].status is not Status.DONE
    )
    fetched_first = first.bytes_served

    second = FakeRemote()
    seeded(second, payloads)
    with Journal.open(journal_path) as journal:
        manager = TransferManager(second, fast_config(), journal=journal)
        recorder = Recorder(manager.accounting)
        summary = await manager.pull(entries, dest)

    assert summary.failed == 0
    assert read_tree(dest) == payloads
    assert leftovers(dest) == []
    assert {r.action for r in recorder.results.values() if r.status is Status.DONE} <= {"resume", "download"}
    assert any(r.action == "resume" for r in recorder.results.values())
    # Resumed, not restarted: what the first run wrote (less at most one buffer per stream that was
    # in flight, plus the journal's last unflushed batch) is not fetched again.
    streams = len(payloads) * 4
    slack = streams * manager.config.buffer_size + 2 * manager.config.chunk_size
    assert second.bytes_served <= total - fetched_first + slack
    assert second.bytes_served < total * 0.75


async def test_a_re_pull_of_identical_files_downloads_nothing(tmp_path: Path) -> None:
    payloads = make_payloads(small=40)
    remote = FakeRemote()
    entries = seeded(remote, payloads)
    cache = HashCache.in_memory()
    await TransferManager(remote, fast_config(), hash_cache=cache).pull(entries, tmp_path)
    served, calls = remote.bytes_served, remote.calls["open_read"]

    manager = TransferManager(remote, fast_config(), hash_cache=cache)
    summary = await manager.pull(entries, tmp_path)
    assert summary.skipped == len(payloads) and summary.succeeded == 0
    assert (remote.bytes_served, remote.calls["open_read"]) == (served, calls)


async def test_a_local_file_that_differs_is_replaced(tmp_path: Path) -> None:
    remote = FakeRemote()
    entries = seeded(remote, {"a.txt": b"new content"})
    (tmp_path / "a.txt").write_bytes(b"old")
    summary = await TransferManager(remote, fast_config()).pull(entries, tmp_path)
    assert summary.succeeded == 1
    assert (tmp_path / "a.txt").read_bytes() == b"new content"


@pytest.mark.parametrize("size", [100, 2 * MiB], ids=["small", "ranged"])
async def test_a_symlink_planted_at_a_part_name_is_not_written_through(tmp_path: Path, size: int) -> None:
    """``<name>.part`` is hc's own temporary name: a link someone put there (pointing at a file the
    user can write) must not receive the download's bytes. It is replaced by a fresh file."""
    data = anyio_random_bytes(size)
    remote = FakeRemote(capabilities=Capabilities(ranged_reads=True))
    entries = seeded(remote, {"f.bin": data})
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "f.bin.part").symlink_to(victim)
    summary = await TransferManager(remote, fast_config()).pull(entries, dest)
    assert summary.succeeded == 1
    assert victim.read_bytes() == b"precious"
    assert (dest / "f.bin").read_bytes() == data and not (dest / "f.bin").is_symlink()
    assert leftovers(dest) == []


@pytest.mark.parametrize("evil", ["../escape.txt", "/etc/passwd", "a/../../x", "%2e%2e/x", "c:\\x"])
async def test_unsafe_names_from_a_listing_fail_and_write_nothing(tmp_path: Path, evil: str) -> None:
    remote = FakeRemote()
    remote.add(PACKAGE, VERSION, evil, b"pwned")
    ok = remote.add(PACKAGE, VERSION, "ok.txt", b"fine")
    dest = tmp_path / "dest"
    manager = TransferManager(remote, fast_config())
    recorder = Recorder(manager.accounting)
    summary = await manager.pull([remote.entry(PACKAGE, VERSION, evil), ok], dest)
    assert summary.failed == 1 and summary.succeeded == 1
    assert "unsafe path" in (recorder.results[evil].error or "")
    assert read_tree(tmp_path) == {"dest/ok.txt": b"fine"}


async def test_a_file_changed_on_the_server_is_reported_not_saved(tmp_path: Path) -> None:
    remote = FakeRemote()
    stale = remote.add(PACKAGE, VERSION, "f.bin", b"version one" * 100)
    remote.add(PACKAGE, VERSION, "f.bin", b"version two" * 100)  # same size, new content
    manager = TransferManager(remote, fast_config(max_attempts=2))
    recorder = Recorder(manager.accounting)
    summary = await manager.pull([stale], tmp_path)
    assert summary.failed == 1
    assert "mismatch" in (recorder.results["f.bin"].error or "")
    assert not (tmp_path / "f.bin").exists() and leftovers(tmp_path) == []


async def test_a_server_without_ranges_still_completes_after_a_reset(tmp_path: Path) -> None:
    data = anyio_random_bytes(1 * MiB)
    remote = FakeRemote(
        capabilities=Capabilities(ranged_reads=False),
        faults=Faults().script("open_read", [Fault.RESET], path="f.bin"),
    )
    summary = await TransferManager(remote, fast_config()).pull(seeded(remote, {"f.bin": data}), tmp_path)
    assert summary.succeeded == 1
    assert (tmp_path / "f.bin").read_bytes() == data
    assert remote.calls["open_read"] == 2  # no split without ranges; the retry re-reads and skips


async def test_missing_remote_file_fails_fast_without_retries(tmp_path: Path) -> None:
    remote = FakeRemote()
    ghost = RemoteFile(package=PACKAGE, version=VERSION, path="ghost.bin", size=10, sha256="0" * 64)
    manager = TransferManager(remote, fast_config())
    recorder = Recorder(manager.accounting)
    summary = await manager.pull([ghost], tmp_path)
    assert summary.failed == 1
    assert remote.calls["open_read"] == 1
    assert "not found" in (recorder.results["ghost.bin"].error or "")
    assert leftovers(tmp_path) == []


async def test_gives_up_after_max_attempts_and_keeps_the_part_for_later(tmp_path: Path) -> None:
    data = anyio_random_bytes(200 * KiB)
    faults = Faults().script("open_read", [Fault.RESET] + [Fault.HTTP_503] * 10, path="f.bin")
    remote = FakeRemote(faults=faults)
    manager = TransferManager(remote, fast_config(max_attempts=3))
    recorder = Recorder(manager.accounting)
    summary = await manager.pull(seeded(remote, {"f.bin": data}), tmp_path)
    assert summary.failed == 1
    assert "503" in (recorder.results["f.bin"].error or "")
    assert not (tmp_path / "f.bin").exists()
    assert leftovers(tmp_path) == ["f.bin.part"]  # transient: resumable next time


async def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    payloads = make_payloads(small=10)
    remote = FakeRemote()
    manager = TransferManager(remote, fast_config(dry_run=True))
    recorder = Recorder(manager.accounting)
    summary = await manager.pull(seeded(remote, payloads), tmp_path / "out")
    assert summary.planned == len(payloads) and summary.bytes == 0
    assert {r.action for r in recorder.results.values()} == {"download"}
    assert remote.calls["open_read"] == 0
    assert not (tmp_path / "out").exists()


async def test_listing_survives_a_transient_failure_mid_way() -> None:
    remote = FakeRemote(page_size=10, faults=Faults().script("list_files", [None, None, Fault.HTTP_502]))
    for i in range(35):
        remote.add(PACKAGE, VERSION, f"f{i:02d}", b"x")
    manager = TransferManager(remote, fast_config())
    paths = [entry.path async for entry in manager.listing(PACKAGE, VERSION)]
    assert paths == [f"f{i:02d}" for i in range(35)]
    assert [e.path async for e in manager.listing(PACKAGE, "no-such-version")] == []


async def test_pull_bytes_are_counted_once_despite_retries(tmp_path: Path) -> None:
    payloads = {"a.bin": anyio_random_bytes(300 * KiB)}
    remote = FakeRemote(faults=Faults().script("open_read", [Fault.BITFLIP, Fault.RESET], path="a.bin"))
    accounting = Accounting()
    summary = await TransferManager(remote, fast_config(), accounting=accounting).pull(
        seeded(remote, payloads), tmp_path
    )
    assert summary.bytes == len(payloads["a.bin"])
    assert accounting.bytes_total == accounting.bytes_done


def anyio_random_bytes(n: int) -> bytes:
    import random

    return random.Random(n).randbytes(n)


async def test_target_maps_entries_to_local_names(tmp_path: Path) -> None:
    remote = FakeRemote()
    entries = seeded(remote, {"a.txt": b"a", "sub/b.txt": b"b"})
    await TransferManager(remote, fast_config()).pull(
        entries, tmp_path, target=lambda e: f"{e.version}/{e.path}"
    )
    assert read_tree(tmp_path) == {f"{VERSION}/a.txt": b"a", f"{VERSION}/sub/b.txt": b"b"}


async def test_a_listing_with_only_md5_still_verifies_and_skips(tmp_path: Path) -> None:
    remote = FakeRemote()
    full = remote.add(PACKAGE, VERSION, "m.bin", b"md5 only" * 1000)
    md5_only = RemoteFile(package=PACKAGE, version=VERSION, path="m.bin", size=full.size, md5=full.md5)
    cache = HashCache.in_memory()
    first = await TransferManager(remote, fast_config(), hash_cache=cache).pull([md5_only], tmp_path)
    assert first.succeeded == 1
    again = await TransferManager(remote, fast_config(), hash_cache=cache).pull([md5_only], tmp_path)
    assert again.skipped == 1
    wrong = RemoteFile(package=PACKAGE, version=VERSION, path="m.bin", size=full.size, md5="0" * 32)
    manager = TransferManager(remote, fast_config(overwrite=True, max_attempts=1))
    recorder = Recorder(manager.accounting)
    await manager.pull([wrong], tmp_path / "other")
    assert "md5 mismatch" in (recorder.results["m.bin"].error or "")


async def test_an_error_in_the_item_stream_stops_the_job_with_that_error(tmp_path: Path) -> None:
    from hc.errors import UsageError

    remote = FakeRemote()
    entries = seeded(remote, {"a": b"1"})

    async def broken() -> AsyncIterator[RemoteFile]:
        yield entries[0]
        raise UsageError("no such file or directory: 'x'")

    with pytest.raises(UsageError, match="no such file"):
        await TransferManager(remote, fast_config()).pull(broken(), tmp_path)


async def test_the_hash_follower_hashes_many_buffers_per_call_and_refuses_a_short_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The follower of a split download hashes all that is written (up to HASH_STEP) in one
    # worker-thread call, a buffer at a time: the digest must not depend on where calls and
    # buffers end, and a file shorter than its ranges must fail, not hash what is there.
    monkeypatch.setattr(_pulling, "HASH_STEP", 3 * 256 * KiB + 5)  # 3 buffers and a bit per call
    data = anyio_random_bytes(1 * MiB + 77)
    path = tmp_path / "f.part"
    path.write_bytes(data)
    manager = TransferManager(FakeRemote(), fast_config())  # the follower reads 4 x 64 KiB at a time
    ranges = [ByteRange(0, 300 * KiB), ByteRange(300 * KiB, len(data))]
    fd = os.open(path, os.O_RDONLY)
    try:
        out: list[Checksums] = []
        await manager._follow_hash(fd, ranges, {0: ranges[0].end, 1: ranges[1].end}, ["sha256"], out)
        assert out[0].sha256 == hashlib.sha256(data).hexdigest()
        assert out[0].size == len(data)
        os.truncate(path, len(data) - 1000)
        with pytest.raises(IntegrityError, match="ended at byte"):
            await manager._follow_hash(fd, ranges, {0: ranges[0].end, 1: ranges[1].end}, ["sha256"], [])
    finally:
        os.close(fd)
