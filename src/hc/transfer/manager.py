"""TransferManager: push and pull many files through one bounded pool of requests.

Shape of a job (both directions):

```
items (async, lazy) ──► bounded stream (backlog) ──► N item workers ──► per item: plan, then act
                                                                     └─► parts/ranges as tasks
every request (a whole PUT, one part, one ranged GET) holds one token of ONE CapacityLimiter
```

- Memory is flat whatever the item count: items are pulled from the caller's iterator only as
  workers free up (the stream holds at most ``backlog``), bytes move ``buffer_size`` at a time,
  and nothing keeps a per-item record after the item ends (results go to accounting subscribers).
- Concurrency is never multiplied by nesting: item workers hold no token; the parts of a big file
  and whole small files compete for the same ``concurrency`` tokens.
- Hashing and disk I/O run in worker threads (``hash_threads`` at once for hashing), so both
  cores work while the loop moves bytes.
- A large file bound for an upload session is not hashed before its first byte moves when the
  registry takes the sha256 at commit (``digest_at_commit``) and no cached hash or same-size
  destination file could make it a skip: the session opens without a digest, the file is hashed
  while its parts go up, and the commit carries the digest (``_send_while_hashing``).
- Each item is a ``TransferCoordinator``; failures are per item (the job carries on) and end up
  in the summary, a cancelled job leaves its ``.part`` files, upload sessions and journal for the
  next run to resume.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import stat
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, TypeVar

import anyio

from hc.errors import Conflict, HcError, IntegrityError, NotFound, RetryKind, TransientError
from hc.protocol.digest import ALGORITHMS, Checksums, MultiHasher
from hc.protocol.ranges import ByteRange, normalize
from hc.syscalls import start_writeback
from hc.transfer._files import (
    BytesSource,
    CountingSource,
    FileSource,
    FileStamp,
    fsync_directory,
    hash_path,
    read_and_hash,
    write_at,
)
from hc.transfer.accounting import Accounting
from hc.transfer.batchwrite import BatchWriter, OnWritten
from hc.transfer.config import TransferConfig
from hc.transfer.coordinator import TransferCoordinator
from hc.transfer.hashcache import HashCache
from hc.transfer.journal import Journal, JournalEntry
from hc.transfer.march import DestinationIndex, Verdict, compare
from hc.transfer.pacer import Decision, RateGate, RetryEvent, call_with_retries, classify, failing_for
from hc.transfer.plan import clamp_part_size, plan_download, remaining_download, remaining_upload
from hc.transfer.remote import CopyPair, FileEntry, FileLocation, FileRef, Remote, RemoteFile, SessionState
from hc.transfer.results import Status, Summary
from hc.transfer.sanitize import safe_join, sanitize_relpath
from hc.transfer.walk import LocalItem

__all__ = ["TransferManager"]

_log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: Servers cap the number of parts (S3: 10 000); a huge file gets bigger parts instead.
_MAX_PARTS: Final = 10_000
#: How often the journal's progress reaches disk: what a SIGKILL can cost a download is at most
#: this long of its throughput (0.1 s ≈ 20 MiB at loopback speed), for one cheap WAL commit.
_FLUSH_INTERVAL: Final = 0.1

#: Bytes of a ranged download between two journal records: what a killed pull fetches again per
#: range at most (plus its socket buffers). A record is one cheap WAL commit, no disk sync.
_RECORD_EVERY: Final = 4 * 1024 * 1024

_ITEM_ERRORS: Final = (HcError, OSError, anyio.BrokenResourceError, anyio.EndOfStream)


def _write_range_batch(fd: int, chunks: list[bytes], offset: int, hasher: MultiHasher | None) -> None:
    """Write one batch of a ranged download in place and start its writeback (not waiting for it):
    the disk works while the network does, so the fsync before the rename waits for the tail only."""
    write_at(fd, chunks, offset, hasher)
    if start_writeback is not None:
        start_writeback(fd, offset, sum(len(chunk) for chunk in chunks))


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups, for a one-line item message."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _is_item_error(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_item_error(inner) for inner in exc.exceptions)
    return isinstance(exc, _ITEM_ERRORS)


def _describe(exc: BaseException) -> str:
    exc = _leaf(exc)
    if isinstance(exc, HcError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        where = f" {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


def _integrity_is_final(exc: BaseException) -> Decision:
    """Operation-level retries leave integrity failures to the item level, which re-hashes (a
    changed source) or starts a new session before trying again."""
    decision = classify(exc)
    if isinstance(_leaf(exc), IntegrityError):
        return Decision(RetryKind.FATAL)
    return decision


def _location_text(location: FileLocation) -> str:
    return f"{location.package}/{location.version}/{location.path}"


def _received(session: SessionState) -> list[tuple[int, int]]:
    return list(session.received) if session.received else [(0, session.offset)]


async def _aiter(items: AsyncIterable[T] | Iterable[T]) -> AsyncIterator[T]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


class _ItemBytes:
    """Bytes one item has reported, so an item-level restart can take them all back."""

    __slots__ = ("_accounting", "_path", "expected", "total")

    def __init__(self, accounting: Accounting, path: str, expected: int) -> None:
        self._accounting = accounting
        self._path = path
        self.expected = expected
        self.total = 0

    def add(self, delta: int) -> None:
        self.total += delta
        self._accounting.moved(self._path, delta)

    def rewind_all(self) -> None:
        if self.total:
            self.add(-self.total)


@dataclass(slots=True)
class _Job:
    journal: Journal
    package: str = ""
    version: str = ""
    dest: Path | None = None
    target: Callable[[FileEntry], str] | None = None
    index: DestinationIndex | None = None
    index_ready: anyio.Event | None = None
    #: copy: where the bytes come from, and the destination listings loaded so far
    source: Remote | None = None
    indexes: _IndexCache | None = None
    verify_destination: bool = False


#: Destination listings a copy keeps at once (one per version being copied; items arrive grouped
#: by version, so a handful is enough, and the bound keeps memory flat over millions of versions).
_MAX_INDEXES: Final = 64


class _IndexCache:
    """One destination listing per version, loaded once by the first item of that version that
    needs it (the others wait for it), least recently used evicted."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[str, str], tuple[anyio.Event, list[DestinationIndex]]] = (
            OrderedDict()
        )

    async def get(
        self, key: tuple[str, str], load: Callable[[], Awaitable[DestinationIndex]]
    ) -> DestinationIndex:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
            ready, holder = found
            await ready.wait()
            if holder:
                return holder[0]
            # The loader failed; this item tries again (and fails or succeeds on its own).
        ready, holder = anyio.Event(), []
        self._entries[key] = (ready, holder)
        while len(self._entries) > _MAX_INDEXES:
            self._entries.popitem(last=False)
        try:
            holder.append(await load())
        except BaseException:
            if self._entries.get(key) == (ready, holder):
                del self._entries[key]
            raise
        finally:
            ready.set()
        return holder[0]


class _StreamedSource:
    """A ``ByteSource`` whose bytes are a download from the source registry: every ``open()`` is a
    new GET, read chunk by chunk as the upload consumes it (no disk, one chunk in memory).

    The bytes are hashed on the way through and checked against the source listing *before the
    last chunk is handed over*, so a corrupt stream makes the upload fail short instead of
    completing with wrong content. ``failure`` keeps the error raised inside the body, because an
    HTTP client may report it as a broken request instead.
    """

    __slots__ = ("_hashers", "_remote", "_stall", "entry", "failure", "label")

    def __init__(
        self,
        remote: Remote,
        entry: FileEntry,
        *,
        label: str,
        stall_timeout: float,
        hashers: anyio.CapacityLimiter,
    ) -> None:
        self._remote = remote
        self.entry = entry
        self.label = label
        self._stall = stall_timeout
        self._hashers = hashers
        self.failure: BaseException | None = None

    @property
    def size(self) -> int:
        return self.entry.size

    async def open(self) -> AsyncIterator[bytes]:
        self.failure = None
        try:
            async for chunk in self._chunks():
                yield chunk
        except Exception as exc:
            self.failure = exc
            raise

    async def _chunks(self) -> AsyncIterator[bytes]:
        entry, size = self.entry, self.entry.size
        algorithms = TransferManager._wanted_algorithms(entry)
        hasher = MultiHasher(algorithms)
        received = 0
        async with self._remote.open_read(entry) as stream:
            if stream.total_size is not None and stream.total_size != size:
                raise IntegrityError(
                    f"{self.label}: the source changed ({stream.total_size} bytes, listed as {size})"
                )
            chunks = aiter(stream)
            while True:
                with anyio.fail_after(self._stall):
                    chunk = await anext(chunks, None)
                if chunk is None:
                    break
                received += len(chunk)
                if received > size:
                    raise IntegrityError(f"{self.label}: the source sent more than the {size} bytes listed")
                if len(chunk) >= _THREAD_HASH_MIN:
                    await anyio.to_thread.run_sync(hasher.update, chunk, limiter=self._hashers)
                else:
                    hasher.update(chunk)
                if received == size:
                    TransferManager._verify(self.label, entry, hasher.result())
                yield chunk
        if received < size:
            raise TransientError(
                f"{self.label}: the source download ended early at byte {received} of {size}"
            )
        if size == 0:
            TransferManager._verify(self.label, entry, hasher.result())


#: Chunks at least this big are hashed on a worker thread (the loop keeps moving other streams).
_THREAD_HASH_MIN: Final = 128 * 1024
#: A small file up to this size (a download's body, a local file to upload) is read and hashed on
#: the loop: tens of microseconds, less than a thread hop.
_INLINE_HASH_MAX: Final = 64 * 1024
#: How often the hash follower of a split download looks for newly written bytes (seconds).
_FOLLOW_POLL: Final = 0.02


def _source_checksums(entry: FileEntry) -> Checksums | None:
    """What the upload declares (``X-Checksum-*``): the source listing's digests."""
    if not entry.sha256:
        return None
    return Checksums(
        size=entry.size,
        sha256=entry.sha256.strip().lower(),
        md5=entry.md5.strip().lower() if entry.md5 else None,
        sha1=entry.sha1.strip().lower() if entry.sha1 else None,
        sha512=entry.sha512.strip().lower() if entry.sha512 else None,
    )


@dataclass(frozen=True, slots=True)
class _Destination:
    final: Path
    final_stat: os.stat_result | None
    part: Path
    part_stat: os.stat_result | None


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


def _stat_or_none(path: Path, *, follow: bool = True) -> os.stat_result | None:
    try:
        return os.stat(path, follow_symlinks=follow)
    except FileNotFoundError:
        return None


class _DestinationTree:
    """Where a pull's files go: each listing path's final and temporary names, and what is there.

    ``safe_join``'s containment check (does the path, following symlinks already on disk, stay
    inside the destination?) resolves every component of the path; it is done once per directory,
    and again for any file whose final name is itself a symlink. The directories it approved are
    the engine's own to create, so they stay approved for the job."""

    __slots__ = ("_approved", "_base", "root")

    def __init__(self, root: Path) -> None:
        self.root = root
        self._base: Path | None = None
        self._approved: set[str] = set()

    def inspect(self, relpath: str, *, part: bool = True) -> _Destination:
        """``part=False`` skips the stat of the ``.part`` name: a small file is fetched whole and
        its ``.part`` truncated, so what is there cannot matter."""
        directory = relpath.rpartition("/")[0]
        final_stat: os.stat_result | None = None
        if directory in self._approved and self._base is not None:
            final = self._base.joinpath(*relpath.split("/"))
            final_stat = _stat_or_none(final, follow=False)
            approved = final_stat is None or not stat.S_ISLNK(final_stat.st_mode)
        else:
            approved = False
        if not approved:
            final = safe_join(self.root, relpath)  # raises UnsafePathError
            if self._base is None:
                self._base = self.root.resolve()
            self._approved.add(directory)
            final_stat = _stat_or_none(final)
        part_path = final.with_name(_part_name(final.name))
        return _Destination(final, final_stat, part_path, _stat_or_none(part_path) if part else None)


@dataclass(frozen=True, slots=True)
class _PullItem:
    entry: FileEntry
    #: where the caller's ``target`` maps it, as given, and sanitized (``None``: unsafe)
    name: str
    relpath: str | None
    #: an earlier entry of the same pull already claimed this destination path
    duplicate: bool = False


async def _take(limiter: anyio.CapacityLimiter) -> None:
    """Acquire a token; a free one is taken without the scheduling round trip that ``async with``
    makes (an event-loop pass per request, which adds up over thousands of small files)."""
    try:
        limiter.acquire_nowait()
    except anyio.WouldBlock:
        await limiter.acquire()


async def _first_per_destination(
    items: AsyncIterable[FileEntry] | Iterable[FileEntry], name_of: Callable[[FileEntry], str]
) -> AsyncIterator[_PullItem]:
    """One download per destination path, decided in listing order before any worker sees the
    items: two downloads into one ``.part`` would corrupt (or delete) each other. The first entry
    wins; the others become items that fail. Memory: a 16-byte digest per path."""
    seen: set[bytes] = set()
    async for entry in _aiter(items):
        name = name_of(entry)
        try:
            relpath = sanitize_relpath(name)
        except HcError:
            yield _PullItem(entry, name, None)  # fails on its own, as an unsafe path
            continue
        key = hashlib.blake2b(relpath.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        duplicate = key in seen
        seen.add(key)
        yield _PullItem(entry, name, relpath, duplicate)


class TransferManager:
    """Bulk push/pull against a ``Remote``. Seams are constructor arguments: tests hand in a fake
    Remote, an in-memory journal and their own Accounting subscriber."""

    def __init__(
        self,
        remote: Remote,
        config: TransferConfig | None = None,
        *,
        journal: Journal | None = None,
        hash_cache: HashCache | None = None,
        accounting: Accounting | None = None,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._remote = remote
        self._config = config if config is not None else TransferConfig()
        self._journal = journal
        self._hash_cache = hash_cache
        self.accounting = accounting if accounting is not None else Accounting()
        self._draw = draw
        self._policy = self._config.retry_policy
        self._gate = RateGate()
        # Created on first use, inside the event loop (one pair per manager, shared by its jobs).
        self._request_limiter: anyio.CapacityLimiter | None = None
        self._hash_limiter: anyio.CapacityLimiter | None = None

    @property
    def config(self) -> TransferConfig:
        return self._config

    @property
    def _requests(self) -> anyio.CapacityLimiter:
        if self._request_limiter is None:
            self._request_limiter = anyio.CapacityLimiter(self._config.concurrency)
        return self._request_limiter

    @property
    def _hashers(self) -> anyio.CapacityLimiter:
        if self._hash_limiter is None:
            self._hash_limiter = anyio.CapacityLimiter(self._config.hash_threads)
        return self._hash_limiter

    # --- public API ---------------------------------------------------------------------------

    async def push(
        self, items: AsyncIterable[LocalItem] | Iterable[LocalItem], *, package: str, version: str
    ) -> Summary:
        """Upload every item to ``package/version/<item.relpath>``; skip what is already identical."""
        job = _Job(journal=self._journal or Journal.in_memory(), package=package, version=version)
        need_listing = not self._config.overwrite
        if need_listing:
            job.index_ready = anyio.Event()

        async def setup(tg: anyio.abc.TaskGroup) -> None:
            if need_listing:
                tg.start_soon(self._load_index, job)

        return await self._run(
            job,
            items,
            describe=lambda item: (item.relpath, item.size),
            handle=self._push_one,
            setup=setup,
        )

    async def pull(
        self,
        items: AsyncIterable[FileEntry] | Iterable[FileEntry],
        dest: Path,
        *,
        target: Callable[[FileEntry], str] | None = None,
    ) -> Summary:
        """Download every item to ``dest / target(item)`` (default: its path in the version),
        verified, via ``<name>.part`` (``.hc-<hash>.part`` for a name too long to take the suffix)
        and an atomic rename. A path the listing names twice is fetched once, from its first entry;
        the repeats fail as items. Small files are written by a ``BatchWriter`` (synced in batches),
        large ones into a journaled ``.part`` whose ranges record their progress every chunk."""
        job = _Job(
            journal=self._journal or Journal.in_memory(),
            dest=dest,
            target=target or (lambda entry: entry.path),
        )
        if not self._config.dry_run:
            await anyio.to_thread.run_sync(lambda: dest.mkdir(parents=True, exist_ok=True))
        name_of = job.target
        assert name_of is not None

        def describe(item: _PullItem) -> tuple[str, int]:
            return item.name, item.entry.size

        writer = BatchWriter(dest)
        tree = _DestinationTree(dest)

        async def setup(outer: anyio.abc.TaskGroup) -> None:
            # Runs until the workers are done, then (shielded) finishes what they submitted.
            outer.start_soon(writer.run)

        async def handle(job: _Job, item: _PullItem) -> None:
            if item.duplicate:
                await self._pull_duplicate(item.name, item.entry)
            else:
                await self._pull_one(job, item, tree, writer)

        return await self._run(
            job, _first_per_destination(items, name_of), describe=describe, handle=handle, setup=setup
        )

    async def copy(
        self,
        source: Remote,
        items: AsyncIterable[CopyPair] | Iterable[CopyPair],
        *,
        verify_destination: bool = False,
    ) -> Summary:
        """Copy files from ``source`` to this manager's remote (the destination), streaming each
        download straight into its upload: no local disk, about one chunk per stream in memory.

        Per item (``item.source`` = the source listing's entry, ``item.destination`` = where it goes):

        - skip when the destination already holds identical content (one destination listing per
          version, loaded lazily and shared by that version's items; ``overwrite`` turns this off);
        - upload with ``X-Checksum-*`` = the source listing's digests, so the destination checks
          what it computed against the source (an hc registry and Harness refuse a mismatch); the
          bytes are also hashed on the way through and the upload is broken off before its last
          chunk if they differ from the listing. A source entry without a sha256 is read once to
          compute it first. ``verify_destination`` adds a HEAD after each upload and compares the
          destination's size and sha256 (for servers that may not check the headers);
        - retries: a request is retried by the pacer (Retry-After honoured, one gate for the job);
          an integrity failure restarts the item from byte 0, up to ``max_attempts`` times;
        - journal: ``mark_done`` / ``mark_failed`` under the destination path
          (``package/version/path``); results and bytes go to ``accounting``;
        - one request token per item in flight (its GET and PUT run together), under the manager's
          single ``concurrency`` limit; ``dry_run`` reports ``planned`` items and changes nothing.

        Returns the job's ``Summary``; a failed item does not stop the others.
        """
        job = _Job(
            journal=self._journal or Journal.in_memory(),
            source=source,
            indexes=_IndexCache(),
            verify_destination=verify_destination,
        )
        return await self._run(
            job,
            items,
            describe=lambda item: (_location_text(item.destination), item.source.size),
            handle=self._copy_one,
        )

    async def listing(self, package: str, version: str) -> AsyncIterator[FileEntry]:
        """``remote.list_files`` made resilient: a listing broken off by a transient error restarts
        and skips what it already yielded (listings are ordered). A missing version lists nothing."""
        yielded = 0
        failures = 0
        while True:
            seen = 0
            try:
                async for entry in self._remote.list_files(package, version):
                    seen += 1
                    if seen <= yielded:
                        continue
                    yielded += 1
                    failures = 0
                    yield entry
                return
            except NotFound:
                return
            except Exception as exc:
                decision = classify(exc)
                failures += 1
                if not decision.retryable or failures >= self._policy.max_attempts:
                    raise
                await anyio.sleep(self._policy.backoff.delay(failures, decision, self._draw()))

    # --- the job driver -----------------------------------------------------------------------

    async def _run(
        self,
        job: _Job,
        items: AsyncIterable[T] | Iterable[T],
        *,
        describe: Callable[[T], tuple[str, int]],
        handle: Callable[[_Job, T], Awaitable[None]],
        setup: Callable[[anyio.abc.TaskGroup], Awaitable[None]] | None = None,
    ) -> Summary:
        config = self._config
        send, receive = anyio.create_memory_object_stream[T](config.backlog)
        workers = config.concurrency + config.hash_threads
        self.accounting.start()

        async def feed() -> None:
            async with send:
                async for item in _aiter(items):
                    path, size = describe(item)
                    self.accounting.queued(path, size)
                    await send.send(item)

        async def work(stream: anyio.abc.ObjectReceiveStream[T]) -> None:
            async with stream:
                async for item in stream:
                    await handle(job, item)

        async def flush_periodically() -> None:
            while True:
                await anyio.sleep(_FLUSH_INTERVAL)
                job.journal.flush()

        try:
            async with anyio.create_task_group() as outer:
                if not config.dry_run:
                    outer.start_soon(flush_periodically)
                if setup is not None:
                    await setup(outer)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(feed)
                    async with receive:
                        for _ in range(workers):
                            tg.start_soon(work, receive.clone())
                outer.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # Task groups wrap even a single failure (twice, nested); the CLI wants the HcError.
            leaves = _leaves(group)
            if len(leaves) == 1:
                raise leaves[0] from None
            raise
        finally:
            if not config.dry_run:
                job.journal.flush()
            if self._hash_cache is not None:
                self._hash_cache.flush()
            if self._journal is None:
                job.journal.close()
            self.accounting.stop()
        return self.accounting.summary()

    def _coordinator(self, path: str, size: int) -> TransferCoordinator:
        coordinator = TransferCoordinator(path, size)
        coordinator.add_done_callback(self.accounting.finished)
        return coordinator

    async def _finish_with_error(
        self, coordinator: TransferCoordinator, exc: BaseException, *, action: str, local_path: str | None
    ) -> None:
        if coordinator.done:
            return
        message = _describe(exc)
        if coordinator.attempts > 1 and isinstance(_leaf(exc), TransientError | IntegrityError):
            message = f"{message} (gave up after {coordinator.attempts} attempts)"
        await coordinator.fail(_leaf(exc), message=message, action=action, local_path=local_path)

    # --- retries ------------------------------------------------------------------------------

    def _retry_reporter(
        self, coordinator: TransferCoordinator, on_rewind: Callable[[], None] | None = None
    ) -> Callable[[RetryEvent], None]:
        def report(event: RetryEvent) -> None:
            if on_rewind is not None:
                on_rewind()
            coordinator.attempts += 1
            self.accounting.retried(
                coordinator.path, attempt=event.attempt, delay=event.delay, error=event.error
            )

        return report

    async def _call(
        self,
        coordinator: TransferCoordinator,
        fn: Callable[[], Awaitable[R]],
        *,
        on_rewind: Callable[[], None] | None = None,
    ) -> R:
        """One remote operation with retries; holds a request token only while the request runs."""

        async def attempt() -> R:
            limiter = self._requests
            await _take(limiter)
            try:
                return await fn()
            finally:
                limiter.release()

        return await call_with_retries(
            attempt,
            self._policy,
            on_retry=self._retry_reporter(coordinator, on_rewind),
            gate=self._gate,
            draw=self._draw,
            classify_error=_integrity_is_final,
        )

    async def _backoff_or_raise(
        self, coordinator: TransferCoordinator, exc: BaseException, failures: int
    ) -> None:
        """For hand-written retry loops (streams that resume where they stopped): ``failures`` is
        the loop's count of consecutive failures (1 starts a run; the outage budget counts from it)."""
        decision = _integrity_is_final(exc)
        if self._policy.gives_up(failures, decision, failing_for(failures)):
            raise exc
        delay = self._policy.backoff.delay(failures, decision, self._draw())
        if decision.kind is RetryKind.RETRY_AFTER:
            self._gate.hold(delay)
        coordinator.attempts += 1
        self.accounting.retried(coordinator.path, attempt=failures, delay=delay, error=exc)
        await anyio.sleep(delay)

    # --- push ---------------------------------------------------------------------------------

    async def _load_index(self, job: _Job) -> None:
        assert job.index_ready is not None

        async def fetch() -> DestinationIndex:
            index = DestinationIndex()
            try:
                async for entry in self._remote.list_files(job.package, job.version):
                    index.add(entry.path, entry)
            except NotFound:
                pass
            return index

        job.index = await call_with_retries(fetch, self._policy, gate=self._gate, draw=self._draw)
        job.index_ready.set()

    def _algorithms(self) -> tuple[str, ...]:
        return tuple(self._remote.capabilities.checksum_algorithms) or ALGORITHMS

    def _cached_checksums(self, item: LocalItem) -> Checksums | None:
        """The hash cache's digests of the file as walked (same size, mtime, inode), if any."""
        if self._hash_cache is None:
            return None
        return self._hash_cache.get(
            str(item.path.absolute()),
            size=item.size,
            mtime_ns=item.mtime_ns,
            inode=item.inode,
            require=self._algorithms(),
        )

    async def _local_checksums(
        self, item: LocalItem, *, use_cache: bool = True
    ) -> tuple[Checksums, bytes | None, LocalItem]:
        """The file's digests (and its bytes, when small), and the item as it was when hashed: its
        size and mtime are what the upload later checks the file against (``FileSource``)."""
        cache, key = self._hash_cache, str(item.path.absolute())
        algorithms = self._algorithms()
        if use_cache and (cached := self._cached_checksums(item)) is not None:
            return cached, None, item
        checksums, st, data = await read_and_hash(
            item.path,
            buffer_size=self._config.buffer_size,
            limiter=self._hashers,
            inline_limit=self._config.buffer_size,
            parallel=self._config.hash_threads,
            algorithms=algorithms,
            size_hint=item.size,
            loop_limit=_INLINE_HASH_MAX,
        )
        if cache is not None and not self._config.dry_run:
            cache.put(key, mtime_ns=st.st_mtime_ns, inode=st.st_ino, checksums=checksums)
        if (item.size, item.mtime_ns, item.inode, item.device) == (
            st.st_size,
            st.st_mtime_ns,
            st.st_ino,
            st.st_dev,
        ):
            return checksums, data, item  # as walked (the usual case): no copy to make
        hashed = replace(item, size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino, device=st.st_dev)
        return checksums, data, hashed

    @staticmethod
    def _stamp(item: LocalItem) -> FileStamp:
        return FileStamp(item.size, item.mtime_ns)

    def _use_session(self, size: int) -> bool:
        return self._remote.capabilities.upload_sessions and size > self._config.chunk_size

    async def _defers_hash(self, job: _Job, item: LocalItem) -> bool:
        """Whether this file (its digests not cached) may go up before it is hashed: it takes an
        upload session, the server takes the sha256 at commit (``digest_at_commit``), and the
        destination cannot make it a skip whatever its hash (no file there, or one of another
        size). Hashing first would read the whole file serially before the first byte moves.
        A dry run always hashes: its report says what would be skipped."""
        if self._config.dry_run or not self._use_session(item.size):
            return False
        if not self._remote.capabilities.digest_at_commit:
            return False
        if job.index_ready is not None:
            await job.index_ready.wait()
            assert job.index is not None
            there = job.index.get(item.relpath)
            if there is not None and there.size == item.size:
                return False  # same size: only the hash can tell whether it is a skip
        return True

    async def _hash_deferred(self, item: LocalItem) -> Checksums:
        """Hash the whole file (on worker threads, under the ``_hashers`` limiter) for a session
        opened without its digest; the cache remembers the result like any other hash."""
        checksums, st = await hash_path(
            item.path,
            buffer_size=self._config.buffer_size,
            limiter=self._hashers,
            algorithms=self._algorithms(),
            parallel=self._config.hash_threads,
        )
        if FileStamp.of(st) != self._stamp(item):
            # The parts are read against the walk's stamp (FileSource): digests of another version
            # of the file would describe neither. The item-level retry hashes again, first.
            raise IntegrityError(f"{item.path} changed since it was listed; hashing it again")
        if self._hash_cache is not None:
            self._hash_cache.put(
                str(item.path.absolute()), mtime_ns=st.st_mtime_ns, inode=st.st_ino, checksums=checksums
            )
        return checksums

    async def _send_while_hashing(
        self, item: LocalItem, send: Callable[[], Awaitable[SessionState]]
    ) -> tuple[SessionState, Checksums]:
        """Send the parts while the file is hashed (sha256 at commit): the file is read twice, by
        different threads, as before, but the wall time is the longer of the two, not their sum."""
        hashed: list[Checksums] = []

        async def hash_file() -> None:
            hashed.append(await self._hash_deferred(item))

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(hash_file)
                session = await send()
        except BaseExceptionGroup as group:
            leaves = _leaves(group)
            # A changed file (from either side) goes to the item-level retry, which catches a
            # plain IntegrityError; any other single failure is raised as itself too.
            changed = [leaf for leaf in leaves if isinstance(leaf, IntegrityError)]
            if changed:
                raise changed[0] from group
            if len(leaves) == 1 and isinstance(leaves[0], Exception):
                raise leaves[0] from group
            raise
        return session, hashed[0]

    async def _push_one(self, job: _Job, item: LocalItem) -> None:
        config = self._config
        coordinator = self._coordinator(item.relpath, item.size)
        ref = FileRef(package=job.package, version=job.version, path=item.relpath)
        local_path = str(item.path)
        action = ""
        try:
            checksums = self._cached_checksums(item)
            data: bytes | None = None
            hashed = item
            if checksums is None and await self._defers_hash(job, item):
                use_session = True  # the sha256 goes with the commit: hashed while the parts go up
            else:
                if checksums is None:
                    checksums, data, hashed = await self._local_checksums(item, use_cache=False)
                if job.index_ready is not None:
                    await job.index_ready.wait()
                    assert job.index is not None
                    if compare(checksums, job.index.get(item.relpath)) is Verdict.IDENTICAL:
                        coordinator.finish(
                            Status.SKIPPED, action="identical", sha256=checksums.sha256, local_path=local_path
                        )
                        return
                use_session = self._use_session(checksums.size)
            action = "upload-session" if use_session else "upload"
            if config.dry_run:
                assert checksums is not None  # a dry run never defers the hash (_defers_hash)
                prior = job.journal.get(item.relpath)
                if use_session and prior is not None and prior.session_id:
                    action = "resume"  # from about prior.acked bytes; the server has the final word
                coordinator.finish(
                    Status.PLANNED, action=action, sha256=checksums.sha256, local_path=local_path
                )
                return
            coordinator.start()
            checksums, journaled = await self._upload(
                job, coordinator, hashed, ref, checksums, data, use_session
            )
            if journaled:
                # Only an upload session leaves a journal row (its id, its acked bytes) to close.
                # A whole-file PUT never wrote one: a re-run finds the file in the listing, so
                # two no-op statements per small file would be pure cost.
                job.journal.mark_done(item.relpath, sha256=checksums.sha256)
            coordinator.finish(Status.DONE, action=action, sha256=checksums.sha256, local_path=local_path)
        except Exception as exc:
            if not config.dry_run:
                job.journal.mark_failed(item.relpath, _describe(exc))
            await self._finish_with_error(coordinator, exc, action=action, local_path=local_path)
            if not _is_item_error(exc):
                raise
        except BaseException:
            if not coordinator.done:
                coordinator.cancel(action=action, local_path=local_path)
            raise

    async def _upload(
        self,
        job: _Job,
        coordinator: TransferCoordinator,
        item: LocalItem,
        ref: FileRef,
        checksums: Checksums | None,
        data: bytes | None,
        use_session: bool,
    ) -> tuple[Checksums, bool]:
        """Upload with item-level retries for integrity failures: the source changed (hash again)
        or the server assembled something else (new session). Returns the digests sent and
        whether any attempt went through an upload session (and so left a journal row).
        ``checksums`` None: not hashed yet, the session hashes while it sends (``_defers_hash``);
        a retry always hashes first."""
        size = item.size if checksums is None else checksums.size
        tracker = _ItemBytes(self.accounting, coordinator.path, size)
        started = False

        def report_start(resumed: int) -> None:
            nonlocal started
            if not started:
                started = True
                self.accounting.started(coordinator.path, tracker.expected, resumed=resumed)

        attempt = 0
        journaled = use_session
        while True:
            attempt += 1
            coordinator.attempts += 1
            journaled = journaled or use_session
            try:
                if use_session:
                    checksums = await self._upload_session(
                        job, coordinator, item, ref, checksums, tracker, report_start
                    )
                else:
                    assert checksums is not None  # only an upload session defers the hash
                    report_start(0)
                    await self._upload_whole(coordinator, item, ref, checksums, data, tracker)
                return checksums, journaled
            except IntegrityError as exc:
                tracker.rewind_all()
                if attempt >= self._policy.max_attempts:
                    raise
                self.accounting.retried(coordinator.path, attempt=attempt, delay=0.0, error=exc)
                # Hash (and stat) the file again: it may have changed size since the last attempt.
                checksums, data, item = await self._local_checksums(item, use_cache=False)
                tracker.expected = checksums.size
                use_session = self._use_session(checksums.size)

    async def _upload_whole(
        self,
        coordinator: TransferCoordinator,
        item: LocalItem,
        ref: FileRef,
        checksums: Checksums,
        data: bytes | None,
        tracker: _ItemBytes,
    ) -> None:
        buffer_size = self._config.buffer_size
        inner = (
            BytesSource(data, buffer_size=buffer_size)
            if data is not None
            else FileSource(
                item.path,
                length=checksums.size,
                buffer_size=buffer_size,
                expect=self._stamp(item),
                loop_limit=_INLINE_HASH_MAX,  # a cached file's digests, its bytes read on the loop
            )
        )
        source = CountingSource(inner, tracker.add, stall_timeout=self._config.stall_timeout)
        await self._call(
            coordinator,
            lambda: source.send(
                lambda: self._remote.put_file(
                    ref, source, checksums=checksums, overwrite=self._config.overwrite
                )
            ),
            on_rewind=lambda: tracker.add(-source.take_attempt_bytes()),
        )

    async def _open_session(
        self,
        job: _Job,
        coordinator: TransferCoordinator,
        ref: FileRef,
        item: LocalItem,
        checksums: Checksums | None,
    ) -> SessionState:
        """Resume the journal's session for this file when it still fits, else begin one (with no
        digest declared when ``checksums`` is None: the commit carries it)."""
        key = ref.path
        size = item.size if checksums is None else checksums.size
        # A session begun before the hash was known is tied to the file's stat stamp instead of
        # its sha256: a re-run of the unchanged file resumes it, a changed file starts another
        # (and the commit's digest check catches a change the stamp missed). The stamp form also
        # serves a re-run that finds the hash cached since: it is the same file.
        stamp = f"stamp:{item.size}:{item.mtime_ns}:{item.inode}"
        fingerprint = stamp
        if checksums is not None:
            prior = job.journal.get(key)
            if prior is None or prior.fingerprint != stamp:
                fingerprint = f"{checksums.size}:{checksums.sha256}"
        prior = job.journal.begin(key, fingerprint=fingerprint, size=size)
        if prior is not None and prior.session_id:
            session_id = prior.session_id
            try:
                return await self._call(coordinator, lambda: self._remote.resume_upload(ref, session_id))
            except HcError as exc:
                if classify(exc).retryable and not isinstance(exc, NotFound):
                    raise
                _log.debug(
                    "session %s for %s cannot be resumed (%s); starting a new one", session_id, key, exc
                )
        session = await self._call(
            coordinator, lambda: self._remote.begin_upload(ref, size=size, checksums=checksums)
        )
        job.journal.set_session(key, session.id)
        job.journal.flush()  # a session the journal forgets is an orphan on the server
        return session

    async def _upload_session(
        self,
        job: _Job,
        coordinator: TransferCoordinator,
        item: LocalItem,
        ref: FileRef,
        checksums: Checksums | None,
        tracker: _ItemBytes,
        report_start: Callable[[int], None],
    ) -> Checksums:
        """Upload through a session and return the digests committed. ``checksums`` None: the
        session declares none and the file is hashed while the parts go up (also on a resume,
        where only the missing parts are sent but the hash still reads the whole file)."""
        remote, config = self._remote, self._config
        session = await self._open_session(job, coordinator, ref, item, checksums)
        opened = session

        async def abort() -> None:
            job.journal.set_session(ref.path, None)
            await remote.abort_upload(ref, opened)

        # Registered where the session is created: a failed item does not leave it on the server.
        coordinator.add_failure_cleanup(abort)
        report_start(sum(part.length for part in normalize(_received(session))))
        caps = remote.capabilities
        part_size = clamp_part_size(
            tracker.expected,
            config.chunk_size,
            min_part=caps.min_part_size,
            max_part=caps.max_part_size,
            max_parts=_MAX_PARTS,
        )

        async def send() -> SessionState:
            if caps.parallel_parts and config.split > 1:
                return await self._send_parts_parallel(coordinator, item, ref, opened, part_size, tracker)
            return await self._send_parts_in_order(job, coordinator, item, ref, opened, part_size, tracker)

        try:
            if checksums is None:
                session, checksums = await self._send_while_hashing(item, send)
            else:
                session = await send()
            final, digests = session, checksums
            try:
                await self._call(
                    coordinator,
                    lambda: remote.commit_upload(ref, final, checksums=digests, overwrite=config.overwrite),
                )
            except NotFound:
                # A commit whose answer was lost (a gateway 502, a cut connection) is retried and
                # finds the session gone because it succeeded: the stored file says which it was.
                stored = await self._call(coordinator, lambda: remote.stat(ref))
                if stored is None or stored.size != digests.size or stored.sha256 != digests.sha256:
                    raise
        except IntegrityError:
            # The assembled bytes are wrong: this session is useless, the next attempt opens another.
            coordinator.discard_failure_cleanups()
            with anyio.CancelScope(shield=True):
                try:
                    await abort()
                except Exception as exc:
                    _log.debug("abort of %s failed: %s", ref, exc)
            raise
        coordinator.discard_failure_cleanups()
        return digests

    def _part_source(self, item: LocalItem, part: ByteRange, tracker: _ItemBytes) -> CountingSource:
        inner = FileSource(
            item.path,
            offset=part.start,
            length=part.length,
            buffer_size=self._config.buffer_size,
            expect=self._stamp(item),
        )
        return CountingSource(inner, tracker.add, stall_timeout=self._config.stall_timeout)

    async def _send_parts_in_order(
        self,
        job: _Job,
        coordinator: TransferCoordinator,
        item: LocalItem,
        ref: FileRef,
        session: SessionState,
        part_size: int,
        tracker: _ItemBytes,
    ) -> SessionState:
        """OCI-style: each part starts at the server's offset. After a failure the server is asked
        where it got to (a broken part may have been kept in part), so nothing is sent twice and
        nothing is skipped."""
        size = tracker.expected
        session_id = session.id  # constant for the session's life; its offset is what moves
        failures = 0
        while todo := remaining_upload(size, part_size, _received(session)):
            part = todo[0]
            source = self._part_source(item, part, tracker)
            try:
                await self._gate.wait()
                async with self._requests:
                    session = await source.send(
                        lambda: self._remote.put_part(ref, session, offset=part.start, source=source)  # noqa: B023
                    )
                failures = 0
                job.journal.set_acked(ref.path, session.offset)
            except Exception as exc:
                tracker.add(-source.take_attempt_bytes())
                failures += 1
                await self._backoff_or_raise(coordinator, exc, failures)
                session = await self._call(coordinator, lambda: self._remote.resume_upload(ref, session_id))
                # Whatever of the broken part the server kept will not be sent again: count it.
                tracker.add(max(0, min(session.offset, part.end) - part.start))
        return session

    async def _send_parts_parallel(
        self,
        coordinator: TransferCoordinator,
        item: LocalItem,
        ref: FileRef,
        session: SessionState,
        part_size: int,
        tracker: _ItemBytes,
    ) -> SessionState:
        """For servers that take parts at any offset: up to ``split`` parts in flight (each holding
        a request token), then ask the server what it holds and fill any hole in another round."""
        session_id = session.id
        for _ in range(self._policy.max_attempts):
            todo = remaining_upload(tracker.expected, part_size, _received(session))
            if not todo:
                return session
            pending = iter(todo)
            try:
                async with anyio.create_task_group() as tg:
                    for _ in range(min(self._config.split, len(todo))):
                        tg.start_soon(self._part_sender, coordinator, item, ref, session, pending, tracker)
            except BaseExceptionGroup as group:
                # A part found the file changed: the item-level retry (hash again, new session)
                # catches a plain IntegrityError, not one wrapped in the task group's error.
                changed = [leaf for leaf in _leaves(group) if isinstance(leaf, IntegrityError)]
                if changed:
                    raise changed[0] from group
                raise
            session = await self._call(coordinator, lambda: self._remote.resume_upload(ref, session_id))
        if remaining_upload(tracker.expected, part_size, _received(session)):
            raise TransientError(f"{item.relpath}: the server still lacks parts after every retry")
        return session

    async def _part_sender(
        self,
        coordinator: TransferCoordinator,
        item: LocalItem,
        ref: FileRef,
        session: SessionState,
        pending: Iterator[ByteRange],
        tracker: _ItemBytes,
    ) -> None:
        for part in pending:  # a shared iterator: each part goes to exactly one sender
            source = self._part_source(item, part, tracker)
            await self._call(
                coordinator,
                lambda: source.send(  # noqa: B023
                    lambda: self._remote.put_part(ref, session, offset=part.start, source=source)  # noqa: B023
                ),
                on_rewind=lambda: tracker.add(-source.take_attempt_bytes()),  # noqa: B023
            )

    # --- copy ---------------------------------------------------------------------------------

    async def _destination_index(self, job: _Job, package: str, version: str) -> DestinationIndex:
        assert job.indexes is not None

        async def fetch() -> DestinationIndex:
            index = DestinationIndex()
            try:
                async for entry in self._remote.list_files(package, version):
                    index.add(entry.path, entry)
            except NotFound:
                pass
            return index

        return await job.indexes.get(
            (package, version),
            lambda: call_with_retries(fetch, self._policy, gate=self._gate, draw=self._draw),
        )

    async def _copy_one(self, job: _Job, item: CopyPair) -> None:
        config = self._config
        entry, where = item.source, item.destination
        label = _location_text(where)
        coordinator = self._coordinator(label, entry.size)
        action = "copy"
        try:
            if not config.overwrite:
                index = await self._destination_index(job, where.package, where.version)
                if compare(entry, index.get(where.path)) is Verdict.IDENTICAL:
                    coordinator.finish(Status.SKIPPED, action="identical", sha256=entry.sha256)
                    return
            if config.dry_run:
                coordinator.finish(Status.PLANNED, action=action, sha256=entry.sha256)
                return
            coordinator.start()
            job.journal.begin(label, fingerprint=self._fingerprint(entry), size=entry.size)
            sha256 = await self._copy_bytes(job, coordinator, entry, where, label)
            job.journal.mark_done(label, sha256=sha256)
            coordinator.finish(Status.DONE, action=action, sha256=sha256)
        except Exception as exc:
            if not config.dry_run:
                job.journal.mark_failed(label, _describe(exc))
            await self._finish_with_error(coordinator, exc, action=action, local_path=None)
            if not _is_item_error(exc):
                raise
        except BaseException:
            if not coordinator.done:
                coordinator.cancel(action=action)
            raise

    async def _hash_source(
        self, coordinator: TransferCoordinator, source: Remote, entry: FileEntry, label: str
    ) -> FileEntry:
        """Read a source file once to learn its sha256 (its listing gave none)."""
        streamed = _StreamedSource(
            source, entry, label=label, stall_timeout=self._config.stall_timeout, hashers=self._hashers
        )

        async def read_all() -> Checksums:
            hasher = MultiHasher(("sha256",))  # a fresh one per attempt
            async for chunk in streamed.open():
                hasher.update(chunk)
            return hasher.result()

        digests = await self._call(coordinator, read_all)
        return RemoteFile(
            package=entry.package,
            version=entry.version,
            path=entry.path,
            size=entry.size,
            sha256=digests.sha256,
            md5=entry.md5,
            sha1=entry.sha1,
            sha512=entry.sha512,
        )

    async def _copy_bytes(
        self, job: _Job, coordinator: TransferCoordinator, entry: FileEntry, where: FileLocation, label: str
    ) -> str:
        source = job.source
        assert source is not None
        tracker = _ItemBytes(self.accounting, coordinator.path, entry.size)
        self.accounting.started(coordinator.path, entry.size)
        attempt = 0
        while True:
            attempt += 1
            coordinator.attempts += 1
            try:
                if not entry.sha256:
                    entry = await self._hash_source(coordinator, source, entry, label)
                sha256 = await self._copy_attempt(coordinator, source, entry, where, label, tracker)
                if job.verify_destination:
                    await self._verify_destination(coordinator, entry, where, label)
                return sha256
            except IntegrityError as exc:
                tracker.rewind_all()
                if attempt >= self._policy.max_attempts:
                    raise
                self.accounting.retried(coordinator.path, attempt=attempt, delay=0.0, error=exc)

    async def _copy_attempt(
        self,
        coordinator: TransferCoordinator,
        source: Remote,
        entry: FileEntry,
        where: FileLocation,
        label: str,
        tracker: _ItemBytes,
    ) -> str:
        """One streamed GET → PUT (with request-level retries, each a fresh GET)."""
        checksums = _source_checksums(entry)
        assert checksums is not None
        streamed = _StreamedSource(
            source, entry, label=label, stall_timeout=self._config.stall_timeout, hashers=self._hashers
        )
        counted = CountingSource(streamed, tracker.add)

        async def put() -> None:
            try:
                await self._remote.put_file(
                    where, counted, checksums=checksums, overwrite=self._config.overwrite
                )
            except Exception as exc:
                # The body's own error (the source broke or lied) explains the failure better
                # than the half-sent request it caused.
                failure = streamed.failure
                if failure is not None and failure is not exc:
                    raise failure from exc
                raise

        await self._call(coordinator, put, on_rewind=lambda: tracker.add(-counted.take_attempt_bytes()))
        return checksums.sha256

    async def _verify_destination(
        self, coordinator: TransferCoordinator, entry: FileEntry, where: FileLocation, label: str
    ) -> None:
        found = await self._call(coordinator, lambda: self._remote.stat(where))
        if found is None:
            raise IntegrityError(f"{label}: the destination does not show the file after the upload")
        if found.size != entry.size:
            raise IntegrityError(
                f"{label}: the destination holds {found.size} bytes, the source {entry.size}"
            )
        want = (entry.sha256 or "").lower()
        if found.sha256 and want and found.sha256.lower() != want:
            raise IntegrityError(
                f"{label}: sha256 mismatch at the destination ({found.sha256}, expected {want})"
            )

    # --- pull ---------------------------------------------------------------------------------

    async def _pull_one(
        self, job: _Job, item: _PullItem, tree: _DestinationTree, writer: BatchWriter
    ) -> None:
        config = self._config
        entry, name = item.entry, item.name
        coordinator = self._coordinator(name, entry.size)
        action = ""
        local_path: str | None = None
        relpath = name
        try:
            relpath = item.relpath if item.relpath is not None else sanitize_relpath(name)
            # On the loop: a stat or two of the local tree cost less than a thread hop, and the
            # per-file overhead is what limits a pull of many small files.
            # A small file has no resume state (no journal row, its .part is rewritten whole).
            where = tree.inspect(relpath, part=entry.size > config.buffer_size)
            local_path = str(where.final)
            if where.final_stat is not None and stat.S_ISDIR(where.final_stat.st_mode):
                raise IsADirectoryError(21, "a directory is in the way", str(where.final))
            if where.final_stat is not None and not config.overwrite:
                local = await self._existing_checksums(where.final, where.final_stat, entry)
                if compare(local, entry) is Verdict.IDENTICAL:
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
                job.journal.mark_failed(relpath, _describe(exc))
            await self._finish_with_error(
                coordinator, exc, action=action or "download", local_path=local_path
            )
            if not _is_item_error(exc):
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

    @staticmethod
    def _wanted_algorithms(entry: FileEntry) -> tuple[str, ...]:
        return ("sha256", "md5") if entry.md5 and not entry.sha256 else ("sha256",)

    async def _existing_checksums(self, path: Path, st: os.stat_result, entry: FileEntry) -> Checksums:
        algorithms = self._wanted_algorithms(entry)
        cache, key = self._hash_cache, str(path)
        if cache is not None:
            cached = cache.get(
                key, size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino, require=algorithms
            )
            if cached is not None:
                return cached
        checksums, st = await hash_path(
            path, buffer_size=self._config.buffer_size, limiter=self._hashers, algorithms=algorithms
        )
        if cache is not None and not self._config.dry_run:
            cache.put(key, mtime_ns=st.st_mtime_ns, inode=st.st_ino, checksums=checksums)
        return checksums

    def _resume_state(
        self, job: _Job, relpath: str, prior: JournalEntry | None, where: _Destination, entry: FileEntry
    ) -> tuple[list[ByteRange], dict[int, int]] | None:
        """Journal ∩ disk ∩ server: a resumable plan needs the journal's plan for this exact source
        (fingerprint), the ``.part`` it describes still on disk at full size, and a server that
        honours ranges (If-Range then guards against the file having changed there)."""
        if prior is None or prior.part_path != str(where.part) or where.part_stat is None:
            return None
        if prior.fingerprint != self._fingerprint(entry) or not self._remote.capabilities.ranged_reads:
            return None
        if where.part_stat.st_size != entry.size:
            return None
        ranges, progress = job.journal.download_plan(relpath)
        if not ranges or ranges[-1].end != entry.size:
            return None
        return ranges, progress

    @staticmethod
    def _fingerprint(entry: FileEntry) -> str:
        return f"{entry.size}:{entry.sha256 or entry.md5 or ''}"

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
        self, job: _Job, coordinator: TransferCoordinator, entry: FileEntry, relpath: str, where: _Destination
    ) -> tuple[Checksums, str]:
        """Fetch into ``.part``, verify, rename. A verification failure deletes the ``.part`` and
        starts again from zero, up to ``max_attempts`` times; the final name only ever holds
        verified bytes."""
        tracker = _ItemBytes(self.accounting, coordinator.path, entry.size)
        fingerprint = self._fingerprint(entry)
        started = False
        attempt = 0
        action = "download"

        async def remove_partial() -> None:
            # Keep the .part when the failure may pass (server down): the next run resumes it.
            failure = coordinator.exception
            if (
                failure is not None
                and classify(failure).retryable
                and not isinstance(_leaf(failure), IntegrityError)
            ):
                return
            job.journal.reset(relpath)
            await anyio.to_thread.run_sync(lambda: where.part.unlink(missing_ok=True))

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
                    job, coordinator, entry, relpath, where.part, ranges, progress, tracker
                )
                self._verify(relpath, entry, checksums)
            except IntegrityError as exc:
                tracker.rewind_all()
                job.journal.reset(relpath)
                await anyio.to_thread.run_sync(lambda: where.part.unlink(missing_ok=True))
                if attempt >= self._policy.max_attempts:
                    raise
                self.accounting.retried(coordinator.path, attempt=attempt, delay=0.0, error=exc)
                continue
            final_stat = await anyio.to_thread.run_sync(self._promote, where.part, where.final)
            self._remember(where.final, final_stat, checksums)
            coordinator.discard_failure_cleanups()
            return checksums, action

    def _remember(self, path: Path, st: os.stat_result, checksums: Checksums) -> None:
        """Cache the digests of a file we just verified, so the next run's skip check is free."""
        if self._hash_cache is not None:
            self._hash_cache.put(
                str(path), mtime_ns=st.st_mtime_ns, inode=st.st_ino, checksums=checksums, trust_recent=True
            )

    @staticmethod
    def _promote(part: Path, final: Path) -> os.stat_result:
        os.replace(part, final)
        fsync_directory(final.parent)
        return os.stat(final)

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
        tracker = _ItemBytes(self.accounting, coordinator.path, entry.size)
        algorithms = self._wanted_algorithms(entry)
        self.accounting.started(coordinator.path, entry.size, resumed=0)
        attempt = 0
        while True:
            attempt += 1
            coordinator.attempts += 1
            try:
                body = await self._fetch_small(coordinator, entry, relpath, tracker)
                hasher = MultiHasher(algorithms)
                if len(body) > _INLINE_HASH_MAX:
                    await anyio.to_thread.run_sync(hasher.update, body, limiter=self._hashers)
                else:
                    hasher.update(body)  # tens of microseconds: cheaper than a thread hop
                checksums = hasher.result()
                self._verify(relpath, entry, checksums)
            except IntegrityError as exc:  # a corrupt or short body (or one the server cut): again
                tracker.rewind_all()
                if attempt >= self._policy.max_attempts:
                    raise
                self.accounting.retried(coordinator.path, attempt=attempt, delay=0.0, error=exc)
                continue
            await writer.submit(
                where.part, where.final, body, self._small_written(coordinator, where, checksums, local_path)
            )
            return

    def _small_written(
        self, coordinator: TransferCoordinator, where: _Destination, checksums: Checksums, local_path: str
    ) -> OnWritten:
        async def on_done(final_stat: os.stat_result | None, error: OSError | None) -> None:
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
        self, coordinator: TransferCoordinator, entry: FileEntry, relpath: str, tracker: _ItemBytes
    ) -> bytes:
        failures = 0
        while True:
            try:
                await self._gate.wait()
                body = bytearray()
                limiter = self._requests
                await _take(limiter)
                try:
                    async with self._remote.open_read(entry) as stream:
                        if stream.total_size is not None and stream.total_size != entry.size:
                            raise IntegrityError(
                                f"{relpath} changed on the server"
                                f" ({stream.total_size} bytes, listed as {entry.size})"
                            )
                        # One deadline for the whole (small) body, not one per chunk: cancel scopes
                        # cost more than the bytes here.
                        with anyio.fail_after(self._config.stall_timeout):
                            async for chunk in stream:
                                body += chunk
                                if len(body) > entry.size:  # one byte more than listed is enough to know
                                    break
                finally:
                    limiter.release()
                if len(body) < entry.size:
                    raise TransientError(
                        f"{relpath}: the download ended early at byte {len(body)} of {entry.size}"
                    )
                tracker.add(len(body))
                return bytes(body)
            except Exception as exc:
                failures += 1
                await self._backoff_or_raise(coordinator, exc, failures)

    @staticmethod
    def _verify(relpath: str, entry: FileEntry, checksums: Checksums) -> None:
        if checksums.size != entry.size:
            raise IntegrityError(f"{relpath}: expected {entry.size} bytes, received {checksums.size}")
        for algorithm in ("sha256", "md5"):
            want = getattr(entry, algorithm)
            if want:
                have = checksums.get(algorithm)
                if have != want.strip().lower():
                    raise IntegrityError(
                        f"{relpath}: {algorithm} mismatch (expected {want}, received {have})"
                    )
                return

    async def _fetch(
        self,
        job: _Job,
        coordinator: TransferCoordinator,
        entry: FileEntry,
        relpath: str,
        part: Path,
        ranges: Sequence[ByteRange],
        progress: dict[int, int],
        tracker: _ItemBytes,
    ) -> Checksums:
        size = entry.size

        def open_part() -> int:
            part.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(part, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            try:
                if os.fstat(fd).st_size != size:
                    os.ftruncate(fd, size)  # full length up front: ranges are written in place
            except BaseException:
                os.close(fd)
                raise
            return fd

        algorithms = self._wanted_algorithms(entry)
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
        finally:
            await anyio.to_thread.run_sync(os.close, fd)
        if inline is not None and inline.size == size:
            return inline.result()
        # Larger reads than the transfer buffer: the bytes are in the page cache, the cost is per hop.
        checksums, _ = await hash_path(
            part, buffer_size=4 * self._config.buffer_size, limiter=self._hashers, algorithms=algorithms
        )
        return checksums

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
        step = 4 * self._config.buffer_size
        offset = 0

        def hash_at(position: int, length: int) -> int:
            data = os.pread(fd, length, position)
            hasher.update(data)
            return len(data)

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
                hash_at, offset, min(step, end - offset), limiter=self._hashers
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
        tracker: _ItemBytes,
        job: _Job,
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
                        # Chunks are gathered in a list and written with one pwritev per batch: no
                        # copy into a staging buffer, one thread hop per batch.
                        pending: list[bytes] = []
                        pending_size = 0
                        chunks = aiter(stream)
                        # One stall watchdog for the stream, pushed back as bytes arrive (a cancel
                        # scope per chunk cost more than the chunk's bytes).
                        armed = anyio.current_time()
                        with anyio.CancelScope(deadline=armed + config.stall_timeout) as watchdog:
                            while position + pending_size < whole.end:
                                chunk = await anext(chunks, None)
                                if chunk is None:
                                    break
                                now = anyio.current_time()
                                if now - armed > config.stall_timeout / 8:
                                    armed, watchdog.deadline = now, now + config.stall_timeout
                                if skip:  # the server ignored Range: drop what we already have
                                    dropped = min(skip, len(chunk))
                                    chunk, skip = chunk[dropped:], skip - dropped
                                room = whole.end - position - pending_size
                                if len(chunk) > room:
                                    chunk = chunk[:room]
                                if not chunk:
                                    continue
                                pending.append(chunk)
                                pending_size += len(chunk)
                                if pending_size >= batch or position + pending_size >= whole.end:
                                    await anyio.to_thread.run_sync(
                                        _write_range_batch, fd, pending, position, hasher
                                    )
                                    position += pending_size
                                    tracker.add(pending_size)
                                    pending, pending_size = [], 0
                                    if written is not None:
                                        written[index] = position
                                    made_progress = True
                                    if position - recorded >= record_every:
                                        await record()
                        if watchdog.cancelled_caught:
                            raise TimeoutError(
                                f"{relpath}: no data for {config.stall_timeout:g} s (at byte {position})"
                            )
                        if pending:
                            await anyio.to_thread.run_sync(_write_range_batch, fd, pending, position, hasher)
                            position += pending_size
                            tracker.add(pending_size)
                            if written is not None:
                                written[index] = position
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
