"""Pushing a large file without hashing it first (``digestAtCommit``), against the real embedded
registry: the session is opened with no sha256, the file is hashed while its parts go up, and the
commit carries the digest. Everything else must hold as with a hash-first upload: the digests in
the results and the hash cache, skips of identical files, resume after an interruption, and a
file that changes during the upload.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from hc.api.client import Endpoint, RegistryClient, connect
from hc.api.files import HarnessRemote
from hc.server.embedded import EmbeddedServer
from hc.transfer import TransferConfig, TransferManager
from hc.transfer._files import BytesSource
from hc.transfer.accounting import Accounting, Event, ItemFinished
from hc.transfer.hashcache import HashCache
from hc.transfer.journal import Journal
from hc.transfer.results import ItemResult, Status
from hc.transfer.walk import walk

MiB = 1 << 20
REGISTRY = "deferred"


class Recorder:
    """The final result of each item."""

    def __init__(self, accounting: Accounting) -> None:
        self.results: dict[str, ItemResult] = {}
        accounting.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ItemFinished):
            self.results[event.result.path] = event.result


class RecordingRemote(HarnessRemote):
    """Records what each begin declared and the bytes sent in parts; hooks for the tests."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.declared: list[str | None] = []  # the sha256 of each begin (None: not declared)
        self.parts = 0
        self.part_bytes = 0
        #: called (and awaited) after this many parts: (parts so far) -> None
        self.after_part: Callable[[int], Any] | None = None
        #: the first part sent carries zeros instead of the file's bytes
        self.corrupt_first_part = False

    async def begin_upload(self, location: Any, *, size: int, checksums: Any) -> Any:
        self.declared.append(None if checksums is None else checksums.sha256)
        return await super().begin_upload(location, size=size, checksums=checksums)

    async def put_part(self, location: Any, session: Any, *, offset: int, source: Any) -> Any:
        if self.corrupt_first_part and self.parts == 0:
            source = BytesSource(b"\0" * source.size, buffer_size=64 * 1024)
        state = await super().put_part(location, session, offset=offset, source=source)
        self.parts += 1
        self.part_bytes += source.size
        if self.after_part is not None:
            await self.after_part(self.parts)
        return state


def _endpoint(server: EmbeddedServer) -> Endpoint:
    return Endpoint(
        api_url=server.base_url, pkg_url=server.base_url, account=server.account, token=server.token
    )


def _config(*, split: int = 1, **overrides: Any) -> TransferConfig:
    # Parts of 1 MiB (the server's minimum): a 6 MiB file is a session of 7 parts.
    return TransferConfig(chunk_size=1 * MiB, buffer_size=256 * 1024, split=split, concurrency=4, **overrides)


def _write(path: Path, data: bytes, *, age_s: float = 60.0) -> None:
    """Write ``data`` with an mtime in the past: the hash cache does not trust a file modified
    within the last two seconds, and these tests want it to remember."""
    path.write_bytes(data)
    past = time.time_ns() - int(age_s * 1e9)
    os.utime(path, ns=(past, past))


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "big.bin"
    path.parent.mkdir()
    _write(path, random.Random(11).randbytes(6 * MiB + 4321))
    return path


async def _client_remote(client: RegistryClient, **features: Any) -> RecordingRemote:
    opened = await HarnessRemote.open(client, REGISTRY)
    return RecordingRemote(client, REGISTRY, features=dataclasses.replace(opened.capabilities, **features))


async def _stored(remote: HarnessRemote, path: str = "big.bin") -> tuple[bytes, Any]:
    entry = await remote.find_file("p", "1", path)
    assert entry is not None
    async with remote.open_read(entry) as stream:
        return b"".join([chunk async for chunk in stream]), entry


def _cache_key(path: Path) -> str:
    return str(path.absolute())


def _cached_sha256(cache: HashCache, path: Path) -> str | None:
    st = path.stat()
    hit = cache.get(_cache_key(path), size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino)
    return None if hit is None else hit.sha256


@pytest.mark.parametrize("split", [1, 4], ids=["in-order", "parallel"])
async def test_a_deferred_push_round_trips_bytes_and_digests(
    embedded_server: EmbeddedServer, big_file: Path, split: int
) -> None:
    data = big_file.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    cache = HashCache.in_memory()
    async with connect(_endpoint(embedded_server)) as client:
        await client.create_registry(REGISTRY, package_type="GENERIC")
        remote = await _client_remote(client)
        assert remote.capabilities.digest_at_commit
        manager = TransferManager(remote, _config(split=split), hash_cache=cache)
        recorder = Recorder(manager.accounting)
        summary = await manager.push(walk([str(big_file)]), package="p", version="1")
        assert summary.succeeded == 1
        assert remote.declared == [None]  # nothing declared: the commit's digest decided
        assert remote.part_bytes == len(data)
        result = recorder.results["big.bin"]
        assert (result.status, result.action, result.sha256) == (Status.DONE, "upload-session", sha256)
        stored, entry = await _stored(remote)
        assert stored == data and entry.sha256 == sha256 and entry.size == len(data)
        assert _cached_sha256(cache, big_file) == sha256  # the hash made on the way is remembered

        # A re-run finds the digests cached and the file identical: nothing is sent.
        again = await _client_remote(client)
        manager = TransferManager(again, _config(split=split), hash_cache=cache)
        recorder = Recorder(manager.accounting)
        await manager.push(walk([str(big_file)]), package="p", version="1")
        assert recorder.results["big.bin"].status is Status.SKIPPED
        assert again.declared == [] and again.parts == 0


async def test_a_file_of_the_size_already_there_is_hashed_first_and_skipped_when_identical(
    embedded_server: EmbeddedServer, big_file: Path
) -> None:
    async with connect(_endpoint(embedded_server)) as client:
        await client.create_registry(REGISTRY, package_type="GENERIC")
        first = await _client_remote(client)
        assert (
            await TransferManager(first, _config()).push(walk([str(big_file)]), package="p", version="1")
        ).succeeded == 1

        # No cache, and a destination entry of the same size: only the hash can tell it is a skip.
        os.utime(big_file)
        second = await _client_remote(client)
        manager = TransferManager(second, _config(), hash_cache=HashCache.in_memory())
        recorder = Recorder(manager.accounting)
        await manager.push(walk([str(big_file)]), package="p", version="1")
        result = recorder.results["big.bin"]
        assert (result.status, result.sha256) == (
            Status.SKIPPED,
            hashlib.sha256(big_file.read_bytes()).hexdigest(),
        )
        assert second.declared == [] and second.parts == 0


async def test_a_dry_run_hashes_and_sends_nothing(embedded_server: EmbeddedServer, big_file: Path) -> None:
    async with connect(_endpoint(embedded_server)) as client:
        await client.create_registry(REGISTRY, package_type="GENERIC")
        remote = await _client_remote(client)
        manager = TransferManager(remote, _config(dry_run=True))
        recorder = Recorder(manager.accounting)
        await manager.push(walk([str(big_file)]), package="p", version="1")
        result = recorder.results["big.bin"]
        assert (result.status, result.action) == (Status.PLANNED, "upload-session")
        assert result.sha256 == hashlib.sha256(big_file.read_bytes()).hexdigest()
        assert remote.declared == [] and remote.parts == 0
        assert await remote.find_file("p", "1", "big.bin") is None


async def test_toward_a_server_without_the_capability_the_client_declares_the_sha256(
    embedded_server: EmbeddedServer, big_file: Path
) -> None:
    sha256 = hashlib.sha256(big_file.read_bytes()).hexdigest()
    async with connect(_endpoint(embedded_server)) as client:
        await client.create_registry(REGISTRY, package_type="GENERIC")
        remote = await _client_remote(client, digest_at_commit=False)
        summary = await TransferManager(remote, _config()).push(
            walk([str(big_file)]), package="p", version="1"
        )
        assert summary.succeeded == 1
        assert remote.declared == [sha256]
        assert (await _stored(remote))[0] == big_file.read_bytes()


async def _push_until_stopped(
    remote: RecordingRemote,
    manager: TransferManager,
    path: Path,
    parts: int,
    ready: Callable[[], bool] | None = None,
) -> None:
    """Run a push and cancel it (as Ctrl-C would) once ``parts`` parts were acknowledged (and
    ``ready()`` holds)."""
    stopped = anyio.Event()

    async def stop(count: int) -> None:
        if count >= parts:
            with anyio.fail_after(30):
                while ready is not None and not ready():  # noqa: ASYNC110 (a cache has no event)
                    await anyio.sleep(0.01)
            stopped.set()
            await anyio.sleep_forever()

    remote.after_part = stop
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: manager.push(walk([str(path)]), package="p", version="1"))
        await stopped.wait()
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("cached", [False, True], ids=["hash-not-cached", "hash-cached-meanwhile"])
async def test_an_interrupted_deferred_push_resumes_its_session(
    embedded_server: EmbeddedServer, big_file: Path, tmp_path: Path, data_dir: Path, cached: bool
) -> None:
    journal_path = tmp_path / "jobs" / "push.sqlite"
    data = big_file.read_bytes()
    cache = HashCache.in_memory() if cached else None
    async with connect(_endpoint(embedded_server)) as client:
        await client.create_registry(REGISTRY, package_type="GENERIC")
        first = await _client_remote(client)
        with Journal.open(journal_path) as journal:
            manager = TransferManager(first, _config(), journal=journal, hash_cache=cache)
            await _push_until_stopped(
                first,
                manager,
                big_file,
                parts=3,
                ready=None if cache is None else lambda: _cached_sha256(cache, big_file) is not None,
            )
            entry = journal.get("big.bin")
            assert entry is not None and entry.session_id and entry.fingerprint.startswith("stamp:")
        assert first.declared == [None]
        if cache is not None:  # the hash finished while the parts went up
            assert _cached_sha256(cache, big_file) == hashlib.sha256(data).hexdigest()

        # The re-run defers again (no cache) or knows the hash by now (cache): either way it
        # carries on with the first run's session and sends only what the server lacks.
        second = await _client_remote(client)
        with Journal.open(journal_path) as journal:
            manager = TransferManager(second, _config(), journal=journal, hash_cache=cache)
            recorder = Recorder(manager.accounting)
            summary = await manager.push(walk([str(big_file)]), package="p", version="1")
        assert summary.succeeded == 1
        assert second.declared == []
        assert second.part_bytes == len(data) - 3 * MiB
        assert recorder.results["big.bin"].sha256 == hashlib.sha256(data).hexdigest()
        assert (await _stored(second))[0] == data
    assert not [p for p in (data_dir / "uploads").glob("*") if p.is_file()]


async def test_a_file_changed_between_runs_starts_a_new_session(
    embedded_server: EmbeddedServer, big_file: Path, tmp_path: Path
) -> None:
    journal_path = tmp_path / "jobs" / "push.sqlite"
    async with connect(_endpoint(embedded_server)) as client:
        await client.create_registry(REGISTRY, package_type="GENERIC")
        first = await _client_remote(client)
        with Journal.open(journal_path) as journal:
            await _push_until_stopped(
                first, TransferManager(first, _config(), journal=journal), big_file, parts=2
            )

        new = random.Random(12).randbytes(big_file.stat().st_size)  # same size, other bytes
        _write(big_file, new, age_s=30)
        second = await _client_remote(client)
        with Journal.open(journal_path) as journal:
            summary = await TransferManager(second, _config(), journal=journal).push(
                walk([str(big_file)]), package="p", version="1"
            )
        assert summary.succeeded == 1
        assert second.declared == [None]  # a new session, deferred again
        assert second.part_bytes == len(new)
        assert (await _stored(second))[0] == new


async def test_a_file_changing_during_a_deferred_upload_is_caught_and_sent_again(
    embedded_server: EmbeddedServer, big_file: Path
) -> None:
    new = random.Random(13).randbytes(big_file.stat().st_size)
    async with connect(_endpoint(embedded_server)) as client:
        await client.create_registry(REGISTRY, package_type="GENERIC")
        remote = await _client_remote(client)

        async def rewrite(count: int) -> None:
            if count == 2:
                _write(big_file, new, age_s=10)  # another mtime: the next part sees it

        remote.after_part = rewrite
        manager = TransferManager(remote, _config())
        recorder = Recorder(manager.accounting)
        summary = await manager.push(walk([str(big_file)]), package="p", version="1")
        assert summary.succeeded == 1
        result = recorder.results["big.bin"]
        assert result.attempts >= 2
        # The retry hashed the new file first, then declared it.
        assert remote.declared == [None, hashlib.sha256(new).hexdigest()]
        assert result.sha256 == hashlib.sha256(new).hexdigest()
        stored, entry = await _stored(remote)
        assert stored == new and entry.sha256 == result.sha256


async def test_bytes_the_server_assembles_wrong_fail_the_commit_digest_and_are_sent_again(
    embedded_server: EmbeddedServer, big_file: Path, data_dir: Path
) -> None:
    data = big_file.read_bytes()
    async with connect(_endpoint(embedded_server)) as client:
        await client.create_registry(REGISTRY, package_type="GENERIC")
        remote = await _client_remote(client)
        remote.corrupt_first_part = True  # the file is fine; what reaches the server is not
        manager = TransferManager(remote, _config())
        recorder = Recorder(manager.accounting)
        summary = await manager.push(walk([str(big_file)]), package="p", version="1")
        assert summary.succeeded == 1
        assert recorder.results["big.bin"].attempts >= 2
        assert remote.declared == [None, hashlib.sha256(data).hexdigest()]
        assert (await _stored(remote))[0] == data
    assert not [p for p in (data_dir / "uploads").glob("*") if p.is_file()]  # the bad session went
