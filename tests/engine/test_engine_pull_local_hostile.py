"""Pull into a destination someone else can also write to (a shared folder): whatever another local
user plants or swaps in the tree while the job runs, and whatever the listing's own names collide
with, hc writes only its own files, only inside the destination, and never hangs."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from hc.transfer.manager import TransferManager
from hc.transfer.remote import Capabilities, FileLocation
from hc.transfer.results import Status

from .fakes import FakeRemote
from .support import PACKAGE, VERSION, Recorder, fast_config, read_tree

KiB = 1024
SMALL, RANGED = 5 * KiB, 700 * KiB  # fetched whole and batch-written / fetched by ranges into a .part
SIZES = pytest.mark.parametrize("size", [SMALL, RANGED], ids=["small", "ranged"])


def payload(size: int, seed: int = 1) -> bytes:
    return bytes((i * 31 + seed) % 251 for i in range(size))


class HookedRemote(FakeRemote):
    """Runs ``before_read[path]()`` (once) when a download of ``path`` starts: the moment another
    local user acts, after the engine looked at the destination and before it writes there."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(capabilities=Capabilities(ranged_reads=True), **kwargs)
        self.before_read: dict[str, Callable[[], None]] = {}

    @asynccontextmanager
    async def open_read(self, location: FileLocation, **kwargs: Any) -> AsyncIterator[Any]:
        hook = self.before_read.pop(location.path, None)
        if hook is not None:
            hook()
        async with super().open_read(location, **kwargs) as stream:
            yield stream


@contextmanager
def unblocking_fifo(fifo: Path, *, mode: int, after: float = 3.0) -> Iterator[list[bool]]:
    """A watchdog for a FIFO the engine must not open: if the job is still running after ``after``
    seconds, open the other end (which releases an ``open`` blocked on it) and record that it had
    to, so the test fails instead of hanging forever."""
    rescued: list[bool] = []
    done = threading.Event()

    def watch() -> None:
        if done.wait(after):
            return
        rescued.append(True)
        try:
            fd = os.open(fifo, mode | os.O_NONBLOCK)
        except OSError:
            return
        os.close(fd)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield rescued
    finally:
        done.set()
        thread.join()


@SIZES
async def test_a_fifo_planted_at_a_part_name_neither_blocks_nor_is_written(tmp_path: Path, size: int) -> None:
    # Opening a FIFO for writing waits for a reader: forever, in a shielded batch write.
    data = payload(size)
    remote = HookedRemote()
    entry = remote.add(PACKAGE, VERSION, "f.bin", data)
    dest = tmp_path / "dest"
    dest.mkdir()
    os.mkfifo(dest / "f.bin.part")
    with unblocking_fifo(dest / "f.bin.part", mode=os.O_RDONLY) as rescued:
        summary = await TransferManager(remote, fast_config()).pull([entry], dest)
    assert rescued == []
    assert summary.succeeded == 1
    assert (dest / "f.bin").read_bytes() == data
    assert sorted(p.name for p in dest.iterdir()) == ["f.bin"]


@SIZES
async def test_a_fifo_at_a_final_name_is_refused_without_blocking(tmp_path: Path, size: int) -> None:
    # Without --overwrite an existing file is hashed to see whether it is already identical;
    # opening a FIFO to read it waits for a writer (forever).
    remote = HookedRemote()
    entry = remote.add(PACKAGE, VERSION, "f.bin", payload(size))
    ok = remote.add(PACKAGE, VERSION, "ok.bin", b"fine")
    dest = tmp_path / "dest"
    dest.mkdir()
    os.mkfifo(dest / "f.bin")
    manager = TransferManager(remote, fast_config())
    recorder = Recorder(manager.accounting)
    with unblocking_fifo(dest / "f.bin", mode=os.O_WRONLY) as rescued:
        summary = await manager.pull([entry, ok], dest)
    assert rescued == []
    assert summary.failed == 1 and summary.succeeded == 1
    assert "not a regular file" in (recorder.results["f.bin"].error or "")
    assert (dest / "f.bin").is_fifo()
    assert sorted(p.name for p in dest.iterdir()) == ["f.bin", "ok.bin"]


async def test_a_fifo_planted_mid_job_in_a_new_folder_is_replaced_without_blocking(tmp_path: Path) -> None:
    # A folder empty (or absent) when the job first looks at it is not stat-ed again file by file;
    # what someone plants there meanwhile is replaced by the rename, never opened.
    remote = HookedRemote()
    first = remote.add(PACKAGE, VERSION, "d/first.bin", payload(100))
    second = remote.add(PACKAGE, VERSION, "d/second.bin", payload(SMALL, seed=2))
    dest = tmp_path / "dest"
    dest.mkdir()

    def plant() -> None:
        (dest / "d").mkdir(exist_ok=True)
        os.mkfifo(dest / "d" / "second.bin")

    remote.before_read["d/first.bin"] = plant
    with unblocking_fifo(dest / "d" / "second.bin", mode=os.O_WRONLY) as rescued:
        summary = await TransferManager(remote, fast_config(concurrency=1)).pull([first, second], dest)
    assert rescued == []
    assert summary.succeeded == 2
    assert (dest / "d" / "second.bin").read_bytes() == payload(SMALL, seed=2)
    assert sorted(p.name for p in (dest / "d").iterdir()) == ["first.bin", "second.bin"]


def swapped_mid_job(tmp_path: Path, size: int) -> tuple[list[Any], Path, Path, TransferManager, Recorder]:
    """``dest/d/first.bin`` and ``dest/d/second.bin`` to pull one at a time; when the first download
    starts, another user moves ``dest/d`` away and puts a link to ``victim`` (outside) there."""
    remote = HookedRemote()
    first = remote.add(PACKAGE, VERSION, "d/first.bin", payload(100))
    second = remote.add(PACKAGE, VERSION, "d/second.bin", payload(size, seed=2))
    dest, outside = tmp_path / "dest", tmp_path / "victim"
    (dest / "d").mkdir(parents=True)
    outside.mkdir()

    def swap() -> None:
        (dest / "d").rename(dest / "d-moved")
        (dest / "d").symlink_to(outside, target_is_directory=True)

    remote.before_read["d/first.bin"] = swap
    manager = TransferManager(remote, fast_config(concurrency=1))
    return [first, second], dest, outside, manager, Recorder(manager.accounting)


@SIZES
async def test_a_directory_swapped_for_a_symlink_mid_job_receives_nothing_outside(
    tmp_path: Path, size: int
) -> None:
    """The engine checks a directory once (does it resolve inside the destination?) and used to
    write by path afterwards: another user who swaps the directory for a link to a folder of the
    victim's, after the check, had the download (and its ``.part``) written there."""
    entries, dest, outside, manager, recorder = swapped_mid_job(tmp_path, size)
    summary = await manager.pull(entries, dest)
    assert list(outside.iterdir()) == []  # nothing written (or left) through the link
    assert summary.failed == 2
    for name in ("d/first.bin", "d/second.bin"):
        assert "destination" in (recorder.results[name].error or ""), recorder.results[name].error
    assert (dest / "d").is_symlink()
    assert list((dest / "d-moved").iterdir()) == []


async def test_a_file_behind_a_directory_swapped_for_a_symlink_is_not_taken_as_already_there(
    tmp_path: Path,
) -> None:
    """The skip check read an existing file by path: after the swap it hashed the file *outside*
    the destination and, that one being identical, reported the item skipped, with nothing in the
    destination. It now reads through a descriptor of the walked folder."""
    entries, dest, outside, manager, recorder = swapped_mid_job(tmp_path, SMALL)
    (outside / "second.bin").write_bytes(payload(SMALL, seed=2))  # identical, but not ours
    (dest / "d" / "second.bin").write_bytes(b"stale")  # so the engine looks at the name at all
    await manager.pull(entries, dest)
    result = recorder.results["d/second.bin"]
    assert result.status is Status.FAILED and "destination" in (result.error or ""), result
    assert (outside / "second.bin").read_bytes() == payload(SMALL, seed=2)


async def test_a_symlink_inside_the_destination_still_leads_to_a_folder_there(tmp_path: Path) -> None:
    # A link that stays inside the destination is the user's own layout: it is followed, as before.
    remote = HookedRemote()
    entries = [
        remote.add(PACKAGE, VERSION, "alias/small.bin", payload(300)),
        remote.add(PACKAGE, VERSION, "alias/sub/big.bin", payload(RANGED, seed=3)),
    ]
    dest = tmp_path / "dest"
    (dest / "real").mkdir(parents=True)
    (dest / "alias").symlink_to(dest / "real", target_is_directory=True)
    summary = await TransferManager(remote, fast_config()).pull(entries, dest)
    assert summary.succeeded == 2
    assert (dest / "real" / "small.bin").read_bytes() == payload(300)
    assert (dest / "real" / "sub" / "big.bin").read_bytes() == payload(RANGED, seed=3)


@SIZES
async def test_a_listed_file_named_like_another_ones_part_is_not_lost(tmp_path: Path, size: int) -> None:
    """``x`` downloads through ``x.part``: when the listing also names ``x.part``, one download
    used to truncate, overwrite or rename away the other's file while both were reported done."""
    remote = HookedRemote()
    entries = [
        remote.add(PACKAGE, VERSION, "x.bin", payload(size, seed=4)),
        remote.add(PACKAGE, VERSION, "x.bin.part", payload(size, seed=5)),
    ]
    dest = tmp_path / "dest"
    for ordered in (entries, entries[::-1]):
        manager = TransferManager(remote, fast_config())
        recorder = Recorder(manager.accounting)
        await manager.pull(ordered, dest)
        on_disk = read_tree(dest)
        for entry in entries:
            result = recorder.results[entry.path]
            if result.status is Status.DONE:  # reported written: it is there, exact
                assert on_disk.get(entry.path) == remote.data(PACKAGE, VERSION, entry.path), entry.path
            else:
                assert result.status is Status.FAILED and "temporary" in (result.error or "")
        assert len(recorder.with_status(Status.DONE)) == 1
        for path in list(dest.iterdir()):
            path.unlink()


@SIZES
async def test_a_hard_link_at_a_part_name_does_not_carry_the_download_into_its_other_name(
    tmp_path: Path, size: int
) -> None:
    """A ``.part`` that shares its bytes with another name (a snapshot made with ``cp -al`` of an
    interrupted pull, or a link planted by someone) is not hc's to write: the other name keeps its
    bytes (the open used to truncate it, then fill it with the download)."""
    data = payload(size)
    remote = HookedRemote()
    entry = remote.add(PACKAGE, VERSION, "f.bin", data)
    dest = tmp_path / "dest"
    dest.mkdir()
    other = tmp_path / "snapshot-of-f.bin.part"
    other.write_bytes(b"someone else's bytes" * 100)
    os.link(other, dest / "f.bin.part")
    summary = await TransferManager(remote, fast_config()).pull([entry], dest)
    assert summary.succeeded == 1
    assert other.read_bytes() == b"someone else's bytes" * 100
    assert (dest / "f.bin").read_bytes() == data
    assert sorted(p.name for p in dest.iterdir()) == ["f.bin"]


async def test_overwrite_replaces_a_fifo_at_a_final_name_without_opening_it(tmp_path: Path) -> None:
    remote = HookedRemote()
    entry = remote.add(PACKAGE, VERSION, "f.bin", payload(300))
    dest = tmp_path / "dest"
    dest.mkdir()
    os.mkfifo(dest / "f.bin")
    with unblocking_fifo(dest / "f.bin", mode=os.O_WRONLY) as rescued:
        summary = await TransferManager(remote, fast_config(overwrite=True)).pull([entry], dest)
    assert rescued == [] and summary.succeeded == 1
    assert (dest / "f.bin").read_bytes() == payload(300)


async def test_a_directory_swapped_for_a_link_loop_fails_the_item_cleanly(tmp_path: Path) -> None:
    remote = HookedRemote()
    first = remote.add(PACKAGE, VERSION, "d/first.bin", payload(100))
    dest = tmp_path / "dest"
    (dest / "d").mkdir(parents=True)

    def swap() -> None:
        (dest / "d").rmdir()
        (dest / "d").symlink_to("d")

    remote.before_read["d/first.bin"] = swap
    manager = TransferManager(remote, fast_config(concurrency=1))
    recorder = Recorder(manager.accounting)
    summary = await manager.pull([first], dest)
    assert summary.failed == 1
    assert "symbolic links" in (recorder.results["d/first.bin"].error or "")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
@SIZES
async def test_a_part_file_owned_by_another_user_is_not_adopted(tmp_path: Path, size: int) -> None:
    """Another user's ``.part`` (writable by all, in a folder both can write) used to be written
    into and renamed to the final name, still theirs: they could change the verified file later."""
    data = payload(size)
    remote = HookedRemote()
    entry = remote.add(PACKAGE, VERSION, "f.bin", data)
    dest = tmp_path / "dest"
    dest.mkdir()
    planted = dest / "f.bin.part"
    planted.write_bytes(b"\0" * size)
    os.chown(planted, 65534, 65534)
    planted.chmod(0o666)
    summary = await TransferManager(remote, fast_config()).pull([entry], dest)
    assert summary.succeeded == 1
    assert (dest / "f.bin").read_bytes() == data
    assert (dest / "f.bin").stat().st_uid == os.geteuid()


@SIZES
async def test_a_directory_at_a_part_name_fails_the_item_naming_it(tmp_path: Path, size: int) -> None:
    remote = HookedRemote()
    entry = remote.add(PACKAGE, VERSION, "d/f.bin", payload(size))
    dest = tmp_path / "dest"
    (dest / "d" / "f.bin.part").mkdir(parents=True)
    manager = TransferManager(remote, fast_config())
    recorder = Recorder(manager.accounting)
    summary = await manager.pull([entry], dest)
    assert summary.failed == 1
    assert f"Is a directory {dest / 'd' / 'f.bin.part'}" in (recorder.results["d/f.bin"].error or "")
    assert (dest / "d" / "f.bin.part").is_dir() and not (dest / "d" / "f.bin").exists()


async def test_a_link_to_the_destination_itself_is_followed_as_before(tmp_path: Path) -> None:
    remote = HookedRemote()
    entries = [
        remote.add(PACKAGE, VERSION, "here/a.bin", payload(300)),
        remote.add(PACKAGE, VERSION, "here/b.bin", payload(RANGED, seed=6)),
    ]
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "here").symlink_to(dest, target_is_directory=True)
    summary = await TransferManager(remote, fast_config()).pull(entries, dest)
    assert summary.succeeded == 2
    assert (dest / "a.bin").read_bytes() == payload(300)
    assert (dest / "b.bin").read_bytes() == payload(RANGED, seed=6)
