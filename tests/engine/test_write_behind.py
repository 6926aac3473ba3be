"""``hc.transfer._writebehind``: batches written in order on worker threads behind the receiver."""

from __future__ import annotations

import threading

import anyio
import pytest

from hc.transfer._writebehind import write_behind


class Disk:
    """Records each write (on its worker thread) and each ``on_written`` (on the loop); ``gate``
    holds every write until it is set."""

    def __init__(self, *, fail_at: int | None = None) -> None:
        self.writes: list[tuple[bytes, int]] = []
        self.counted: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail_at = fail_at

    def write(self, chunks: list[bytes], offset: int) -> None:
        assert threading.current_thread() is not threading.main_thread()
        self.gate.wait(10)
        if self.fail_at is not None and offset == self.fail_at:
            raise OSError(28, "No space left on device")
        self.writes.append((b"".join(chunks), offset))

    async def on_written(self, size: int) -> None:
        self.counted.append(size)


async def test_batches_are_written_in_order_and_counted_after_their_write() -> None:
    disk = Disk()
    async with write_behind(disk.write, disk.on_written) as writes:
        for i in range(10):
            await writes.send(([b"a" * i, b"b"], 100 * i))
    assert disk.writes == [(b"a" * i + b"b", 100 * i) for i in range(10)]
    assert disk.counted == [i + 1 for i in range(10)]


async def test_a_receiver_failure_still_writes_and_counts_what_was_received() -> None:
    disk = Disk()
    disk.gate.clear()  # every write waits: three batches are queued when the receiver fails
    with pytest.raises(TimeoutError, match="no data"):
        async with write_behind(disk.write, disk.on_written, depth=2) as writes:
            for offset in (0, 10, 20):
                await writes.send(([b"x" * 10], offset))
            disk.gate.set()
            raise TimeoutError("no data")
    assert [offset for _, offset in disk.writes] == [0, 10, 20]
    assert disk.counted == [10, 10, 10]


async def test_a_failed_write_fails_the_stream_as_itself_and_stops_the_receiver() -> None:
    disk = Disk(fail_at=10)
    sent: list[int] = []
    with pytest.raises(OSError, match="No space left") as caught:
        async with write_behind(disk.write, disk.on_written, depth=1) as writes:
            for offset in range(0, 1000, 10):
                await writes.send(([b"x" * 10], offset))
                sent.append(offset)
    assert not isinstance(caught.value, BaseExceptionGroup)
    assert disk.counted == [10]  # the batch at 0 only: nothing after the failure counts
    assert len(sent) < 100  # the receiver was stopped, not left to fill a dead queue


async def test_at_most_depth_batches_wait_behind_the_one_being_written() -> None:
    disk = Disk()
    disk.gate.clear()
    sent: list[int] = []

    async def receive(writes: anyio.abc.ObjectSendStream[tuple[list[bytes], int]]) -> None:
        for offset in range(0, 100, 10):
            await writes.send(([b"x" * 10], offset))
            sent.append(offset)

    async with write_behind(disk.write, disk.on_written, depth=2) as writes, anyio.create_task_group() as tg:
        tg.start_soon(receive, writes)
        await anyio.sleep(0.2)
        # one batch taken by the writer (held at the gate) and two waiting: the fourth blocks
        assert sent == [0, 10, 20]
        disk.gate.set()
    assert [offset for _, offset in disk.writes] == list(range(0, 100, 10))
