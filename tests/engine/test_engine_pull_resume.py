"""Pull: what a SIGKILL costs on resume, long names, and a listing that names one path twice."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import anyio

from hc.transfer.accounting import ItemFinished
from hc.transfer.journal import Journal
from hc.transfer.manager import TransferManager
from hc.transfer.results import Status

from .fakes import FakeRemote
from .support import PACKAGE, VERSION, Recorder, fast_config, read_tree

KiB, MiB = 1024, 1024 * 1024
TESTS = Path(__file__).resolve().parent.parent

# The child pulls one split file into `dest` with a real journal and kills itself (SIGKILL: no
# finally, no flush) the moment the fake server has served `kill_at` bytes.
CHILD = r"""
import os, random, signal, sys
from pathlib import Path

import anyio

from engine.fakes import FakeRemote
from engine.support import PACKAGE, VERSION, fast_config
from hc.transfer.accounting import ItemFinished
from hc.transfer.journal import Journal
from hc.transfer.manager import TransferManager

dest, journal_path = Path(sys.argv[1]), Path(sys.argv[2])
size, kill_at, seed = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])


class KilledRemote(FakeRemote):
    async def _maybe_block(self, before, now, limit):
        if before < kill_at <= now:
            os.kill(os.getpid(), signal.SIGKILL)


async def main():
    remote = KilledRemote()
    entry = remote.add(PACKAGE, VERSION, "big.bin", random.Random(seed).randbytes(size))
    with Journal.open(journal_path) as journal:
        await TransferManager(remote, fast_config(), journal=journal).pull([entry], dest)


anyio.run(main)
"""


async def killed_pull(tmp_path: Path, size: int, kill_at: int, seed: int) -> tuple[Path, Path]:
    """Run CHILD until its SIGKILL; the destination folder and the journal it left."""
    dest, journal_path = tmp_path / "dest", tmp_path / "jobs" / "pull.db"
    child = await anyio.to_thread.run_sync(
        lambda: subprocess.run(
            [sys.executable, "-c", CHILD, str(dest), str(journal_path), str(size), str(kill_at), str(seed)],
            env={**os.environ, "PYTHONPATH": str(TESTS)},
            capture_output=True,
            timeout=120,
        )
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    return dest, journal_path


async def test_a_killed_split_pull_refetches_at_most_a_chunk_per_range(tmp_path: Path) -> None:
    config = fast_config()
    size, kill_at, seed = 8 * MiB, 4 * MiB, 11  # 4 ranges of 2 MiB; killed half-way
    dest, journal_path = await killed_pull(tmp_path, size, kill_at, seed)
    assert not (dest / "big.bin").exists()

    remote = FakeRemote()
    data = random.Random(seed).randbytes(size)
    entry = remote.add(PACKAGE, VERSION, "big.bin", data)
    with Journal.open(journal_path) as journal:
        manager = TransferManager(remote, config, journal=journal)
        recorder = Recorder(manager.accounting)
        summary = await manager.pull([entry], dest)

    assert summary.failed == 0
    assert recorder.results["big.bin"].action == "resume"
    assert read_tree(dest) == {"big.bin": data}
    # The file comes as pieces of chunk_size, `split` at a time, each recording its progress once
    # written (at its end here: the pieces are smaller than the record interval): what was served
    # but not yet recorded is at most one piece (plus the chunk in flight) per stream. Everything
    # else the killed run fetched is kept.
    slack = config.split * (config.chunk_size + remote.chunk_size)
    assert remote.bytes_served <= (size - kill_at) + slack, remote.bytes_served


async def test_bytes_a_power_cut_lost_under_a_recorded_range_are_caught_and_fetched_again(
    tmp_path: Path,
) -> None:
    # Progress is recorded once bytes are written, not fdatasynced: after a power cut the journal
    # may claim bytes the disk lost. The resumed file then fails its digest check and is fetched
    # again from zero; the damaged bytes never reach the final name.
    size, kill_at, seed = 8 * MiB, 4 * MiB, 12
    dest, journal_path = await killed_pull(tmp_path, size, kill_at, seed)
    (part,) = dest.glob("*.part")
    with open(part, "r+b") as damaged:  # the first piece is recorded: zero it, as a lost write
        damaged.write(bytes(64 * KiB))

    remote = FakeRemote()
    data = random.Random(seed).randbytes(size)
    entry = remote.add(PACKAGE, VERSION, "big.bin", data)
    with Journal.open(journal_path) as journal:
        manager = TransferManager(remote, fast_config(), journal=journal)
        recorder = Recorder(manager.accounting)
        summary = await manager.pull([entry], dest)
    assert summary.failed == 0
    assert recorder.results["big.bin"].attempts == 2  # the resumed copy failed its check
    assert read_tree(dest) == {"big.bin": data}


async def test_a_cancelled_split_pull_keeps_every_written_byte(tmp_path: Path) -> None:
    """A cancel (Ctrl-C) records each range's progress on the way out: nothing written is lost."""
    data = random.Random(3).randbytes(4 * MiB)
    dest, journal_path = tmp_path / "dest", tmp_path / "jobs" / "pull.db"
    first = FakeRemote()
    entry = first.add(PACKAGE, VERSION, "big.bin", data)
    first.block_after_bytes = len(data) // 2
    with Journal.open(journal_path) as journal:
        manager = TransferManager(first, fast_config(), journal=journal)
        async with anyio.create_task_group() as tg:
            tg.start_soon(manager.pull, [entry], dest)
            await first.blocked.wait()
            tg.cancel_scope.cancel()
    second = FakeRemote()
    second.add(PACKAGE, VERSION, "big.bin", data)
    with Journal.open(journal_path) as journal:
        await TransferManager(second, fast_config(), journal=journal).pull([entry], dest)
    assert read_tree(dest) == {"big.bin": data}
    in_flight = 4 * (2 * fast_config().buffer_size + first.chunk_size)  # fetched, not yet written
    assert second.bytes_served <= len(data) - first.bytes_served + in_flight


async def test_a_255_byte_name_is_pulled_and_its_part_file_resumed(tmp_path: Path) -> None:
    """'<name>.part' would be 260 bytes: the temporary name is a short one derived from the name,
    found again by the next run, and gone once the file has its final name."""
    name = "n" * 251 + ".bin"
    small_name = "s" * 255
    data = random.Random(4).randbytes(2 * MiB)
    first = FakeRemote()
    entries = [first.add(PACKAGE, VERSION, name, data), first.add(PACKAGE, VERSION, small_name, b"tiny\n")]
    first.block_after_bytes = MiB
    journal_path = tmp_path / "jobs" / "pull.db"
    with Journal.open(journal_path) as journal:
        manager = TransferManager(first, fast_config(), journal=journal)
        async with anyio.create_task_group() as tg:
            tg.start_soon(manager.pull, entries[:1], tmp_path / "dest")
            await first.blocked.wait()
            tg.cancel_scope.cancel()
    leftovers = [p.name for p in (tmp_path / "dest").iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".hc-") and leftovers[0].endswith(".part")
    assert len(leftovers[0].encode()) <= 255

    second = FakeRemote()
    for entry in entries:
        second.add(PACKAGE, VERSION, entry.path, first.data(PACKAGE, VERSION, entry.path))
    with Journal.open(journal_path) as journal:
        manager = TransferManager(second, fast_config(), journal=journal)
        recorder = Recorder(manager.accounting)
        summary = await manager.pull(entries, tmp_path / "dest")
    assert summary.failed == 0, recorder.results
    assert recorder.results[name].action == "resume"
    assert read_tree(tmp_path / "dest") == {name: data, small_name: b"tiny\n"}  # no stray file


async def test_a_path_listed_twice_is_downloaded_once_from_its_first_entry(tmp_path: Path) -> None:
    remote = FakeRemote()
    good = remote.add(PACKAGE, VERSION, "dup.bin", b"first\n")
    other = dataclasses.replace(good, sha256="0" * 64)  # the same path again, another digest
    big = remote.add(PACKAGE, VERSION, "big.bin", random.Random(9).randbytes(2 * MiB))
    twice_big = dataclasses.replace(big, sha256="1" * 64)
    manager = TransferManager(remote, fast_config())
    recorder = Recorder(manager.accounting)
    summary = await manager.pull([good, big, other, twice_big, good], tmp_path)
    assert read_tree(tmp_path) == {"dup.bin": b"first\n", "big.bin": remote.data(PACKAGE, VERSION, "big.bin")}
    assert summary.failed == 3
    finished = [e.result for e in recorder.events if isinstance(e, ItemFinished)]
    assert sorted((r.path, r.status.value) for r in finished) == [
        ("big.bin", Status.DONE.value),
        ("big.bin", Status.FAILED.value),
        ("dup.bin", Status.DONE.value),
        ("dup.bin", Status.FAILED.value),
        ("dup.bin", Status.FAILED.value),
    ]
    assert all("more than once" in (r.error or "") for r in finished if r.status is Status.FAILED)
    assert remote.calls["open_read"] == 1 + 8  # the small file once, the big one as 8 pieces
