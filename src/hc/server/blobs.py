"""Content-addressed blob store: bytes live at ``blobs/sha256/ab/<hex>``, named by their digest.

Why this shape:

- Naming a file by its sha256 makes it immutable and shareable: a copy between registries, or the
  same bytes uploaded twice, is one more database row and zero bytes. Writes are idempotent, so
  several processes may store the same blob at once without coordination.
- Nothing is visible until it is complete and verified (habit 8). A body streams into
  ``tmp/<uuid>.part`` while all four digests are computed in the same pass; the temp file is
  fsynced, checked against the declared size and ``X-Checksum-*`` values, then *hard-linked* to its
  content address and the shard directory fsynced. A crash at any point leaves at most a temp file
  (swept later) or an unreferenced blob (harmless): never a partial file under a real name.
- The temp file is kept (and its link retried) until the metadata row is committed, because a
  concurrent delete in another process may remove the blob between the link and the commit; the
  catalog calls ``ensure_blob`` inside its write transaction to close that window.
- Every temp file is ``flock``ed by its writer. The kernel drops the lock when the writer dies
  (even on SIGKILL), so the start-up sweep removes exactly the temp files of dead writers and never
  those of another live process sharing the store.
- Hashing four digests costs about 4 s of CPU per GiB here (md5 and sha512 are the slow ones), more
  than the network. Large bodies are therefore hashed in three lanes on worker threads (hashlib
  releases the GIL) and written by a fourth, each lane getting ≥4 MiB batches in order while the
  event loop receives the next batch. Small bodies (≤ 1 MiB) are grouped (``SmallBlobs``): the
  uploads that arrive while one batch is stored are hashed, verified and written together in one
  worker call (no disk I/O at all for bytes already stored) and made durable by one ``syncfs``
  instead of two fsyncs each, so a 4 KiB upload costs a share of one thread hop and one flush.
  A small PUT runs that batch on the database thread and records the rows in the same call
  (``hc.server.smallputs``). Small files are written as unnamed ``O_TMPFILE`` files linked to their
  address: no temp name to create, lock and remove.
- PUT bodies of ``INLINE_BODY`` (64 KiB) or less are not files at all: they are kept in the
  database (``inline_blobs``, keyed by sha256) and written in the transaction of their row. A file
  per 4 KiB upload cost mostly ext4 allocating an inode (tripled right after many files were
  deleted, as it skips recently freed inodes) plus a ``syncfs`` per batch; a row costs neither.
- Upload sessions (``hc.server.uploads``) reuse the hash lanes (``LaneHashers``) and ``link``: a
  session's preallocated file, once verified, is hard-linked to its address like a temp file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import re
import stat
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Final

from hc.errors import HcError, IntegrityError, StorageError
from hc.protocol.digest import ALGORITHMS, Checksums
from hc.syscalls import start_writeback, syncfs

from .group_commit import settle_group
from .paths import StoreLayout

__all__ = [
    "BATCH",
    "INLINE_BODY",
    "SMALL_BODY",
    "BlobStore",
    "BlobWriter",
    "LaneHashers",
    "SmallBlobs",
    "hash_and_verify",
]

#: Bodies up to this size are handled in one worker call (and read whole into memory).
SMALL_BODY: Final = 1 << 20
#: Small PUT bodies up to this size are kept in the database (``inline_blobs``), not in a file
#: (hc.server.smallputs); a download of that size is one read either way.
INLINE_BODY: Final = 64 * 1024
#: Large bodies are handed to the lanes in batches of at least this many bytes. 4 MiB measured ~10%
#: faster than 1 MiB for 1 GiB (fewer lock-step rounds and writeback calls) at ≤ 8 MiB per upload.
BATCH: Final = 4 << 20
#: Hash lanes balanced by measured cost per GiB (md5 1.4 s | sha1+sha256 1.2 s | sha512 1.3 s); the
#: file write (and its writeback) is a fourth lane, so a slow disk does not hold a hash lane.
_LANES: Final = (("md5",), ("sha1", "sha256"), ("sha512",))
#: hashlib's named constructors: cheaper than hashlib.new(name), which matters at 4 KiB a body
_NEW_HASH: Final[dict[str, Callable[[], Any]]] = {
    "md5": hashlib.md5,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
_PART_SUFFIX: Final = ".part"
_SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")
#: Linux's O_TMPFILE (0 elsewhere: named temp files are used instead)
_O_TMPFILE: Final = getattr(os, "O_TMPFILE", 0)
_TRASH_PREFIX: Final = "trash."


_start_writeback = start_writeback
_syncfs = syncfs  # module attributes: tests replace them to act as where libc lacks them


class SmallBlobs:
    """Group writer for small bodies: uploads that arrive while a batch is being stored share the
    next one, which hashes, verifies and writes each body and then makes them all durable with one
    ``syncfs`` — one worker-thread hop and one flush per batch instead of a hop and two fsyncs per
    upload. (A 4 KiB upload's own fsyncs of its file and shard folder cost more than all the rest
    of its handling.) Where syncfs is missing, each body is fsynced on its own, in the same batch.

    ``store`` runs in the event loop that first calls it; the batch runs on a worker thread."""

    def __init__(self, store: BlobStore, executor: Executor, *, max_batch: int = 256) -> None:
        self._store = store
        self._executor = executor
        self._max_batch = max_batch
        self._fd: int | None = None
        if _syncfs is not None:
            with contextlib.suppress(OSError):
                self._fd = os.open(store.layout.blobs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._queue: list[tuple[bytes, int | None, Mapping[str, str], asyncio.Future[Checksums]]] = []
        self._flusher: asyncio.Task[None] | None = None

    @property
    def group_flush(self) -> bool:
        """True when a batch is made durable by one syncfs (else each body is fsynced)."""
        return self._fd is not None

    async def store(
        self, data: bytes, *, expected_size: int | None = None, expected: Mapping[str, str] | None = None
    ) -> Checksums:
        """Hash, verify and durably store ``data`` under its sha256 (IntegrityError, with nothing
        stored, when it does not match ``expected_size``/``expected``)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Checksums] = loop.create_future()
        self._queue.append((data, expected_size, expected or {}, waiter))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush_loop())
        return await waiter

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            await settle_group(
                [waiter for *_, waiter in batch],
                [(data, size, expected) for data, size, expected, _ in batch],
                lambda items: loop.run_in_executor(self._executor, self.store_batch, items),
            )

    def store_batch(
        self, items: Sequence[tuple[bytes, int | None, Mapping[str, str]]]
    ) -> list[Checksums | Exception]:
        """Blocking: hash, verify and write each body, then make them all durable. Each result is
        the body's checksums or what refused it (nothing of a refused body is stored)."""
        results: list[Checksums | Exception] = []
        written = False
        for data, expected_size, expected in items:
            try:
                hashers = LaneHashers()
                hashers.update_inline(data)
                checksums = _verify(hashers.result(), expected_size, expected)
                if not self._store.exists(checksums.sha256):
                    self._store.write_small(data, checksums.sha256, sync=self._fd is None, check=False)
                    written = True
                results.append(checksums)
            except (HcError, OSError) as exc:
                results.append(exc)
        if written and self._fd is not None:
            assert _syncfs is not None
            try:
                _syncfs(self._fd)
            except OSError as exc:
                failed = StorageError(f"flushing the blob store failed: {exc}")
                return [failed if isinstance(r, Checksums) else r for r in results]
        return results

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """The blob half of the store. Thread-safe: methods only touch the file system."""

    def __init__(self, layout: StoreLayout, executor: Executor) -> None:
        self.layout = layout
        self.executor = executor
        self._root = layout.blobs
        self._root_str = str(layout.blobs)
        self._tmp = layout.tmp
        #: tmp/ opened once for O_TMPFILE links; -1 once O_TMPFILE proved unavailable
        self._tmp_dir_fd: int | None = None

    def prepare(self) -> None:
        """Create the folders, with all 256 shard folders, so a write never has to mkdir."""
        self.layout.create()
        for i in range(256):
            (self._root / f"{i:02x}").mkdir(mode=0o700, exist_ok=True)
        if self._tmp_dir_fd is None and _O_TMPFILE:  # opened here, before any worker thread races for it
            self._tmp_dir_fd = os.open(self._tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def path_for(self, sha256: str) -> Path:
        if _SHA256_RE.fullmatch(sha256) is None:
            raise StorageError(f"not a sha256 digest: {sha256!r}")
        return self._root / sha256[:2] / sha256

    def _address(self, sha256: str) -> str:
        """``path_for`` as a string, without pathlib: a small upload asks for it several times, and
        building Path objects cost more than the stat itself."""
        if _SHA256_RE.fullmatch(sha256) is None:
            raise StorageError(f"not a sha256 digest: {sha256!r}")
        return f"{self._root_str}/{sha256[:2]}/{sha256}"

    def exists(self, sha256: str) -> bool:
        try:
            return stat.S_ISREG(os.stat(self._address(sha256)).st_mode)
        except FileNotFoundError:
            return False

    # ------------------------------------------------------------------------------- writing

    def open_writer(self) -> BlobWriter:
        return BlobWriter(self)

    def _new_temp(self) -> tuple[int, Path]:
        path = self._tmp / f"{uuid.uuid4().hex}{_PART_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd, path

    def link(self, temp: Path, sha256: str) -> None:
        """Give ``temp`` its content address (no-op when the blob exists), then make it durable."""
        target = self.path_for(sha256)
        try:
            os.link(temp, target)
        except FileExistsError:
            return
        except FileNotFoundError:
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.link(temp, target)
        _fsync_dir(target.parent)

    def _anonymous_temp(self) -> int | None:
        """An unnamed file in tmp/ (``O_TMPFILE``), or None where the kernel or file system has
        none. It needs no name, no lock and no unlink, and vanishes by itself if we crash: about a
        third less work than a named temp file for a small body."""
        if self._tmp_dir_fd == -1:
            return None
        try:
            if self._tmp_dir_fd is None:
                self._tmp_dir_fd = os.open(self._tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            return os.open(self._tmp, _O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                raise
            self._tmp_dir_fd = -1
            return None

    def _link_anonymous(self, fd: int, target: str) -> None:
        # linkat(AT_SYMLINK_FOLLOW) of /proc/self/fd/N names the open file; os.link uses linkat
        # with that flag only when a dir fd is given (ignored here: the source path is absolute).
        assert self._tmp_dir_fd is not None
        os.link(f"/proc/self/fd/{fd}", target, src_dir_fd=self._tmp_dir_fd)

    def close(self) -> None:
        if self._tmp_dir_fd is not None and self._tmp_dir_fd >= 0:
            os.close(self._tmp_dir_fd)
        self._tmp_dir_fd = None

    def write_small(self, data: bytes, sha256: str, *, sync: bool, check: bool = True) -> None:
        """Store a whole, already verified body under its digest (no-op when present; ``check=False``
        when the caller has just seen it absent). With ``sync=False`` the caller must make the
        body durable (SmallBlobs: one syncfs per batch) before committing a row."""
        if check and self.exists(sha256):
            return
        anonymous = self._anonymous_temp() if _O_TMPFILE else None
        if anonymous is not None:
            target = self._address(sha256)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(anonymous, view) :]
                if sync:
                    os.fsync(anonymous)
                try:
                    self._link_anonymous(anonymous, target)
                except FileExistsError:
                    return
                if sync:
                    _fsync_dir(Path(target).parent)
                return
            finally:
                os.close(anonymous)
        fd, temp = self._new_temp()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if sync:
                os.fsync(fd)
            fallback = self.path_for(sha256)
            try:
                os.link(temp, fallback)
            except FileExistsError:
                return
            if sync:
                _fsync_dir(fallback.parent)
        finally:
            os.unlink(temp)
            os.close(fd)

    # ------------------------------------------------------------------ garbage (BlobHooks)

    def trash(self, digests: Sequence[str]) -> list[Path]:
        trashed = []
        for sha256 in digests:
            trash = self._tmp / f"{_TRASH_PREFIX}{sha256}.{uuid.uuid4().hex}"
            try:
                os.rename(self.path_for(sha256), trash)
            except FileNotFoundError:
                continue
            trashed.append(trash)
        return trashed

    def restore(self, trashed: Sequence[Path]) -> None:
        for trash in trashed:
            sha256 = trash.name[len(_TRASH_PREFIX) :].split(".", 1)[0]
            with contextlib.suppress(OSError):
                os.rename(trash, self.path_for(sha256))

    def purge(self, trashed: Sequence[Path]) -> None:
        for trash in trashed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(trash)

    def sweep(self, is_referenced: Callable[[str], bool]) -> int:
        """Remove temp files whose writer is gone; settle trash left by a crash mid-delete (restore
        the blob if a row still references it, else drop it). Returns how many entries were removed.
        Call it while holding the database write lock, so no delete is in flight."""
        removed = 0
        for entry in os.scandir(self._tmp):
            name = entry.name
            path = Path(entry.path)
            if name.startswith(_TRASH_PREFIX):
                sha256 = name[len(_TRASH_PREFIX) :].split(".", 1)[0]
                if is_referenced(sha256) and not self.exists(sha256):
                    self.restore([path])
                else:
                    self.purge([path])
                    removed += 1
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # a live writer (maybe another process) still owns it
            try:
                os.unlink(path)
                removed += 1
            except FileNotFoundError:
                pass
            finally:
                os.close(fd)
        return removed

    # ------------------------------------------------------------------------------ checking

    def iter_blobs(self) -> Iterator[tuple[str, Path]]:
        for shard in sorted(os.scandir(self._root), key=lambda e: e.name):
            if not shard.is_dir():
                continue
            for entry in sorted(os.scandir(shard.path), key=lambda e: e.name):
                yield entry.name, Path(entry.path)

    @staticmethod
    def hash_file(path: Path) -> str:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(BATCH):
                h.update(chunk)
        return h.hexdigest()


class LaneHashers:
    """md5, sha1, sha256 and sha512 of one stream, in lanes that worker threads update concurrently
    (hashlib releases the GIL). Feed batches strictly in order, one batch at a time."""

    __slots__ = ("_lanes", "size")

    def __init__(self, lanes: list[list[Any]] | None = None, size: int = 0) -> None:
        self._lanes = lanes if lanes is not None else [[_NEW_HASH[n]() for n in lane] for lane in _LANES]
        self.size = size

    def submit(self, executor: Executor, batch: Sequence[bytes | memoryview]) -> list[asyncio.Future[Any]]:
        """Start hashing ``batch`` (one task per lane); the caller awaits the futures before the
        next batch. ``size`` counts the batch at once."""
        loop = asyncio.get_running_loop()
        self.size += sum(len(b) for b in batch)
        return [loop.run_in_executor(executor, _hash_lane, lane, batch) for lane in self._lanes]

    def update_inline(self, data: bytes | memoryview) -> None:
        for lane in self._lanes:
            for h in lane:
                h.update(data)
        self.size += len(data)

    def copy(self) -> LaneHashers:
        return LaneHashers([[h.copy() for h in lane] for lane in self._lanes], self.size)

    def result(self) -> Checksums:
        digests = {h.name: h.hexdigest() for lane in self._lanes for h in lane}
        return Checksums(
            size=self.size,
            sha256=digests["sha256"],
            md5=digests["md5"],
            sha1=digests["sha1"],
            sha512=digests["sha512"],
        )


def hash_and_verify(data: bytes, expected_size: int | None, expected: Mapping[str, str]) -> Checksums:
    """All four digests of a whole body, checked against what the request declared."""
    hashers = LaneHashers()
    hashers.update_inline(data)
    return _verify(hashers.result(), expected_size, expected)


def _parse_expected(expected: Mapping[str, str]) -> dict[str, str]:
    return {alg: value.strip().lower() for alg, value in expected.items() if alg in ALGORITHMS}


def _verify(checksums: Checksums, expected_size: int | None, expected: Mapping[str, str]) -> Checksums:
    """``checksums`` when they match the declared size and digests; IntegrityError otherwise."""
    if expected_size is not None and checksums.size != expected_size:
        raise IntegrityError(
            f"body was {checksums.size} bytes but Content-Length said {expected_size}; nothing was stored"
        )
    bad = checksums.mismatches(_parse_expected(expected))
    if bad:
        details = ", ".join(
            f"{alg} expected {expected[alg].strip().lower()} got {checksums.get(alg)}" for alg in bad
        )
        raise IntegrityError(f"checksum mismatch ({details}); nothing was stored")
    return checksums


class BlobWriter:
    """One body on its way into the store. Use from one task: ``write``* → ``finish`` → ``link`` →
    (commit the row) → ``close``; ``close`` alone discards everything."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._fd: int | None = None
        self._temp: Path | None = None
        self._lanes = [[_NEW_HASH[name]() for name in lane] for lane in _LANES]
        self._pending: list[asyncio.Future[Any]] = []
        self._batch: list[bytes] = []
        self._batch_size = 0
        self.size = 0
        self.checksums: Checksums | None = None
        self._small: bytes | None = None

    @property
    def temp_path(self) -> Path | None:
        return self._temp

    def _open(self) -> int:
        if self._fd is None:
            self._fd, self._temp = self._store._new_temp()
        return self._fd

    # -- small bodies: everything in one worker call, no temp file kept

    def _hash_small(self, data: bytes) -> None:
        for lane in self._lanes:
            for h in lane:
                h.update(data)
        self.size += len(data)

    # -- large bodies: pipelined batches, three hash lanes

    async def write(self, chunk: bytes) -> None:
        """Queue a chunk; hands a batch to the lanes once ≥ BATCH bytes are queued. Returns when the
        previous batch is done, so at most two batches are in memory."""
        if not chunk:
            return
        self._batch.append(chunk)
        self._batch_size += len(chunk)
        if self._batch_size >= BATCH:
            await self._flush()

    async def _flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            await asyncio.gather(*pending)
        if not self._batch:
            return
        batch, self._batch, self._batch_size = self._batch, [], 0
        offset = self.size
        self.size += sum(len(b) for b in batch)
        fd = self._open()  # os.open + flock: microseconds, not worth a thread hop
        loop = asyncio.get_running_loop()
        executor = self._store.executor
        self._pending = [
            loop.run_in_executor(executor, _hash_lane, self._lanes[0], batch),
            loop.run_in_executor(executor, _hash_lane, self._lanes[1], batch),
            loop.run_in_executor(executor, _hash_lane, self._lanes[2], batch),
            loop.run_in_executor(executor, _write_batch, batch, fd, offset),
        ]

    async def drain(self) -> None:
        """Wait until everything written so far is hashed and in the temp file."""
        await self._flush()
        if self._pending:
            pending, self._pending = self._pending, []
            await asyncio.gather(*pending)

    def _result(self) -> Checksums:
        digests = {h.name: h.hexdigest() for lane in self._lanes for h in lane}
        return Checksums(
            size=self.size,
            sha256=digests["sha256"],
            md5=digests["md5"],
            sha1=digests["sha1"],
            sha512=digests["sha512"],
        )

    # -- verification and commit

    def _verify(self, expected_size: int | None, expected: Mapping[str, str]) -> Checksums:
        self.checksums = _verify(self.checksums or self._result(), expected_size, expected)
        return self.checksums

    def _finish(self, expected_size: int | None, expected: Mapping[str, str]) -> Checksums:
        checksums = self._verify(expected_size, expected)
        fd = self._open()
        if not self._store.exists(checksums.sha256):
            os.fsync(fd)  # bytes already stored under that digest need no second fsync
        assert self._temp is not None
        self._store.link(self._temp, checksums.sha256)
        return checksums

    async def finish(
        self, *, expected_size: int | None = None, expected: Mapping[str, str] | None = None
    ) -> Checksums:
        """Complete the body: verify size and digests, make it durable, give it its address.

        Raises IntegrityError (nothing stored) on a mismatch. The temp file stays until ``close``
        so that ``ensure_blob`` can re-link it if a concurrent delete removes the blob.
        """
        await self.drain()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._store.executor, self._finish, expected_size, expected or {})

    def finish_small(
        self,
        data: bytes,
        *,
        expected_size: int | None = None,
        expected: Mapping[str, str] | None = None,
        sync: bool = True,
    ) -> Checksums:
        """Blocking (call it on a worker thread): hash and verify a small body, then store it under
        its digest unless it is already there. Nothing touches the disk when verification fails.
        ``sync=False`` skips the fsyncs: the caller then waits on a DurabilityBarrier."""
        self._hash_small(data)
        checksums = self._verify(expected_size, expected or {})
        self._small = data
        self._store.write_small(data, checksums.sha256, sync=sync)
        return checksums

    def ensure_blob(self) -> None:
        """Called inside the metadata transaction: make sure the blob still exists (a concurrent
        delete may have removed it since it was written)."""
        assert self.checksums is not None
        if self._store.exists(self.checksums.sha256):
            return
        if self._small is not None:
            self._store.write_small(self._small, self.checksums.sha256, sync=True)
        else:
            assert self._temp is not None
            self._store.link(self._temp, self.checksums.sha256)

    async def aclose(self) -> None:
        """Discard the temp file (after the row is committed, or on failure)."""
        if self._pending:
            pending, self._pending = self._pending, []
            await asyncio.gather(*pending, return_exceptions=True)
        self.close()

    def close(self) -> None:
        fd, temp = self._fd, self._temp
        self._fd = self._temp = None
        self._batch = []
        if temp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        if fd is not None:
            os.close(fd)


def _hash_lane(hashes: list[Any], batch: Sequence[bytes | memoryview]) -> None:
    for chunk in batch:
        for h in hashes:
            h.update(chunk)


def _write_batch(batch: list[bytes], fd: int, offset: int) -> None:
    length = sum(len(b) for b in batch)
    views = [memoryview(b) for b in batch]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]
    if _start_writeback is not None:
        _start_writeback(fd, offset, length)
