"""Bounded everything: items read ahead, requests in flight, whatever the job's size."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio

from hc.transfer.manager import TransferManager
from hc.transfer.remote import Capabilities, RemoteFile
from hc.transfer.walk import LocalItem

from .fakes import FakeRemote
from .support import PACKAGE, VERSION, fast_config

MiB = 1024 * 1024


async def settle(probe: list[int], *, rounds: int = 20) -> None:
    """Wait until ``probe[0]`` stops moving (the pipeline is full and everything is blocked)."""
    last, still = -1, 0
    while still < rounds:
        await anyio.sleep(0.005)
        still = still + 1 if probe[0] == last else 0
        last = probe[0]


async def test_a_100k_item_pull_reads_only_a_bounded_window_ahead(tmp_path: Path) -> None:
    remote = FakeRemote()
    remote.hold = anyio.Event()  # every download waits: nothing completes
    config = fast_config(concurrency=8, backlog=32, hash_threads=2)
    produced = [0]

    async def listing() -> AsyncIterator[RemoteFile]:
        for i in range(100_000):
            produced[0] += 1
            yield RemoteFile(package=PACKAGE, version=VERSION, path=f"f{i:06d}", size=10, sha256="0" * 64)

    manager = TransferManager(remote, config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.pull, listing(), tmp_path)
        await settle(produced)
        assert remote.in_flight == config.concurrency  # the request pool is full …
        workers = config.concurrency + config.hash_threads
        # … and the rest waits in the bounded stream: backlog + one per worker + one in the feeder.
        assert produced[0] <= config.backlog + workers + 1
        tg.cancel_scope.cancel()
    assert manager.accounting.items_queued <= config.backlog + workers + 1


async def test_a_100k_item_push_generator_is_not_materialised(tmp_path: Path) -> None:
    source = tmp_path / "one.bin"
    source.write_bytes(b"x" * 100)
    st = source.stat()
    remote = FakeRemote()
    remote.hold = anyio.Event()
    config = fast_config(overwrite=True)
    produced = [0]

    def items() -> Iterator[LocalItem]:
        for i in range(100_000):
            produced[0] += 1
            yield LocalItem.from_stat(source, f"copy{i:06d}.bin", st)

    manager = TransferManager(remote, config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: manager.push(items(), package=PACKAGE, version=VERSION))
        await settle(produced)
        assert produced[0] <= config.backlog + config.concurrency + config.hash_threads + 1
        tg.cancel_scope.cancel()


async def test_parts_and_whole_files_share_one_request_limit(tmp_path: Path) -> None:
    """Split downloads of big files and whole small files together never exceed ``concurrency``
    requests, and do reach it (the bound is the limiter, not an accident of scheduling)."""
    rng = random.Random(3)
    remote = FakeRemote(capabilities=Capabilities(ranged_reads=True))
    entries = [remote.add(PACKAGE, VERSION, f"big{i}", rng.randbytes(2 * MiB)) for i in range(4)]
    entries += [remote.add(PACKAGE, VERSION, f"small{i}", rng.randbytes(5000)) for i in range(40)]
    config = fast_config(concurrency=5, split=4)
    summary = await TransferManager(remote, config).pull(entries, tmp_path)
    assert summary.failed == 0
    assert remote.max_in_flight == config.concurrency
