"""How much happened: item and byte counters, rate, ETA and errors, published as events.

Accounting never prints. Subscribers (the CLI's tqdm sink, a ``--results`` JSONL writer, tests)
receive small immutable events on the event-loop thread. Byte counts are *signed deltas*: when an
attempt fails after sending part of a body, the engine reports the bytes it is about to send again
as a negative delta, so a progress bar rewinds instead of overshooting 100 %.

Totals grow as items stream in (``ItemQueued``), because a job never materialises its item list;
a skipped item, or the part of a download already on disk, is taken back out of the byte total.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from hc.transfer.results import ItemResult, Status, Summary

__all__ = [
    "Accounting",
    "BytesMoved",
    "Event",
    "ItemFinished",
    "ItemQueued",
    "ItemRetried",
    "ItemStarted",
    "Stats",
]


@dataclass(frozen=True, slots=True)
class ItemQueued:
    path: str
    size: int


@dataclass(frozen=True, slots=True)
class ItemStarted:
    path: str
    size: int
    #: bytes already in place from an earlier run (a resumed download or upload session)
    resumed: int = 0


@dataclass(frozen=True, slots=True)
class BytesMoved:
    path: str
    delta: int


@dataclass(frozen=True, slots=True)
class ItemRetried:
    path: str
    attempt: int
    delay: float
    error: str


@dataclass(frozen=True, slots=True)
class ItemFinished:
    result: ItemResult


Event = ItemQueued | ItemStarted | BytesMoved | ItemRetried | ItemFinished


@dataclass(frozen=True, slots=True, kw_only=True)
class Stats:
    """A snapshot for a progress display."""

    items_queued: int
    items_finished: int
    items_failed: int
    bytes_done: int
    bytes_total: int
    elapsed: float
    rate: float
    eta: float | None
    retries: int


class Accounting:
    """Counters for one job. Not thread-safe: call it from the event loop only."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        rate_window: float = 10.0,
        keep_failures: int = 100,
    ) -> None:
        self._clock = clock
        self._rate_window = rate_window
        self._keep_failures = keep_failures
        self._subscribers: list[Callable[[Event], None]] = []
        self._started_at: float | None = None
        self._finished_at: float | None = None
        self._samples: deque[tuple[float, int]] = deque()
        self.items_queued = 0
        self.bytes_total = 0
        self.bytes_done = 0
        self.retries = 0
        self.counts: dict[Status, int] = dict.fromkeys(Status, 0)
        # path → [bytes resumed, bytes moved] for items started and not finished yet
        self._inflight: dict[str, list[int]] = {}
        #: the first ``keep_failures`` failed items, for the end-of-run report
        self.failures: list[ItemResult] = []

    # --- subscriptions ------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` with every event from now on; returns a function that unsubscribes."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _emit(self, event: Event) -> None:
        for callback in tuple(self._subscribers):
            callback(event)

    # --- what the engine reports --------------------------------------------------------------

    def start(self) -> None:
        if self._started_at is None:
            self._started_at = self._clock()
            self._samples.append((self._started_at, 0))
        self._finished_at = None

    def stop(self) -> None:
        self._finished_at = self._clock()

    def queued(self, path: str, size: int) -> None:
        self.start()
        self.items_queued += 1
        self.bytes_total += size
        self._emit(ItemQueued(path, size))

    def started(self, path: str, size: int, *, resumed: int = 0) -> None:
        """An item starts moving bytes; ``resumed`` bytes were already in place from an earlier run."""
        self.bytes_total -= resumed
        self._inflight[path] = [resumed, 0]
        self._emit(ItemStarted(path, size, resumed))

    def moved(self, path: str, delta: int) -> None:
        """``delta`` more bytes of ``path`` went over the wire (negative: they will be sent again)."""
        if delta == 0:
            return
        self.bytes_done += delta
        if (record := self._inflight.get(path)) is not None:
            record[1] += delta
        now = self._clock()
        if not self._samples or now - self._samples[-1][0] >= 0.25:
            self._samples.append((now, self.bytes_done))
            while len(self._samples) > 2 and now - self._samples[1][0] > self._rate_window:
                self._samples.popleft()
        self._emit(BytesMoved(path, delta))

    def retried(self, path: str, *, attempt: int, delay: float, error: BaseException) -> None:
        self.retries += 1
        self._emit(ItemRetried(path, attempt, delay, str(error) or type(error).__name__))

    def finished(self, result: ItemResult) -> None:
        resumed, moved = self._inflight.pop(result.path, (0, 0))
        self.counts[result.status] += 1
        if result.status in (Status.SKIPPED, Status.PLANNED):
            self.bytes_total -= result.size
        elif result.status is Status.FAILED:
            # A failed item delivered nothing usable: its bytes leave both the count and the total.
            self.bytes_total -= result.size - resumed
            if moved:
                self.moved(result.path, -moved)
        elif result.status is Status.CANCELLED:
            # What reached the disk or the server stays done (a re-run resumes from it).
            self.bytes_total -= max(0, result.size - resumed - moved)
        if result.status is Status.FAILED and len(self.failures) < self._keep_failures:
            self.failures.append(result)
        self._emit(ItemFinished(result))

    # --- what a display or the CLI reads ------------------------------------------------------

    def elapsed(self) -> float:
        if self._started_at is None:
            return 0.0
        end = self._finished_at if self._finished_at is not None else self._clock()
        return max(0.0, end - self._started_at)

    def rate(self) -> float:
        """Bytes per second over the last ``rate_window`` seconds."""
        if not self._samples:
            return 0.0
        now = self._clock() if self._finished_at is None else self._finished_at
        first_t, first_bytes = self._samples[0]
        span = now - first_t
        return (self.bytes_done - first_bytes) / span if span > 0 else 0.0

    def snapshot(self) -> Stats:
        rate = self.rate()
        remaining = max(0, self.bytes_total - self.bytes_done)
        finished = sum(n for status, n in self.counts.items() if status.final)
        return Stats(
            items_queued=self.items_queued,
            items_finished=finished,
            items_failed=self.counts[Status.FAILED],
            bytes_done=self.bytes_done,
            bytes_total=self.bytes_total,
            elapsed=self.elapsed(),
            rate=rate,
            eta=remaining / rate if rate > 0 else None,
            retries=self.retries,
        )

    def summary(self) -> Summary:
        return Summary(
            succeeded=self.counts[Status.DONE],
            skipped=self.counts[Status.SKIPPED],
            failed=self.counts[Status.FAILED],
            cancelled=self.counts[Status.CANCELLED],
            planned=self.counts[Status.PLANNED],
            bytes=self.bytes_done,
            seconds=self.elapsed(),
        )
