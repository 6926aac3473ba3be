"""Heavier fault sweeps (``pytest -m slow``): many seeds, high fault rates, every server flavour."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hc.transfer.manager import TransferManager
from hc.transfer.remote import Capabilities
from hc.transfer.results import Status
from hc.transfer.walk import walk

from .fakes import FakeRemote, Fault, Faults
from .support import PACKAGE, VERSION, Recorder, fast_config, make_payloads, read_tree, write_tree

pytestmark = pytest.mark.slow

KiB, MiB = 1024, 1024 * 1024
DOWNLOAD = [Fault.RESET, Fault.TRUNCATE, Fault.HTTP_500, Fault.HTTP_503, Fault.RATE_LIMIT, Fault.BITFLIP]
UPLOAD = [Fault.RESET, Fault.HTTP_500, Fault.HTTP_503, Fault.RATE_LIMIT]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("ranged", [True, False], ids=["ranges", "no-ranges"])
async def test_pull_survives_a_30_percent_fault_rate(tmp_path: Path, seed: int, ranged: bool) -> None:
    payloads = make_payloads(small=60, big_sizes=(2 * MiB + 3, 700 * KiB), seed=seed)
    remote = FakeRemote(
        capabilities=Capabilities(ranged_reads=ranged),
        faults=Faults(seed=seed).at_rate("open_read", 0.3, DOWNLOAD),
    )
    entries = [remote.add(PACKAGE, VERSION, path, data) for path, data in payloads.items()]
    manager = TransferManager(remote, fast_config(max_attempts=12))
    recorder = Recorder(manager.accounting)
    summary = await manager.pull(entries, tmp_path / "out")
    assert recorder.with_status(Status.FAILED) == {}
    assert read_tree(tmp_path / "out") == payloads
    assert summary.bytes == sum(map(len, payloads.values()))
    assert manager.accounting.bytes_total == manager.accounting.bytes_done


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(
    "capabilities",
    [
        Capabilities(),
        Capabilities(upload_sessions=True),
        Capabilities(upload_sessions=True, parallel_parts=True),
    ],
    ids=["put", "sessions", "parallel-parts"],
)
async def test_push_survives_a_30_percent_fault_rate(
    tmp_path: Path, seed: int, capabilities: Capabilities
) -> None:
    payloads = make_payloads(small=60, big_sizes=(2 * MiB + 3, 700 * KiB), seed=seed)
    write_tree(tmp_path / "src", payloads)
    faults = (
        Faults(seed=seed)
        .at_rate("put_file", 0.3, UPLOAD)
        .at_rate("put_part", 0.3, UPLOAD)
        .at_rate("resume_upload", 0.2, UPLOAD)
    )
    remote = FakeRemote(capabilities=capabilities, faults=faults)
    manager = TransferManager(remote, fast_config(max_attempts=12))
    recorder = Recorder(manager.accounting)
    items = list(walk([os.path.join(tmp_path / "src", ".")]))
    summary = await manager.push(items, package=PACKAGE, version=VERSION)
    assert recorder.with_status(Status.FAILED) == {}
    assert {path: s.data for (_, _, path), s in remote.files.items()} == payloads
    assert summary.bytes == sum(map(len, payloads.values()))
    assert remote.sessions == {}
