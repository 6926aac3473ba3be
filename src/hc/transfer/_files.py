"""Local file I/O for the engine, nearly all of it off the event loop.

Every blocking call (open, pread, pwrite, fsync, hashing) runs in a worker thread, one buffer at a
time, so a cancelled job stops within one buffer's work and the loop keeps moving other streams.
hashlib releases the GIL on large updates, so two hashing threads really use two cores. The one
exception is a file the caller knows to be tiny (``read_and_hash``'s and ``FileSource``'s
``loop_limit``): reading and hashing it takes microseconds, less than the thread hop would.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio

from hc.errors import IntegrityError, TransientError
from hc.protocol.digest import ALGORITHMS, Checksums, MultiHasher
from hc.transfer.remote import ByteSource, FileRegion

__all__ = [
    "BytesSource",
    "CountingSource",
    "FileSource",
    "FileStamp",
    "fsync_directory",
    "hash_descriptor",
    "hash_path",
    "read_and_hash",
    "write_at",
]

T = TypeVar("T")
#: what a body hands out: bytes, or regions of a file (``len`` is the byte count of either)
_Piece = TypeVar("_Piece", bytes, FileRegion)

#: how far (a share of the stall timeout) a deadline may lag the last progress before it is moved
_DEADLINE_SLACK: Final = 1 / 8

#: Bytes hashed per worker-thread call, at most (read a buffer at a time). Each call waits for
#: the event loop to schedule it, which a busy loop (a download receiving) makes slow: at one
#: call per 4 MiB, the digest of a 1 GiB pull came 0.22-0.24 s after its last byte, at one call
#: per 16 MiB 27-39 ms after. The cap bounds how long a cancel waits for a call in progress
#: (~60 ms with all four digests on this machine).
HASH_STEP: Final = 16 * 1024 * 1024

_O_BINARY = getattr(os, "O_BINARY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_EUID: Final = os.geteuid() if hasattr(os, "geteuid") else None


def _same_file(before: os.stat_result, after: os.stat_result) -> bool:
    return (before.st_size, before.st_mtime_ns, before.st_ino) == (
        after.st_size,
        after.st_mtime_ns,
        after.st_ino,
    )


def _read_small(path: Path, limit: int) -> tuple[os.stat_result, bytes | None]:
    fd = os.open(path, os.O_RDONLY | _O_BINARY | _O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if st.st_size > limit:
            return st, None
        chunks = []
        remaining = st.st_size + 1  # one byte more: notices a file that grew since the stat
        while remaining > 0 and (chunk := os.read(fd, remaining)):
            chunks.append(chunk)
            remaining -= len(chunk)
        return st, b"".join(chunks)
    finally:
        os.close(fd)


def _read_and_hash_small(
    path: Path, limit: int, algorithms: Sequence[str]
) -> tuple[Checksums | None, os.stat_result, bytes | None]:
    st, data = _read_small(path, limit)
    if data is None:
        return None, st, None
    if len(data) != st.st_size:
        raise IntegrityError(f"{path} changed while it was read")
    hasher = MultiHasher(algorithms)
    hasher.update(data)
    return hasher.result(), st, data


async def read_and_hash(
    path: Path,
    *,
    buffer_size: int,
    limiter: anyio.CapacityLimiter,
    algorithms: Sequence[str] = ALGORITHMS,
    inline_limit: int = 0,
    parallel: int = 1,
    size_hint: int | None = None,
    loop_limit: int = 0,
) -> tuple[Checksums, os.stat_result, bytes | None]:
    """Hash a file in one read pass. A file of at most ``inline_limit`` bytes is read and hashed in
    a single thread hop and its bytes returned too, so a small upload reads the disk once. A file
    the caller expects (``size_hint``, from its walk) to be at most ``loop_limit`` bytes is read
    and hashed on the event loop: a few syscalls and microseconds of hashing cost less than the
    thread hop, and per-file overhead is what limits many small files.

    Raises IntegrityError when the file changes while it is read (the digests would describe
    neither version), and OSError when it cannot be read.
    """
    if inline_limit > 0:
        if size_hint is not None and size_hint <= loop_limit:
            # Bounded by loop_limit even if the file grew since the walk: the read stops there.
            checksums, st, data = _read_and_hash_small(path, min(loop_limit, inline_limit), algorithms)
        else:
            checksums, st, data = await anyio.to_thread.run_sync(
                _read_and_hash_small, path, inline_limit, algorithms, limiter=limiter
            )
        if checksums is not None:
            return checksums, st, data
    checksums, st = await hash_path(
        path, buffer_size=buffer_size, limiter=limiter, algorithms=algorithms, parallel=parallel
    )
    return checksums, st, None


# Relative cost of each digest per byte (measured on x86-64 with SHA-NI; the order is what matters).
_COST: Final = {"md5": 1.4, "sha1": 0.55, "sha256": 0.9, "sha512": 1.6}


def _balanced_groups(algorithms: Sequence[str], count: int) -> list[list[str]]:
    """Split the algorithms into ``count`` groups of similar total cost (largest first, greedy)."""
    groups: list[list[str]] = [[] for _ in range(max(1, min(count, len(algorithms))))]
    loads = [0.0] * len(groups)
    for algorithm in sorted(algorithms, key=lambda a: _COST.get(a, 1.0), reverse=True):
        lightest = loads.index(min(loads))
        groups[lightest].append(algorithm)
        loads[lightest] += _COST.get(algorithm, 1.0)
    return [group for group in groups if group]


async def hash_path(
    path: Path,
    *,
    buffer_size: int,
    limiter: anyio.CapacityLimiter,
    algorithms: Sequence[str] = ALGORITHMS,
    parallel: int = 1,
) -> tuple[Checksums, os.stat_result]:
    """Stream a file through the digests, ``HASH_STEP`` bytes per thread hop.

    With ``parallel`` > 1 the algorithms are split into groups hashed by concurrent threads, each
    reading the file on its own: the second read comes from the page cache, and four digests of a
    large file finish in about half the time on two cores. Checks the file did not change.
    """
    wanted = list(dict.fromkeys([*algorithms, "sha256"]))
    before = await anyio.to_thread.run_sync(os.stat, path)
    groups = _balanced_groups(wanted, parallel) if before.st_size >= 8 * buffer_size else [wanted]
    digests: dict[str, str] = {}
    sizes: list[int] = []

    async def hash_group(group: list[str]) -> None:
        fd = await anyio.to_thread.run_sync(os.open, path, os.O_RDONLY | _O_BINARY | _O_CLOEXEC)
        try:
            group_digests, total = await _hash_open_file(fd, group, buffer_size, limiter)
        finally:
            await anyio.to_thread.run_sync(os.close, fd)
        digests.update(group_digests)
        sizes.append(total)

    if len(groups) == 1:
        await hash_group(groups[0])
    else:
        async with anyio.create_task_group() as tg:
            for group in groups:
                tg.start_soon(hash_group, group)
    after = await anyio.to_thread.run_sync(os.stat, path)
    if not _same_file(before, after) or any(size != before.st_size for size in sizes):
        raise IntegrityError(f"{path} changed while it was read")
    return _checksums(before.st_size, digests), before


async def hash_descriptor(
    fd: int,
    name: str,
    *,
    buffer_size: int,
    limiter: anyio.CapacityLimiter,
    algorithms: Sequence[str] = ALGORITHMS,
) -> tuple[Checksums, os.stat_result]:
    """``hash_path`` for a file the caller opened (at offset 0), checked against its own
    ``fstat`` before and after (``name`` is for the message)."""
    wanted = list(dict.fromkeys([*algorithms, "sha256"]))
    before = await anyio.to_thread.run_sync(os.fstat, fd)
    digests, total = await _hash_open_file(fd, wanted, buffer_size, limiter)
    after = await anyio.to_thread.run_sync(os.fstat, fd)
    if FileStamp.of(before) != FileStamp.of(after) or total != before.st_size:
        raise IntegrityError(f"{name} changed while it was read")
    return _checksums(before.st_size, digests), before


async def _hash_open_file(
    fd: int, algorithms: Sequence[str], buffer_size: int, limiter: anyio.CapacityLimiter
) -> tuple[dict[str, str], int]:
    """The digests of what ``fd`` reads from its position to its end, and how many bytes that was."""
    hashes = [hashlib.new(name) for name in algorithms]
    buffer = bytearray(buffer_size)
    view = memoryview(buffer)
    total = 0

    def step() -> int:
        """Up to ``HASH_STEP`` bytes, a buffer at a time; 0 at the end of the file."""
        done = 0
        while done < HASH_STEP and (n := os.readv(fd, [buffer])):
            for h in hashes:
                h.update(view[:n])
            done += n
        return done

    while n := await anyio.to_thread.run_sync(step, limiter=limiter):
        total += n
    return {name: h.hexdigest() for name, h in zip(algorithms, hashes, strict=True)}, total


def _checksums(size: int, digests: dict[str, str]) -> Checksums:
    return Checksums(
        size=size,
        sha256=digests["sha256"],
        md5=digests.get("md5"),
        sha1=digests.get("sha1"),
        sha512=digests.get("sha512"),
    )


@dataclass(frozen=True, slots=True)
class FileStamp:
    """What a file looked like when it was hashed: its size and modification time. (Not its inode:
    on some overlay file systems ``fstat`` of an open file reports another inode than ``stat``.)"""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStamp:
        return cls(st.st_size, st.st_mtime_ns)


class _Descriptor:
    """One open file shared by a body generator and the worker threads that read it for it.

    Whoever comes last closes it, exactly once: ``close()`` (the generator ending, in whatever task
    finalizes it, or the uploader after the attempt) or the last read still running in a thread by
    then. So a body cancelled in the middle of a read, or abandoned by an HTTP client that got its
    answer before reading the body (and finalized later, in another task), never leaves the file
    open; and a late read never touches a descriptor number the process may have reused since.
    ``close()`` never awaits and never waits for I/O: it runs in the ``finally`` of cancelled
    generators, where an ``await`` would be cancelled again (the leak this class fixes).
    """

    __slots__ = ("_closing", "_fd", "_lock", "_users")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._users = 0
        self._closing = False

    def open(self, path: Path) -> os.stat_result:
        """Open ``path`` and stat it (in a worker thread)."""
        fd = os.open(path, os.O_RDONLY | _O_BINARY | _O_CLOEXEC)
        with self._lock:
            adopted = not self._closing
            if adopted:
                self._fd = fd
        if not adopted:  # the body was closed while this thread was opening the file
            os.close(fd)
            raise OSError(errno.EBADF, "the upload ended before the file was opened", str(path))
        return self.fstat()

    def pread(self, length: int, offset: int) -> bytes:
        fd = self._acquire()
        try:
            return os.pread(fd, length, offset)
        finally:
            self._release()

    @contextmanager
    def lent(self) -> Iterator[int]:
        """The descriptor, kept open until the ``with`` ends even if ``close()`` is called meanwhile
        (its number could otherwise be reused by another open while the kernel still sends)."""
        fd = self._acquire()
        try:
            yield fd
        finally:
            self._release()

    def fstat(self) -> os.stat_result:
        fd = self._acquire()
        try:
            return os.fstat(fd)
        finally:
            self._release()

    def close(self) -> None:
        with self._lock:
            self._closing = True
            fd = self._take_if_idle()
        if fd is not None:
            os.close(fd)

    def _acquire(self) -> int:
        with self._lock:
            if self._closing or self._fd is None:
                raise OSError(errno.EBADF, "the upload's file was already closed")
            self._users += 1
            return self._fd

    def _release(self) -> None:
        with self._lock:
            self._users -= 1
            fd = self._take_if_idle()
        if fd is not None:
            os.close(fd)

    def _take_if_idle(self) -> int | None:
        """The descriptor to close now, if it is closing and nobody uses it (lock held)."""
        if self._closing and self._users == 0 and self._fd is not None:
            fd, self._fd = self._fd, None
            return fd
        return None


async def _run_here(function: Callable[..., Any], *args: Any) -> Any:
    """``anyio.to_thread.run_sync``'s shape, run on the event loop (for I/O too small to hop)."""
    return function(*args)


class FileSource:
    """``length`` bytes of a file from ``offset``, re-readable: each ``open()`` starts over.

    With ``expect`` (the file as it was hashed), the file is checked when an attempt opens it and
    again before its last chunk is handed over: a file rewritten, truncated or grown since it was
    hashed fails the attempt with ``IntegrityError`` before the receiver has a whole body, and the
    engine hashes it again instead of sending stale digests with other bytes. A file that ends
    early is an ``IntegrityError`` too.

    ``close()`` closes whatever descriptors attempts left open (a body abandoned by the HTTP client
    is only finalized when it is collected); it never blocks.

    A source of at most ``loop_limit`` bytes is opened, read and checked on the event loop: for a
    small file whose digests came from the hash cache, three thread hops cost more than the I/O.
    """

    __slots__ = ("_buffer_size", "_expect", "_length", "_live", "_loop_limit", "_offset", "_path")

    def __init__(
        self,
        path: Path,
        *,
        offset: int = 0,
        length: int,
        buffer_size: int,
        expect: FileStamp | None = None,
        loop_limit: int = 0,
    ) -> None:
        self._path = path
        self._offset = offset
        self._length = length
        self._buffer_size = buffer_size
        self._expect = expect
        self._loop_limit = loop_limit
        self._live: set[_Descriptor] = set()

    @property
    def size(self) -> int:
        return self._length

    def close(self) -> None:
        for descriptor in list(self._live):
            descriptor.close()
        self._live.clear()

    def _check(self, st: os.stat_result, when: str) -> None:
        if self._expect is not None and FileStamp.of(st) != self._expect:
            raise IntegrityError(
                f"{self._path} changed {when} ({st.st_size} bytes now, {self._expect.size} when hashed)"
            )

    #: ``open_regions()`` is offered (``hc.transfer.remote.ByteSource``)
    sends_regions: Final = True

    def _runner(self) -> Callable[..., Awaitable[Any]]:
        return _run_here if self._length <= self._loop_limit else anyio.to_thread.run_sync

    @asynccontextmanager
    async def _attempt(self) -> AsyncIterator[tuple[_Descriptor, Callable[..., Awaitable[Any]]]]:
        """One attempt's descriptor, opened and checked, and how to run its I/O (a worker thread,
        or the loop for a file under ``loop_limit``)."""
        run = self._runner()
        descriptor = _Descriptor()
        self._live.add(descriptor)
        try:
            self._check(await run(descriptor.open, self._path), "since it was hashed")
            yield descriptor, run
        finally:
            # Synchronously: an await here would fail in a cancelled task (and leak the
            # descriptor); a thread still opening the file sees it closed and closes what it opened.
            descriptor.close()
            self._live.discard(descriptor)

    async def open(self) -> AsyncIterator[bytes]:
        async with self._attempt() as (descriptor, run):
            position, end = self._offset, self._offset + self._length
            while position < end:
                chunk = await run(descriptor.pread, min(self._buffer_size, end - position), position)
                if not chunk:
                    raise IntegrityError(f"{self._path} shrank while it was uploaded")
                position += len(chunk)
                if position >= end and self._expect is not None:
                    # Before the last chunk leaves: the receiver never gets a whole body of a file
                    # that changed while it was read.
                    self._check(await run(descriptor.fstat), "while it was uploaded")
                yield chunk

    async def open_regions(self) -> AsyncGenerator[FileRegion, None]:
        """The bytes of ``open()`` as regions of one open descriptor, ``buffer_size`` each, checked
        as ``open()`` checks them (the stamp before the last region goes)."""
        async with self._attempt() as (descriptor, run):
            position, end = self._offset, self._offset + self._length
            while position < end:
                count = min(self._buffer_size, end - position)
                if position + count >= end and self._expect is not None:
                    self._check(await run(descriptor.fstat), "while it was uploaded")
                with descriptor.lent() as fd:
                    yield FileRegion(fd, position, count)
                position += count


class BytesSource:
    """Bytes already in memory (a small file read while hashing), served in ``buffer_size`` slices."""

    __slots__ = ("_buffer_size", "_data")

    def __init__(self, data: bytes, *, buffer_size: int) -> None:
        self._data = data
        self._buffer_size = buffer_size

    @property
    def size(self) -> int:
        return len(self._data)

    async def open(self) -> AsyncIterator[bytes]:
        if len(self._data) <= self._buffer_size:
            yield self._data  # one chunk (a small file): no slice to copy
            return
        view = memoryview(self._data)
        for start in range(0, len(view), self._buffer_size):
            yield bytes(view[start : start + self._buffer_size])


class CountingSource:
    """Reports every chunk handed to the Remote, and remembers how much the current attempt sent so
    a retry can rewind exactly that much.

    ``send(request)`` runs one request that sends this source and makes three promises about it:

    - with ``stall_timeout``, the attempt fails (``TransientError``, retried) when that many
      seconds pass without progress: from the start of the request to the first chunk taken,
      between chunks (the receiver stopped reading: nothing else times out a request body), and
      from the last chunk to the answer;
    - a failure raised by the body itself (the file changed or vanished) is raised as itself,
      not as the broken request an HTTP client turns it into, so the engine sees an
      ``IntegrityError`` and hashes the file again instead of resending stale sizes;
    - whatever the attempt left open is closed when it ends (``close()``).

    Each ``open()`` starts a new attempt; a body from an earlier attempt that is still being read
    stops at its next chunk, so its bytes are never counted against the current one.
    """

    __slots__ = (
        "_generation",
        "_inner",
        "_on_bytes",
        "_scope",
        "_stall",
        "attempt_bytes",
        "failure",
    )

    def __init__(
        self, inner: ByteSource, on_bytes: Callable[[int], None], *, stall_timeout: float | None = None
    ) -> None:
        self._inner = inner
        self._on_bytes = on_bytes
        self._stall = stall_timeout
        self._scope: anyio.CancelScope | None = None
        self._generation = 0
        self.attempt_bytes = 0
        #: what the current attempt's body raised, if anything
        self.failure: Exception | None = None

    @property
    def size(self) -> int:
        return self._inner.size

    def take_attempt_bytes(self) -> int:
        sent, self.attempt_bytes = self.attempt_bytes, 0
        return sent

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()

    def _progress(self) -> None:
        if self._scope is not None and self._stall is not None:
            deadline = anyio.current_time() + self._stall
            # Moving the deadline re-arms a timer on the event loop, and a small body would move it
            # twice within microseconds: it moves once it lags by an eighth of the timeout (as the
            # download watchdog's), so a stall is still caught within 7/8..1 of the timeout.
            if deadline - self._scope.deadline >= self._stall * _DEADLINE_SLACK:
                self._scope.deadline = deadline

    async def send(self, request: Callable[[], Awaitable[T]]) -> T:
        """Run ``request`` (one attempt that sends this source) under the promises above."""
        try:
            if self._stall is None:
                return await self._unwrapped(request)
            with anyio.CancelScope(deadline=anyio.current_time() + self._stall) as scope:
                self._scope = scope
                try:
                    return await self._unwrapped(request)
                finally:
                    self._scope = None
            raise TransientError(f"the upload stalled: nothing moved for {self._stall:g} s")
        finally:
            self.close()

    async def _unwrapped(self, request: Callable[[], Awaitable[T]]) -> T:
        try:
            return await request()
        except Exception as exc:
            failure = self.failure
            if failure is not None and failure is not exc:
                raise failure from exc
            raise

    @property
    def sends_regions(self) -> bool:
        return bool(getattr(self._inner, "sends_regions", False))

    def open(self) -> AsyncIterator[bytes]:
        return self._counted(self._inner.open())

    def open_regions(self) -> AsyncGenerator[FileRegion, None]:
        """The inner source's regions (only when ``sends_regions``), counted as ``open()``'s chunks."""
        inner: Any = self._inner
        regions: AsyncIterator[FileRegion] = inner.open_regions()
        return self._counted(regions)

    async def _counted(self, chunks: AsyncIterator[_Piece]) -> AsyncGenerator[_Piece, None]:
        """One attempt over ``chunks`` (the inner source's, just opened): counted, re-arming the
        stall deadline, its failure remembered, stopping when a later attempt starts."""
        self._generation += 1
        generation = self._generation
        self.attempt_bytes = 0
        self.failure = None
        try:
            async for chunk in chunks:
                if generation != self._generation:
                    return  # a later attempt has started: this body was abandoned
                self.attempt_bytes += len(chunk)
                self._on_bytes(len(chunk))
                self._progress()
                yield chunk
            self._progress()  # the whole body was taken: the answer gets a full stall_timeout
        except Exception as exc:
            if generation == self._generation:
                self.failure = exc
            raise
        finally:
            # Close the inner generator now (its file descriptor), not whenever it is collected.
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()


#: Buffers one ``pwritev`` takes (POSIX guarantees at least 16; Linux takes 1024).
_IOV_MAX: Final = min(os.sysconf("SC_IOV_MAX"), 1024) if hasattr(os, "sysconf") else 16


def write_at(
    fd: int,
    data: bytes | bytearray | memoryview | Sequence[bytes],
    offset: int,
    hasher: MultiHasher | None = None,
) -> None:
    """Write all of ``data`` (one buffer, or several written back to back with ``pwritev``, so
    received chunks need no concatenating copy) at ``offset``, looping over short writes, and hash
    it on the way."""
    if isinstance(data, bytes | bytearray | memoryview):
        views = [memoryview(data)]
    else:
        views = [memoryview(chunk) for chunk in data if chunk]
    if hasher is not None:
        for view in views:
            hasher.update(view)
    pwritev = getattr(os, "pwritev", None)
    while views:
        if pwritev is None or len(views) == 1:
            written = os.pwrite(fd, views[0], offset)
        else:
            written = pwritev(fd, views[:_IOV_MAX], offset)
        offset += written
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]


def fsync_directory(directory: Path) -> None:
    """Make a rename durable: fsync the directory entry (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY | _O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
