"""The engine's resumable uploads over HTTP: ``HarnessRemote`` against the real embedded registry.

The registry advertises upload sessions in system/info; a file larger than one chunk then goes up
in parts, and an upload stopped half-way carries on from what the server acknowledged.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import anyio
import pytest

from hc.api.client import Endpoint, connect
from hc.api.files import HarnessRemote
from hc.server.embedded import EmbeddedServer
from hc.transfer import TransferConfig, TransferManager
from hc.transfer.journal import Journal
from hc.transfer.walk import walk

MiB = 1 << 20
REGISTRY = "sessions"


class CountingRemote(HarnessRemote):
    """Counts the bytes sent in parts; optionally stops the job after ``stop_after`` parts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.part_bytes = 0
        self.parts = 0
        self.stop_after: int | None = None
        self.stopped = anyio.Event()
        self.begun = 0

    async def begin_upload(self, *args: Any, **kwargs: Any) -> Any:
        self.begun += 1
        return await super().begin_upload(*args, **kwargs)

    async def put_part(self, location: Any, session: Any, *, offset: int, source: Any) -> Any:
        state = await super().put_part(location, session, offset=offset, source=source)
        self.parts += 1
        self.part_bytes += source.size
        if self.stop_after is not None and self.parts >= self.stop_after:
            self.stopped.set()
            await anyio.sleep_forever()
        return state


def _endpoint(server: EmbeddedServer) -> Endpoint:
    return Endpoint(
        api_url=server.base_url, pkg_url=server.base_url, account=server.account, token=server.token
    )


def _config() -> TransferConfig:
    # Parts of 1 MiB (the server's minimum), sent one after another, so "half-way" is exact.
    return TransferConfig(chunk_size=1 * MiB, buffer_size=256 * 1024, split=1, concurrency=4)


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "big.bin"
    path.parent.mkdir()
    path.write_bytes(random.Random(7).randbytes(6 * MiB + 12345))
    return path


async def test_a_large_file_goes_up_in_parts_and_arrives_intact(
    embedded_server: EmbeddedServer, big_file: Path
) -> None:
    async with connect(_endpoint(embedded_server)) as client:
        await client.create_registry(REGISTRY, package_type="GENERIC")
        remote = await CountingRemote.open(client, REGISTRY)
        assert remote.capabilities.upload_sessions
        summary = await TransferManager(remote, _config()).push(
            walk([str(big_file)]), package="p", version="1"
        )
        assert summary.succeeded == 1
        assert remote.parts == 7
        assert remote.part_bytes == big_file.stat().st_size
        listed = [f async for f in remote.list_files("p", "1")]
    assert [(f.path, f.size, f.sha256) for f in listed] == [
        ("big.bin", big_file.stat().st_size, hashlib.sha256(big_file.read_bytes()).hexdigest())
    ]


async def test_an_upload_stopped_half_way_resumes_from_the_acknowledged_parts(
    embedded_server: EmbeddedServer, big_file: Path, tmp_path: Path, data_dir: Path
) -> None:
    journal_path = tmp_path / "jobs" / "push.sqlite"
    size = big_file.stat().st_size
    async with connect(_endpoint(embedded_server)) as client:
        await client.create_registry(REGISTRY, package_type="GENERIC")

        first = await CountingRemote.open(client, REGISTRY)
        first.stop_after = 3
        with Journal.open(journal_path) as journal:
            manager = TransferManager(first, _config(), journal=journal)
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: manager.push(walk([str(big_file)]), package="p", version="1"))
                await first.stopped.wait()
                tg.cancel_scope.cancel()
        assert first.part_bytes == 3 * MiB

        second = await CountingRemote.open(client, REGISTRY)
        with Journal.open(journal_path) as journal:
            summary = await TransferManager(second, _config(), journal=journal).push(
                walk([str(big_file)]), package="p", version="1"
            )
        assert summary.succeeded == 1
        assert second.begun == 0  # the session of the first run carried on
        assert second.part_bytes == size - 3 * MiB  # nothing acknowledged was sent again

        assert await read_all(second, "big.bin") == big_file.read_bytes()
    # The committed session left no part data behind in the store.
    assert not [p for p in (data_dir / "uploads").glob("*") if p.is_file()]


async def read_all(remote: HarnessRemote, path: str) -> bytes:
    """A whole (small) stored file, read back through the remote."""
    entry = await remote.find_file("p", "1", path)
    assert entry is not None
    async with remote.open_read(entry) as stream:
        return b"".join([chunk async for chunk in stream])
