"""What the three directions of a transfer share: limits, the job driver, retries, item errors.

``TransferManager`` (manager.py) is ``PushSide`` + ``PullSide`` + ``CopySide``, each a subclass of
``EngineCore`` in its own module. Why subclasses rather than three helper objects: every
direction's item code reads the same few things of one manager (its remote, config, accounting,
request and hash limiters, rate gate, journal, hash cache) and calls the same retry helpers, on
every item. As one base class those stay plain attributes, the hot per-file paths keep no extra
indirection, and each module holds one direction.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from hc.errors import HcError, IntegrityError, RetryKind, TransientError
from hc.protocol.digest import ALGORITHMS, Checksums
from hc.transfer.accounting import Accounting
from hc.transfer.config import TransferConfig
from hc.transfer.coordinator import TransferCoordinator
from hc.transfer.hashcache import HashCache
from hc.transfer.journal import Journal
from hc.transfer.march import DestinationIndex
from hc.transfer.pacer import Decision, RateGate, RetryEvent, call_with_retries, classify, failing_for
from hc.transfer.remote import FileEntry, Remote
from hc.transfer.results import Summary

if TYPE_CHECKING:  # a copy job's field; the copy side imports this module
    from hc.transfer._copying import IndexCache


T = TypeVar("T")
R = TypeVar("R")

#: How often the journal's progress reaches disk: what a SIGKILL can cost a download is at most
#: this long of its throughput (0.1 s ≈ 20 MiB at loopback speed), for one cheap WAL commit.
_FLUSH_INTERVAL: Final = 0.1

ITEM_ERRORS: Final = (HcError, OSError, anyio.BrokenResourceError, anyio.EndOfStream)


#: Chunks at least this big are hashed on a worker thread (the loop keeps moving other streams).
THREAD_HASH_MIN: Final = 128 * 1024
#: Files up to this size go by batch read or write where the remote offers it. Each waits in
#: memory, whole, while its batch gathers and travels, so this times the workers bounds that memory.
BATCH_ITEM_MAX: Final = 256 * 1024
#: Workers added when the remote batches small files (three per unit of concurrency, up to this):
#: items waiting in a batch each hold a worker, and the client only keeps busy while a batch
#: travels if other workers prepare the next one.
BATCH_WORKERS: Final = 96
#: A small file up to this size (a download's body, a local file to upload) is read and hashed on
#: the loop: tens of microseconds, less than a thread hop.
INLINE_HASH_MAX: Final = 64 * 1024


def wanted_algorithms(entry: FileEntry) -> tuple[str, ...]:
    return ("sha256", "md5") if entry.md5 and not entry.sha256 else ("sha256",)


def source_fingerprint(entry: FileEntry) -> str:
    """What a journal row remembers of the file it is about: a changed source is a new plan."""
    return f"{entry.size}:{entry.sha256 or entry.md5 or ''}"


def verify_checksums(relpath: str, entry: FileEntry, checksums: Checksums) -> None:
    if checksums.size != entry.size:
        raise IntegrityError(f"{relpath}: expected {entry.size} bytes, received {checksums.size}")
    for algorithm in ("sha256", "md5"):
        want = getattr(entry, algorithm)
        if want:
            have = checksums.get(algorithm)
            if have != want.strip().lower():
                raise IntegrityError(f"{relpath}: {algorithm} mismatch (expected {want}, received {have})")
            return


def leaf_error(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups, for a one-line item message."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def leaf_errors(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaf_errors(inner)]
    return [exc]


def is_item_error(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(is_item_error(inner) for inner in exc.exceptions)
    return isinstance(exc, ITEM_ERRORS)


def describe_error(exc: BaseException) -> str:
    exc = leaf_error(exc)
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
    if isinstance(leaf_error(exc), IntegrityError):
        return Decision(RetryKind.FATAL)
    return decision


async def as_async_iter(items: AsyncIterable[T] | Iterable[T]) -> AsyncIterator[T]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


class ItemBytes:
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
class Job:
    journal: Journal
    package: str = ""
    version: str = ""
    dest: Path | None = None
    target: Callable[[FileEntry], str] | None = None
    index: DestinationIndex | None = None
    index_ready: anyio.Event | None = None
    #: copy: where the bytes come from, and the destination listings loaded so far
    source: Remote | None = None
    indexes: IndexCache | None = None
    verify_destination: bool = False


async def take_token(limiter: anyio.CapacityLimiter) -> None:
    """Acquire a token; a free one is taken without the scheduling round trip that ``async with``
    makes (an event-loop pass per request, which adds up over thousands of small files)."""
    try:
        limiter.acquire_nowait()
    except anyio.WouldBlock:
        await limiter.acquire()


class EngineCore:
    """What every direction shares: the remote, the limits, the job driver, retries."""

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

    # --- the job driver -----------------------------------------------------------------------

    async def _run(
        self,
        job: Job,
        items: AsyncIterable[T] | Iterable[T],
        *,
        describe: Callable[[T], tuple[str, int]],
        handle: Callable[[Job, T], Awaitable[None]],
        setup: Callable[[anyio.abc.TaskGroup], Awaitable[None]] | None = None,
    ) -> Summary:
        config = self._config
        send, receive = anyio.create_memory_object_stream[T](config.backlog)
        workers = config.concurrency + config.hash_threads
        if self._batch_limit(read=True) or self._batch_limit(read=False):
            workers += min(BATCH_WORKERS, 3 * config.concurrency)
        self.accounting.start()

        # The queue is used without a checkpoint when it can be: anyio's send() and receive() each
        # yield to the loop first, two loop passes per item (in-process, a 4 KiB pull cost 184 µs
        # of CPU per file with them, 142 µs without; a push 142 → 128). handle() yields anyway,
        # except for items it settles at once (a skip from the hash cache); a worker that meets
        # only those still yields when the queue runs dry, so at most ``backlog`` items go by
        # between two turns of the loop (Ctrl-C, progress, the journal flush).
        async def feed() -> None:
            async with send:
                async for item in as_async_iter(items):
                    path, size = describe(item)
                    self.accounting.queued(path, size)
                    try:
                        send.send_nowait(item)
                    except anyio.WouldBlock:
                        await send.send(item)

        async def work(stream: MemoryObjectReceiveStream[T]) -> None:
            async with stream:
                while True:
                    try:
                        item = stream.receive_nowait()
                    except anyio.WouldBlock:
                        try:
                            item = await stream.receive()
                        except anyio.EndOfStream:
                            return
                    except anyio.EndOfStream:
                        return
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
            leaves = leaf_errors(group)
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
        message = describe_error(exc)
        if coordinator.attempts > 1 and isinstance(leaf_error(exc), TransientError | IntegrityError):
            message = f"{message} (gave up after {coordinator.attempts} attempts)"
        await coordinator.fail(leaf_error(exc), message=message, action=action, local_path=local_path)

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
        token: bool = True,
    ) -> R:
        """One remote operation with retries; holds a request token only while the request runs.
        ``token=False`` for an operation that is not a request of its own (one file of a batch:
        the batch's requests are bounded by the remote)."""

        async def attempt() -> R:
            limiter = self._requests
            await take_token(limiter)
            try:
                return await fn()
            finally:
                limiter.release()

        return await call_with_retries(
            attempt if token else fn,
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

    def _batch_limit(self, *, read: bool) -> int:
        """Files up to this size go by batch read (or write); 0: none do."""
        if not self._config.batch:
            return 0
        caps = self._remote.capabilities
        return min(caps.batch_read_max_size if read else caps.batch_write_max_size, BATCH_ITEM_MAX)

    def _algorithms(self) -> tuple[str, ...]:
        return tuple(self._remote.capabilities.checksum_algorithms) or ALGORITHMS
