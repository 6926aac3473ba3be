"""Pull, item by item: verified bytes only, under ``.part`` names renamed once durable; small files
fetched whole and written in batches, large ones as ranges recorded in the journal as they land.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import stat
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Final

import anyio

from hc.errors import Conflict, HcError, IntegrityError, TransientError, UnsafePathError
from hc.protocol.digest import Checksums, MultiHasher
from hc.protocol.ranges import ByteRange
from hc.syscalls import start_writeback
from hc.transfer._destfiles import is_own_file, located, open_own_file, open_tree_directory
from hc.transfer._engine import (
    INLINE_HASH_MAX,
    EngineCore,
    ItemBytes,
    Job,
    as_async_iter,
    describe_error,
    is_item_error,
    leaf_error,
    source_fingerprint,
    take_token,
    verify_checksums,
    wanted_algorithms,
)
from hc.transfer._files import HASH_STEP, hash_descriptor, write_at
from hc.transfer._writebehind import write_behind
from hc.transfer.batchwrite import BatchWriter, OnWritten
from hc.transfer.coordinator import TransferCoordinator
from hc.transfer.journal import JournalEntry
from hc.transfer.march import Verdict, compare
from hc.transfer.pacer import classify
from hc.transfer.plan import plan_download, remaining_download
from hc.transfer.remote import FileEntry
from hc.transfer.results import Status
from hc.transfer.sanitize import safe_join, sanitize_relpath

_log = logging.getLogger(__name__)


#: Bytes of a ranged download between two journal records: what a killed pull fetches again per
#: range at most (plus its socket buffers). A record is one cheap WAL commit, no disk sync.
_RECORD_EVERY: Final = 4 * 1024 * 1024

#: How often the hash follower of a split download looks for newly written bytes (seconds).
_FOLLOW_POLL: Final = 0.02


def _write_range_batch(fd: int, chunks: list[bytes], offset: int, hasher: MultiHasher | None) -> None:
    """Write one batch of a ranged download in place and start its writeback (not waiting for it):
    the disk works while the network does, so the fsync before the rename waits for the tail only."""
    write_at(fd, chunks, offset, hasher)
    if start_writeback is not None:
        start_writeback(fd, offset, sum(len(chunk) for chunk in chunks))


@dataclass(frozen=True, slots=True)
class _Destination:
    final: Path
    final_stat: os.stat_result | None
    part: Path
    part_stat: os.stat_result | None
    #: the destination (resolved) and the folders from it to ``final``: files are created,
    #: renamed and removed relative to a descriptor of that directory opened by walking down
    #: from ``base`` (``open_tree_directory``), never by a path that a swapped link could divert
    base: Path
    folders: tuple[str, ...]

    def open_folder(self, *, create: bool = False) -> int:
        return open_tree_directory(self.base, self.folders, create=create, name=str(self.final))

    def open_final(self) -> int | None:
        """The file at the final name, opened for reading in the directory it was found in (never
        through a link at its name, never blocking on a FIFO there); None when what is there now
        is not a regular file. For the skip check: reading by path could follow a directory
        swapped for a link since the name was looked at, out of the destination."""
        folder = self.open_folder()
        try:
            fd = os.open(self.final.name, _READ_FLAGS, dir_fd=folder)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO, errno.ENOENT):
                return None
            raise located(exc, self.final.parent) from exc
        finally:
            os.close(folder)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return fd

    def remove_part(self) -> None:
        """Delete the ``.part`` (if it is still there) from the directory it was written in; when
        that directory is gone, or now a link out of the destination, there is nothing of ours."""
        try:
            folder = self.open_folder()
        except (FileNotFoundError, UnsafePathError):
            return
        try:
            os.unlink(self.part.name, dir_fd=folder)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise located(exc, self.part.parent) from exc
        finally:
            os.close(folder)

    def promote(self) -> os.stat_result:
        """Rename the verified ``.part`` to the final name, in the directory it was written in,
        and make the rename durable."""
        folder = self.open_folder()
        try:
            os.replace(self.part.name, self.final.name, src_dir_fd=folder, dst_dir_fd=folder)
            with contextlib.suppress(OSError):  # as fsync_directory: not every file system can
                os.fsync(folder)
            return os.stat(self.final.name, dir_fd=folder, follow_symlinks=False)
        except OSError as exc:
            raise located(exc, self.final.parent) from exc
        finally:
            os.close(folder)


_READ_FLAGS: Final = (
    os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
)

#: The longest file name (in bytes) that common file systems accept.
_NAME_MAX: Final = 255
_PART_SUFFIX: Final = ".part"


def _part_name(final_name: str) -> str:
    """``<name>.part``; for a name too long to take the suffix (251–255 bytes), a short hidden name
    derived from it instead. Either way it is deterministic, so a re-run finds it again to resume,
    it sits in the final name's directory, so the rename stays atomic, and it ends in ``.part``."""
    encoded = os.fsencode(final_name)
    if len(encoded) + len(_PART_SUFFIX) <= _NAME_MAX:
        return final_name + _PART_SUFFIX
    return f".hc-{hashlib.sha256(encoded).hexdigest()[:32]}{_PART_SUFFIX}"


def _kind(st: os.stat_result) -> str:
    mode = st.st_mode
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"


def _stat_or_none(path: Path, *, follow: bool = True) -> os.stat_result | None:
    try:
        return os.stat(path, follow_symlinks=follow)
    except FileNotFoundError:
        return None


class DestinationTree:
    """Where a pull's files go: each listing path's final and temporary names, and what is there.

    ``safe_join``'s containment check (does the path, following symlinks already on disk, stay
    inside the destination?) resolves every component of the path; it is done once per directory,
    and again for any file whose final name is itself a symlink. The directories it approved are
    the engine's own to create, so they stay approved for the job. That approval only gives early
    errors and the stats: every write, rename and removal goes through a descriptor of its
    directory opened by walking down from the root (``_Destination.open_folder``), so a directory
    that someone swaps for a link after its approval cannot divert them."""

    __slots__ = ("_approved", "_base", "_empty", "root")

    def __init__(self, root: Path) -> None:
        self.root = root
        self._base: Path | None = None
        self._approved: set[str] = set()
        #: approved directories that were empty (or absent) when first looked at: a pull into a
        #: new folder stats none of its files (one stat each was ~10 % of a small file's cost).
        #: What someone else puts there meanwhile is met as it would be after a stat: the rename
        #: replaces a name, never writes into what it names, and ``.part`` files are opened as hc's.
        self._empty: set[str] = set()

    def inspect(self, relpath: str, *, part: bool = True) -> _Destination:
        """``part=False`` skips the stat of the ``.part`` name: a small file is fetched whole and
        its ``.part`` truncated, so what is there cannot matter."""
        directory = relpath.rpartition("/")[0]
        final_stat: os.stat_result | None = None
        if directory in self._approved and self._base is not None:
            final = self._base.joinpath(*relpath.split("/"))
            if directory in self._empty:
                return self._destination(final, None, directory)
            final_stat = _stat_or_none(final, follow=False)
            approved = final_stat is None or not stat.S_ISLNK(final_stat.st_mode)
        else:
            approved = False
        if not approved:
            final = safe_join(self.root, relpath)  # raises UnsafePathError
            if self._base is None:
                self._base = self.root.resolve()
            if directory not in self._approved and _is_empty_directory(final.parent):
                self._empty.add(directory)
            self._approved.add(directory)
            final_stat = _stat_or_none(final)
        destination = self._destination(final, final_stat, directory)
        part_stat = _stat_or_none(destination.part, follow=False) if part else None
        if part_stat is None or not is_own_file(part_stat):
            return destination  # no partial download of hc's there (a link, a FIFO): nothing to resume
        return replace(destination, part_stat=part_stat)

    def _destination(self, final: Path, final_stat: os.stat_result | None, directory: str) -> _Destination:
        assert self._base is not None
        folders = tuple(directory.split("/")) if directory else ()
        part_path = final.with_name(_part_name(final.name))
        return _Destination(final, final_stat, part_path, None, self._base, folders)


def _is_empty_directory(path: Path) -> bool:
    """Nothing in ``path`` (or no ``path`` yet); False for anything else, a file in the way included."""
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is None
    except FileNotFoundError:
        return True
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class PullItem:
    entry: FileEntry
    #: where the caller's ``target`` maps it, as given, and sanitized (``None``: unsafe)
    name: str
    relpath: str | None
    #: an earlier entry of the same pull already claimed this destination path
    duplicate: bool = False
    #: why it is not downloaded: its path is another entry's temporary (``.part``) name, or the
    #: other way round
    clash: str | None = None


async def first_per_destination(
    items: AsyncIterable[FileEntry] | Iterable[FileEntry], name_of: Callable[[FileEntry], str]
) -> AsyncIterator[PullItem]:
    """One download per destination path, decided in listing order before any worker sees the
    items: two downloads into one ``.part`` would corrupt (or delete) each other. The first entry
    wins; the others become items that fail. Likewise for a path that is an earlier entry's
    temporary name (``x.part`` after ``x``) or whose temporary name is an earlier entry's path
    (``x`` after ``x.part``): the download of one would truncate, overwrite or rename away the
    other's file. Memory: two 16-byte digests per path."""
    seen: set[bytes] = set()
    temporary: set[bytes] = set()  # the .part name of each entry downloaded
    async for entry in as_async_iter(items):
        name = name_of(entry)
        try:
            relpath = sanitize_relpath(name)
        except HcError:
            yield PullItem(entry, name, None)  # fails on its own, as an unsafe path
            continue
        key = _path_key(relpath)
        if key in seen:
            yield PullItem(entry, name, relpath, duplicate=True)
            continue
        directory, _, base = relpath.rpartition("/")
        part = f"{directory}/{_part_name(base)}" if directory else _part_name(base)
        part_key = _path_key(part)
        if key in temporary:
            clash = f"{name}: not downloaded: it is the temporary (.part) name of another file of this pull"
            yield PullItem(entry, name, relpath, clash=clash)
            continue
        if part_key in seen:
            clash = f"{name}: not downloaded: its temporary name {part!r} is another file of this pull"
            yield PullItem(entry, name, relpath, clash=clash)
            continue
        seen.add(key)
        temporary.add(part_key)
        yield PullItem(entry, name, relpath)


def _path_key(relpath: str) -> bytes:
    return hashlib.blake2b(relpath.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class PullSide(EngineCore):
    """Download items: verified, into ``.part`` names, small ones in batches, large ones by ranges."""

    async def _pull_one(self, job: Job, item: PullItem, tree: DestinationTree, writer: BatchWriter) -> None:
        config = self._config
        entry, name = item.entry, item.name
        coordinator = self._coordinator(name, entry.size)
        action = ""
        local_path: str | None = None
        relpath = name
        try:
            relpath = item.relpath if item.relpath is not None else sanitize_relpath(name)
            if item.clash is not None:
                raise Conflict(item.clash)
            # On the loop: a stat or two of the local tree cost less than a thread hop, and the
            # per-file overhead is what limits a pull of many small files.
            # A small file has no resume state (no journal row, its .part is rewritten whole).
            where = tree.inspect(relpath, part=entry.size > config.buffer_size)
            local_path = str(where.final)
            if where.final_stat is not None and stat.S_ISDIR(where.final_stat.st_mode):
                raise IsADirectoryError(21, "a directory is in the way", str(where.final))
            if where.final_stat is not None and not config.overwrite:
                if not stat.S_ISREG(where.final_stat.st_mode):
                    # A FIFO (or socket, or device) put there: reading it to compare would wait
                    # for a writer, forever. (--overwrite replaces it: a rename writes nothing
                    # into it.)
                    raise FileExistsError(
                        errno.EEXIST,
                        f"not a regular file ({_kind(where.final_stat)}) is in the way",
                        str(where.final),
                    )
                local = await self._existing_checksums(where, where.final_stat, entry)
                if local is not None and compare(local, entry) is Verdict.IDENTICAL:
                    coordinator.finish(
                        Status.SKIPPED, action="identical", sha256=local.sha256, local_path=local_path
                    )
                    return
            if config.dry_run:
                prior = job.journal.get(relpath)
                resumable = self._resume_state(job, relpath, prior, where, entry) is not None
                coordinator.finish(
                    Status.PLANNED,
                    action="resume" if resumable else "download",
                    sha256=entry.sha256,
                    local_path=local_path,
                )
                return
            coordinator.start()
            if entry.size <= config.buffer_size:
                # Fetched whole into memory and verified before it touches the disk: nothing to
                # resume, so no journal rows (the file itself is the record). The batch writer
                # finishes the item once the file is durable under its final name.
                await self._download_small(coordinator, entry, relpath, where, writer, local_path)
                return
            checksums, action = await self._download(job, coordinator, entry, relpath, where)
            job.journal.mark_done(relpath, sha256=checksums.sha256)
            coordinator.finish(Status.DONE, action=action, sha256=checksums.sha256, local_path=local_path)
        except Exception as exc:
            if not config.dry_run:
                job.journal.mark_failed(relpath, describe_error(exc))
            await self._finish_with_error(
                coordinator, exc, action=action or "download", local_path=local_path
            )
            if not is_item_error(exc):
                raise
        except BaseException:
            if not coordinator.done:
                coordinator.cancel(action=action or "download", local_path=local_path)
            raise

    async def _pull_duplicate(self, name: str, entry: FileEntry) -> None:
        coordinator = self._coordinator(name, entry.size)
        error = Conflict(
            f"{name}: the listing names this path more than once; only its first entry is downloaded"
        )
        await coordinator.fail(error, message=str(error), action="download")

    async def _existing_checksums(
        self, where: _Destination, st: os.stat_result, entry: FileEntry
    ) -> Checksums | None:
        """The digests of the file already at the final name (the hash cache's, or read through a
        descriptor of its directory); None when no regular file is there to compare any more."""
        algorithms = wanted_algorithms(entry)
        cache, key = self._hash_cache, str(where.final)
        if cache is not None:
            cached = cache.get(
                key, size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino, require=algorithms
            )
            if cached is not None:
                return cached
        fd = await anyio.to_thread.run_sync(where.open_final)
        if fd is None:
            return None
        try:
            checksums, st = await hash_descriptor(
                fd, key, buffer_size=self._config.buffer_size, limiter=self._hashers, algorithms=algorithms
            )
        finally:
            await anyio.to_thread.run_sync(os.close, fd)
        if cache is not None and not self._config.dry_run:
            cache.put(key, mtime_ns=st.st_mtime_ns, inode=st.st_ino, checksums=checksums)
        return checksums

    def _resume_state(
        self, job: Job, relpath: str, prior: JournalEntry | None, where: _Destination, entry: FileEntry
    ) -> tuple[list[ByteRange], dict[int, int]] | None:
        """Journal ∩ disk ∩ server: a resumable plan needs the journal's plan for this exact source
        (fingerprint), the ``.part`` it describes still on disk at full size, and a server that
        honours ranges (If-Range then guards against the file having changed there)."""
        if prior is None or prior.part_path != str(where.part) or where.part_stat is None:
            return None
        if prior.fingerprint != source_fingerprint(entry) or not self._remote.capabilities.ranged_reads:
            return None
        if where.part_stat.st_size != entry.size:
            return None
        ranges, progress = job.journal.download_plan(relpath)
        if not ranges or ranges[-1].end != entry.size:
            return None
        return ranges, progress

    def _fresh_plan(self, size: int) -> list[ByteRange]:
        config = self._config
        if not self._remote.capabilities.ranged_reads:
            return plan_download(size, split=1, split_threshold=0)
        return plan_download(
            size,
            split=config.split,
            split_threshold=config.split_threshold,
            align=config.buffer_size,
            min_length=config.buffer_size,
            piece=config.chunk_size,
        )

    async def _download(
        self, job: Job, coordinator: TransferCoordinator, entry: FileEntry, relpath: str, where: _Destination
    ) -> tuple[Checksums, str]:
        """Fetch into ``.part``, verify, rename. A verification failure deletes the ``.part`` and
        starts again from zero, up to ``max_attempts`` times; the final name only ever holds
        verified bytes."""
        tracker = ItemBytes(self.accounting, coordinator.path, entry.size)
        fingerprint = source_fingerprint(entry)
        started = False
        attempt = 0
        action = "download"

        async def remove_partial() -> None:
            # Keep the .part when the failure may pass (server down): the next run resumes it.
            failure = coordinator.exception
            if (
                failure is not None
                and classify(failure).retryable
                and not isinstance(leaf_error(failure), IntegrityError)
            ):
                return
            job.journal.reset(relpath)
            await anyio.to_thread.run_sync(where.remove_part)

        coordinator.add_failure_cleanup(remove_partial)
        while True:
            attempt += 1
            coordinator.attempts += 1
            prior = job.journal.begin(relpath, fingerprint=fingerprint, size=entry.size)
            state = self._resume_state(job, relpath, prior, where, entry) if attempt == 1 else None
            progress: dict[int, int]
            if state is None:
                ranges, progress = self._fresh_plan(entry.size), {}
                job.journal.set_download(relpath, str(where.part), ranges)
                job.journal.flush()  # a .part the journal forgets is fetched again whole
            else:
                ranges, progress = state
                action = "resume"
            if not started:
                started = True
                self.accounting.started(coordinator.path, entry.size, resumed=sum(progress.values()))
            try:
                checksums = await self._fetch(
                    job, coordinator, entry, relpath, where, ranges, progress, tracker
                )
                verify_checksums(relpath, entry, checksums)
            except IntegrityError as exc:
                tracker.rewind_all()
                job.journal.reset(relpath)
                await anyio.to_thread.run_sync(where.remove_part)
                if attempt >= self._policy.max_attempts:
                    raise
                self.accounting.retried(coordinator.path, attempt=attempt, delay=0.0, error=exc)
                continue
            final_stat = await anyio.to_thread.run_sync(where.promote)
            self._remember(where.final, final_stat, checksums)
            coordinator.discard_failure_cleanups()
            return checksums, action

    def _remember(self, path: Path, st: os.stat_result, checksums: Checksums) -> None:
        """Cache the digests of a file we just verified, so the next run's skip check is free."""
        if self._hash_cache is not None:
            self._hash_cache.put(
                str(path), mtime_ns=st.st_mtime_ns, inode=st.st_ino, checksums=checksums, trust_recent=True
            )

    async def _download_small(
        self,
        coordinator: TransferCoordinator,
        entry: FileEntry,
        relpath: str,
        where: _Destination,
        writer: BatchWriter,
        local_path: str,
    ) -> None:
        """Fetch into memory, verify, then hand to the batch writer (``.part``, sync, rename),
        which reports the item. A verification failure fetches again, up to ``max_attempts``
        times; nothing unverified ever touches the disk."""
        tracker = ItemBytes(self.accounting, coordinator.path, entry.size)
        algorithms = wanted_algorithms(entry)
        self.accounting.started(coordinator.path, entry.size, resumed=0)
        attempt = 0
        while True:
            attempt += 1
            coordinator.attempts += 1
            try:
                body = await self._fetch_small(coordinator, entry, relpath, tracker)
                hasher = MultiHasher(algorithms)
                if len(body) > INLINE_HASH_MAX:
                    await anyio.to_thread.run_sync(hasher.update, body, limiter=self._hashers)
                else:
                    hasher.update(body)  # tens of microseconds: cheaper than a thread hop
                checksums = hasher.result()
                verify_checksums(relpath, entry, checksums)
            except IntegrityError as exc:  # a corrupt or short body (or one the server cut): again
                tracker.rewind_all()
                if attempt >= self._policy.max_attempts:
                    raise
                self.accounting.retried(coordinator.path, attempt=attempt, delay=0.0, error=exc)
                continue
            on_done = self._small_written(coordinator, where, checksums, local_path)
            await writer.submit(where.part, where.final, body, on_done, folders=where.folders)
            return

    def _small_written(
        self, coordinator: TransferCoordinator, where: _Destination, checksums: Checksums, local_path: str
    ) -> OnWritten:
        async def on_done(final_stat: os.stat_result | None, error: Exception | None) -> None:
            if coordinator.done:
                return
            if error is not None or final_stat is None:
                failure = error or OSError(f"{where.final} was not written")
                await self._finish_with_error(coordinator, failure, action="download", local_path=local_path)
                return
            self._remember(where.final, final_stat, checksums)
            coordinator.finish(Status.DONE, action="download", sha256=checksums.sha256, local_path=local_path)

        return on_done

    async def _fetch_small(
        self, coordinator: TransferCoordinator, entry: FileEntry, relpath: str, tracker: ItemBytes
    ) -> bytes:
        failures = 0
        batch_limit = self._batch_limit(read=True)
        batched = batch_limit > 0 and entry.size <= batch_limit
        while True:
            try:
                await self._gate.wait()
                if batched:
                    # Joins a request with the other small files being fetched meanwhile: no
                    # request token or deadline of its own (the batch's request has both), which
                    # were a seventh of a 4 KiB file's CPU.
                    body = await self._remote.read_whole(entry, stall_timeout=self._config.stall_timeout)
                else:
                    limiter = self._requests
                    await take_token(limiter)
                    try:
                        # One deadline for the whole (small) body, not one per chunk: cancel
                        # scopes cost more than the bytes here.
                        with anyio.fail_after(self._config.stall_timeout):
                            body = await self._read_small(entry, relpath)
                    finally:
                        limiter.release()
                if len(body) < entry.size:
                    raise TransientError(
                        f"{relpath}: the download ended early at byte {len(body)} of {entry.size}"
                    )
                tracker.add(len(body))
                return body
            except Exception as exc:
                failures += 1
                await self._backoff_or_raise(coordinator, exc, failures)

    async def _read_small(self, entry: FileEntry, relpath: str) -> bytes:
        """One GET of a whole small file (one byte more than listed is enough to know it changed)."""
        body = bytearray()
        async with self._remote.open_read(entry) as stream:
            if stream.total_size is not None and stream.total_size != entry.size:
                raise IntegrityError(
                    f"{relpath} changed on the server ({stream.total_size} bytes, listed as {entry.size})"
                )
            async for chunk in stream:
                body += chunk
                if len(body) > entry.size:
                    break
        return bytes(body)

    async def _fetch(
        self,
        job: Job,
        coordinator: TransferCoordinator,
        entry: FileEntry,
        relpath: str,
        where: _Destination,
        ranges: Sequence[ByteRange],
        progress: dict[int, int],
        tracker: ItemBytes,
    ) -> Checksums:
        size, part = entry.size, where.part

        def open_part() -> int:
            folder = where.open_folder(create=True)
            try:
                fd = open_own_file(part.name, os.O_RDWR, dir_fd=folder)
            except OSError as exc:
                raise located(exc, part.parent) from exc
            finally:
                os.close(folder)
            try:
                if os.fstat(fd).st_size != size:
                    os.ftruncate(fd, size)  # full length up front: ranges are written in place
            except BaseException:
                os.close(fd)
                raise
            return fd

        algorithms = wanted_algorithms(entry)
        # One stream from byte 0 is hashed as it is written; anything else is hashed after.
        inline = MultiHasher(algorithms) if len(ranges) <= 1 and not any(progress.values()) else None
        fd = await anyio.to_thread.run_sync(open_part)
        try:
            todo = remaining_download(ranges, progress)
            if len(todo) == 1:
                index, rest = todo[0]
                await self._fetch_range(
                    coordinator, entry, relpath, fd, index, ranges[index], rest, inline, tracker, job
                )
            elif todo:
                # Where each range has written up to; a follower hashes the contiguous prefix as it
                # grows (from the page cache, on a worker thread), so the digest is ready when the
                # last byte lands instead of after a second pass over the whole file.
                written = {index: part_range.end for index, part_range in enumerate(ranges)}
                written.update((index, rest.start) for index, rest in todo)
                followed: list[Checksums] = []
                pending = iter(todo)  # shared: each range goes to one stream, in file order

                async def stream() -> None:
                    for index, rest in pending:
                        whole = ranges[index]
                        await self._fetch_range(
                            coordinator, entry, relpath, fd, index, whole, rest, None, tracker, job, written
                        )

                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._follow_hash, fd, ranges, written, algorithms, followed)
                    for _ in range(min(max(1, self._config.split), len(todo))):
                        tg.start_soon(stream)
                await anyio.to_thread.run_sync(os.fsync, fd)
                return followed[0]
            await anyio.to_thread.run_sync(os.fsync, fd)
            if inline is not None and inline.size == size:
                return inline.result()
            # A resumed file: hashed through the descriptor its bytes were written to, not by its
            # name (which a swapped directory could point at another file by now).
            done = {index: part_range.end for index, part_range in enumerate(ranges)}
            hashed: list[Checksums] = []
            await self._follow_hash(fd, ranges, done, algorithms, hashed)
            return hashed[0]
        finally:
            await anyio.to_thread.run_sync(os.close, fd)

    async def _follow_hash(
        self,
        fd: int,
        ranges: Sequence[ByteRange],
        written: dict[int, int],
        algorithms: Sequence[str],
        out: list[Checksums],
    ) -> None:
        """Hash the file from byte 0 as far as its ranges have been written contiguously, waiting
        for more while the ranges are in flight; ends when the whole file is hashed."""
        hasher = MultiHasher(algorithms)
        size = ranges[-1].end if ranges else 0
        buffer = memoryview(bytearray(4 * self._config.buffer_size))
        offset = 0

        def hash_at(position: int, length: int) -> int:
            """Hash ``length`` bytes from ``position`` (fewer if the file ends), a buffer at a time."""
            done = 0
            while done < length:
                n = os.preadv(fd, [buffer[: min(len(buffer), length - done)]], position + done)
                if not n:
                    break
                hasher.update(buffer[:n])
                done += n
            return done

        while offset < size:
            end = size
            for index, part_range in enumerate(ranges):
                if written[index] < part_range.end:
                    end = written[index]
                    break
            if end <= offset:
                await anyio.sleep(_FOLLOW_POLL)
                continue
            read = await anyio.to_thread.run_sync(
                hash_at, offset, min(HASH_STEP, end - offset), limiter=self._hashers
            )
            if not read:
                raise IntegrityError(f"the partial file ended at byte {offset} of {size}")
            offset += read
        out.append(hasher.result())

    async def _fetch_range(
        self,
        coordinator: TransferCoordinator,
        entry: FileEntry,
        relpath: str,
        fd: int,
        index: int,
        whole: ByteRange,
        rest: ByteRange,
        hasher: MultiHasher | None,
        tracker: ItemBytes,
        job: Job,
        written: dict[int, int] | None = None,
    ) -> None:
        """Fetch ``rest`` (the unfinished tail of range ``whole``), resuming after every failure at
        the first byte not yet written.

        Every ``_RECORD_EVERY`` bytes of the range (and when it ends, fails or is cancelled) its
        progress is committed to the journal, after the bytes are written: the journal never claims
        bytes this process has not handed to the kernel, so a killed process (SIGKILL, a crash)
        resumes exactly, losing at most that much per range in flight plus its socket buffers.
        The bytes are not fdatasynced first (that cost ~20 % of a loopback pull's time): after a
        power cut the journal may claim bytes the disk lost, and then the whole-file digest check
        after the resume fails, the ``.part`` is deleted and the file is fetched again from zero.
        A file is never renamed into place before it is verified and fsynced."""
        config = self._config
        position = rest.start
        recorded = position
        failures = 0
        # Bytes per write (one thread hop each). Larger batches measured worse: the received
        # chunks leave the CPU cache before the copy into the page cache.
        batch = config.buffer_size
        record_every = max(batch, _RECORD_EVERY)

        async def record() -> None:
            nonlocal recorded
            if position > recorded:
                job.journal.set_progress(relpath, index, position - whole.start)
                job.journal.flush()
                recorded = position

        write_batch = partial(_write_range_batch, fd, hasher=hasher)
        made_progress = False  # in this attempt

        async def wrote(size: int) -> None:
            """A batch is in the file (``write_behind``): only now does it count as written."""
            nonlocal position, made_progress
            position += size
            tracker.add(size)
            if written is not None:
                written[index] = position
            made_progress = True
            if position - recorded >= record_every:
                await record()

        try:
            while position < whole.end:
                made_progress = False
                try:
                    await self._gate.wait()
                    async with (
                        self._requests,
                        self._remote.open_read(
                            entry, offset=position, length=whole.end - position, if_range=entry.sha256
                        ) as stream,
                    ):
                        if stream.total_size is not None and stream.total_size != entry.size:
                            raise IntegrityError(
                                f"{relpath} changed on the server"
                                f" ({stream.total_size} bytes, listed as {entry.size})"
                            )
                        skip = position - stream.start
                        if skip < 0:
                            raise IntegrityError(
                                f"{relpath}: asked for bytes from {position}, got from {stream.start}"
                            )
                        # Chunks are gathered in a list and written with one pwritev per batch (no
                        # copy into a staging buffer, one thread hop per batch), behind the receive.
                        pending: list[bytes] = []
                        pending_size = 0
                        received = position  # the next byte to receive; ``position``: to be written
                        chunks = aiter(stream)
                        # One stall watchdog for the stream, pushed back as bytes arrive (a cancel
                        # scope per chunk cost more than the chunk's bytes).
                        armed = anyio.current_time()
                        async with write_behind(write_batch, wrote) as writes:
                            with anyio.CancelScope(deadline=armed + config.stall_timeout) as watchdog:
                                while received + pending_size < whole.end:
                                    chunk = await anext(chunks, None)
                                    if chunk is None:
                                        break
                                    now = anyio.current_time()
                                    if now - armed > config.stall_timeout / 8:
                                        armed, watchdog.deadline = now, now + config.stall_timeout
                                    if skip:  # the server ignored Range: drop what we already have
                                        dropped = min(skip, len(chunk))
                                        chunk, skip = chunk[dropped:], skip - dropped
                                    room = whole.end - received - pending_size
                                    if len(chunk) > room:
                                        chunk = chunk[:room]
                                    if not chunk:
                                        continue
                                    pending.append(chunk)
                                    pending_size += len(chunk)
                                    if pending_size >= batch:
                                        await writes.send((pending, received))
                                        received += pending_size
                                        pending, pending_size = [], 0
                            if pending:
                                await writes.send((pending, received))
                            if watchdog.cancelled_caught:
                                raise TimeoutError(
                                    f"{relpath}: no data for {config.stall_timeout:g} s (at byte {received})"
                                )
                    if position < whole.end:
                        raise TransientError(
                            f"{relpath}: the download ended early at byte {position} of {whole.end}"
                        )
                except Exception as exc:
                    failures = 1 if made_progress else failures + 1
                    await self._backoff_or_raise(coordinator, exc, failures)
        except BaseException:
            with anyio.CancelScope(shield=True):
                try:
                    await record()
                except (OSError, HcError) as exc:  # must not hide why the range ended
                    _log.debug("recording the progress of %s failed: %s", relpath, exc)
            raise
        if whole.length < entry.size:
            # The other ranges may still be running: a kill now must not cost this one's tail.
            # (A single range is followed at once by fsync, verify and rename.)
            await record()
