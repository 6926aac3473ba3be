"""Uploads against the failures an HTTP client meets that the plain fake does not show: a body the
client abandons when the server answers first, a receiver that stops reading, a registry that is
down for a while, and a local file that changes while it is sent (whose error an HTTP client
reports as a broken request)."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest

from hc.errors import TransientError
from hc.protocol.digest import Checksums
from hc.transfer._files import FileSource, FileStamp
from hc.transfer.accounting import ItemRetried
from hc.transfer.config import TransferConfig
from hc.transfer.manager import TransferManager
from hc.transfer.remote import ByteSource, Capabilities, FileLocation, SessionState
from hc.transfer.results import Status
from hc.transfer.walk import walk

from .fakes import FakeRemote, Fault
from .support import PACKAGE, VERSION, Recorder, fast_config, open_files_under

KiB = 1024
SESSIONS = Capabilities(upload_sessions=True)
PARALLEL_SESSIONS = Capabilities(upload_sessions=True, parallel_parts=True)

needs_proc_fd = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts /proc/self/fd")


def one_file(tmp_path: Path, data: bytes, name: str = "big.bin") -> Path:
    root = tmp_path / "src"
    root.mkdir()
    (root / name).write_bytes(data)
    return root


async def push(manager: TransferManager, root: Path) -> None:
    await manager.push(walk([os.path.join(root, ".")]), package=PACKAGE, version=VERSION)


def retry_errors(recorder: Recorder) -> list[str]:
    return [event.error for event in recorder.events if isinstance(event, ItemRetried)]


class WireRemote(FakeRemote):
    """Uploads fail the way an HTTP client reports them: whatever the body raises (the local file
    changed, vanished) reaches the engine as a broken request, a ``TransientError`` (aiohttp's
    "Failed to send bytes into the underlying connection"). ``on_chunk(call, received)`` runs after
    every chunk a PUT takes, ``after_part(stored)`` after every part is stored (1 for the first)."""

    def __init__(
        self,
        *,
        on_chunk: Callable[[int, int], None] | None = None,
        after_part: Callable[[int], None] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.on_chunk = on_chunk
        self.after_part = after_part
        self.parts_stored = 0

    async def _consume(self, source: ByteSource, fault: Fault | None, what: str) -> bytes:
        received = bytearray()
        try:
            async for chunk in source.open():
                received += chunk
                if self.on_chunk is not None:
                    self.on_chunk(self.calls["put_file"], len(received))
        except Exception as exc:
            raise TransientError(f"{what}: Failed to send bytes into the underlying connection") from exc
        return bytes(received)

    async def put_part(
        self, location: FileLocation, session: SessionState, *, offset: int, source: ByteSource
    ) -> SessionState:
        try:
            state = await super().put_part(location, session, offset=offset, source=source)
        except TransientError:
            raise
        except Exception as exc:
            raise TransientError(f"PATCH {location.path}: Failed to send bytes") from exc
        self.parts_stored += 1
        if self.after_part is not None:
            self.after_part(self.parts_stored)
        return state


# -- a local file that changes while it is sent ----------------------------------------------------


@pytest.mark.parametrize("change", ["truncate", "grow", "rewrite"])
async def test_a_file_that_changes_while_it_is_sent_is_hashed_again_and_sent_whole(
    tmp_path: Path, change: str
) -> None:
    old = os.urandom(1024 * KiB + 5)
    new = {"truncate": old[: 300 * KiB], "grow": old + b"more", "rewrite": os.urandom(len(old))}[change]
    root = one_file(tmp_path, old)
    path = root / "big.bin"

    def change_file(call: int, received: int) -> None:
        if call == 1 and received == 128 * KiB:  # the first attempt, two buffers in
            if change == "truncate":
                os.truncate(path, len(new))
            else:
                path.write_bytes(new)

    remote = WireRemote(on_chunk=change_file)
    manager = TransferManager(remote, fast_config())
    recorder = Recorder(manager.accounting)

    await push(manager, root)

    assert recorder.results["big.bin"].status is Status.DONE
    assert remote.data(PACKAGE, VERSION, "big.bin") == new
    # One failed attempt, noticed as the file changing (not retried as a network error with the
    # old size), then one attempt with the file hashed again.
    assert remote.calls["put_file"] == 2
    [error] = retry_errors(recorder)
    assert "changed" in error or "shrank" in error or "sha256 mismatch" in error, error


async def test_a_file_that_keeps_changing_fails_and_nothing_is_stored(tmp_path: Path) -> None:
    root = one_file(tmp_path, os.urandom(512 * KiB))
    path = root / "big.bin"

    def append(call: int, received: int) -> None:
        if received == 64 * KiB:
            with path.open("ab") as f:
                f.write(b"x")

    remote = WireRemote(on_chunk=append)
    config = fast_config(max_attempts=3)
    manager = TransferManager(remote, config)
    recorder = Recorder(manager.accounting)

    await push(manager, root)

    result = recorder.results["big.bin"]
    assert result.status is Status.FAILED
    assert "changed while it was uploaded" in (result.error or ""), result.error
    assert (PACKAGE, VERSION, "big.bin") not in remote.files
    # Every attempt hashed the file again; none was repeated with stale sizes at the request level.
    assert remote.calls["put_file"] == config.max_attempts


@pytest.mark.parametrize("capabilities", [SESSIONS, PARALLEL_SESSIONS], ids=["in-order", "parallel"])
async def test_a_file_that_shrinks_between_parts_gets_a_new_session(
    tmp_path: Path, capabilities: Capabilities
) -> None:
    old = os.urandom(1024 * KiB)  # four parts of 256 KiB
    new = old[: 600 * KiB]
    root = one_file(tmp_path, old)

    def shrink(stored: int) -> None:
        if stored == 1:
            os.truncate(root / "big.bin", len(new))

    remote = WireRemote(capabilities=capabilities, after_part=shrink)
    manager = TransferManager(remote, fast_config(split=2))
    recorder = Recorder(manager.accounting)

    await push(manager, root)

    assert recorder.results["big.bin"].status is Status.DONE, recorder.results["big.bin"].error
    assert remote.data(PACKAGE, VERSION, "big.bin") == new
    assert remote.sessions == {}  # the first session was aborted, the second committed


async def test_a_file_that_vanishes_fails_its_item_at_once(tmp_path: Path) -> None:
    root = one_file(tmp_path, os.urandom(512 * KiB))
    root.joinpath("other.bin").write_bytes(b"stays")

    def vanish(call: int, received: int) -> None:
        if received == 64 * KiB:
            (root / "big.bin").unlink(missing_ok=True)

    remote = WireRemote(on_chunk=vanish)
    manager = TransferManager(remote, fast_config())
    recorder = Recorder(manager.accounting)

    await push(manager, root)

    # The open descriptor still reads the old bytes: either they are stored whole (the file was
    # hashed before it went) or the item fails naming the missing file; never a retry loop.
    result = recorder.results["big.bin"]
    if result.status is Status.DONE:
        assert len(remote.data(PACKAGE, VERSION, "big.bin")) == 512 * KiB
    else:
        assert "No such file" in (result.error or ""), result.error
    assert remote.data(PACKAGE, VERSION, "other.bin") == b"stays"
    assert remote.calls["put_file"] <= 3


# -- bodies the client abandons --------------------------------------------------------------------


class AbandoningRemote(FakeRemote):
    """Answers 503 after taking one chunk of the body, the first ``times`` attempts of each file,
    and keeps the half-read body iterators alive (as an HTTP client may, until they are collected)."""

    def __init__(self, times: int, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.times = times
        self.seen: dict[str, int] = {}
        self.abandoned: list[AsyncIterator[bytes]] = []

    async def put_file(
        self, location: FileLocation, source: ByteSource, *, checksums: Checksums, overwrite: bool
    ) -> None:
        attempt = self.seen[location.path] = self.seen.get(location.path, 0) + 1
        if attempt <= self.times:
            body = aiter(source.open())
            await anext(body)
            self.abandoned.append(body)
            raise TransientError(f"PUT {location.path}: HTTP 503", status=503)
        await super().put_file(location, source, checksums=checksums, overwrite=overwrite)


@needs_proc_fd
async def test_upload_attempts_the_server_answers_early_leave_no_file_open(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    for i in range(6):
        root.joinpath(f"f{i}.bin").write_bytes(os.urandom(300 * KiB))  # over the buffer: from disk
    remote = AbandoningRemote(times=2)
    manager = TransferManager(remote, fast_config())

    await push(manager, root)

    assert len(remote.files) == 6
    assert len(remote.abandoned) == 12  # still referenced: nothing was collected
    assert open_files_under(root) == 0


@needs_proc_fd
async def test_closing_a_file_source_closes_a_body_suspended_mid_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(256 * KiB))
    source = FileSource(path, length=256 * KiB, buffer_size=64 * KiB)
    body = aiter(source.open())
    await anext(body)
    assert open_files_under(tmp_path) == 1
    source.close()  # from any task, without awaiting
    assert open_files_under(tmp_path) == 0
    with pytest.raises(OSError, match="closed"):
        await anext(body)


@pytest.mark.parametrize("loop_limit", [0, 64 * KiB], ids=["worker-threads", "on-the-loop"])
async def test_a_file_source_refuses_a_file_changed_since_it_was_hashed(
    tmp_path: Path, loop_limit: int
) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 1000)
    st = path.stat()
    stale = FileStamp(st.st_size - 1, st.st_mtime_ns)
    source = FileSource(path, length=999, buffer_size=64 * KiB, expect=stale, loop_limit=loop_limit)
    with pytest.raises(Exception, match="changed since it was hashed"):
        async for _ in source.open():
            pass
    assert open_files_under(tmp_path) == 0
    exact = FileSource(
        path, length=1000, buffer_size=64 * KiB, expect=FileStamp.of(st), loop_limit=loop_limit
    )
    assert b"".join([chunk async for chunk in exact.open()]) == b"a" * 1000
    assert open_files_under(tmp_path) == 0


# -- a receiver that stops reading -----------------------------------------------------------------


class StallingRemote(FakeRemote):
    """The first upload request of each file (a PUT or a part) takes ``take`` chunks of the body,
    or all of it when ``take`` is None, and then never answers; ``pause`` seconds between chunks
    make a slow but moving receiver instead."""

    def __init__(self, *, take: int | None = 1, pause: float = 0.0, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.take = take
        self.pause = pause
        self.stalled: set[str] = set()

    async def _stall_once(self, path: str, source: ByteSource) -> None:
        if path in self.stalled:
            return
        self.stalled.add(path)
        taken = 0
        async for _ in source.open():
            taken += 1
            if self.take is not None and taken >= self.take:
                break
        await anyio.sleep_forever()

    async def _slowly(self, source: ByteSource) -> ByteSource:
        pause = self.pause

        class Slow:
            size = source.size

            async def open(self) -> AsyncIterator[bytes]:
                async for chunk in source.open():
                    await anyio.sleep(pause)
                    yield chunk

        return Slow()

    async def put_file(
        self, location: FileLocation, source: ByteSource, *, checksums: Checksums, overwrite: bool
    ) -> None:
        if self.pause:
            source = await self._slowly(source)
        else:
            await self._stall_once(location.path, source)
        await super().put_file(location, source, checksums=checksums, overwrite=overwrite)

    async def put_part(
        self, location: FileLocation, session: SessionState, *, offset: int, source: ByteSource
    ) -> SessionState:
        await self._stall_once(location.path, source)
        return await super().put_part(location, session, offset=offset, source=source)


@pytest.mark.parametrize(
    ("take", "capabilities"),
    [(1, Capabilities()), (None, Capabilities()), (1, SESSIONS), (1, PARALLEL_SESSIONS)],
    ids=["mid-body", "no-answer", "part", "parallel-part"],
)
async def test_an_upload_the_receiver_stops_reading_is_timed_out_and_retried(
    tmp_path: Path, take: int | None, capabilities: Capabilities
) -> None:
    data = os.urandom(600 * KiB)
    root = one_file(tmp_path, data)
    remote = StallingRemote(take=take, capabilities=capabilities)
    manager = TransferManager(remote, fast_config(stall_timeout=0.3))
    recorder = Recorder(manager.accounting)

    with anyio.fail_after(30):  # without the watchdog the push would never end
        await push(manager, root)

    assert recorder.results["big.bin"].status is Status.DONE
    assert remote.data(PACKAGE, VERSION, "big.bin") == data
    assert any("stalled" in error for error in retry_errors(recorder)), retry_errors(recorder)


async def test_a_slow_upload_that_keeps_moving_is_not_timed_out(tmp_path: Path) -> None:
    data = os.urandom(1024 * KiB)  # 16 buffers, each taken 0.05 s after the last: 0.8 s in all
    root = one_file(tmp_path, data)
    remote = StallingRemote(pause=0.05)
    manager = TransferManager(remote, fast_config(stall_timeout=0.5))
    recorder = Recorder(manager.accounting)

    await push(manager, root)

    assert recorder.results["big.bin"].status is Status.DONE
    assert retry_errors(recorder) == []
    assert remote.data(PACKAGE, VERSION, "big.bin") == data


# -- a registry that is down for a while -----------------------------------------------------------


class RestartingRemote(FakeRemote):
    """Refuses every upload request (connection refused: a ``TransientError`` without a status)
    until ``until`` (anyio time), as a registry that restarts."""

    def __init__(self, *, until: float, status: int | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.until = until
        self.status = status
        self.refused = 0

    def _refuse(self, what: str) -> None:
        if anyio.current_time() < self.until:
            self.refused += 1
            raise TransientError(f"{what}: cannot connect: connection refused", status=self.status)

    async def put_file(
        self, location: FileLocation, source: ByteSource, *, checksums: Checksums, overwrite: bool
    ) -> None:
        self._refuse("PUT")
        await super().put_file(location, source, checksums=checksums, overwrite=overwrite)

    async def put_part(
        self, location: FileLocation, session: SessionState, *, offset: int, source: ByteSource
    ) -> SessionState:
        self._refuse("PATCH")
        return await super().put_part(location, session, offset=offset, source=source)


def _outage_config() -> TransferConfig:
    return fast_config(max_attempts=2, backoff_base=0.01, backoff_cap=0.05, outage_budget=10.0)


@pytest.mark.parametrize(
    "capabilities", [Capabilities(), SESSIONS, PARALLEL_SESSIONS], ids=["put", "in-order", "parallel"]
)
async def test_a_push_rides_out_a_registry_that_is_down_for_a_while(
    tmp_path: Path, capabilities: Capabilities
) -> None:
    """Two attempts would last ~0.05 s; the outage lasts 0.4 s and the budget (10 s) outlasts it."""
    data = os.urandom(600 * KiB)
    root = one_file(tmp_path, data)
    remote = RestartingRemote(until=anyio.current_time() + 0.4, capabilities=capabilities)
    manager = TransferManager(remote, _outage_config())
    recorder = Recorder(manager.accounting)

    await push(manager, root)

    assert recorder.results["big.bin"].status is Status.DONE, recorder.results["big.bin"].error
    assert remote.data(PACKAGE, VERSION, "big.bin") == data
    assert remote.refused > 2


async def test_a_registry_that_fails_with_500_keeps_the_attempt_count(tmp_path: Path) -> None:
    root = one_file(tmp_path, os.urandom(600 * KiB))
    remote = RestartingRemote(until=anyio.current_time() + 3600, status=500)
    manager = TransferManager(remote, _outage_config())
    recorder = Recorder(manager.accounting)

    await push(manager, root)

    assert recorder.results["big.bin"].status is Status.FAILED
    assert remote.refused == 2
