"""The engine's retry loop: applies ``hc.protocol.retry``'s policy with a shared rate gate.

Decisions and backoff are pure (``hc.protocol.retry``, re-exported here); this module adds what
needs a clock and a loop: ``RateGate`` (one Retry-After pauses every request of a job),
``call_with_retries`` and ``failing_for`` (for hand-written loops that resume streams).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final, TypeVar

import anyio

from hc.errors import RetryKind
from hc.protocol.headers import parse_retry_after
from hc.protocol.retry import FATAL, OUTAGE, RETRY, Backoff, Decision, RetryPolicy
from hc.protocol.retry import classify as _classify

__all__ = [
    "FATAL",
    "OUTAGE",
    "RETRY",
    "Backoff",
    "Decision",
    "RateGate",
    "RetryEvent",
    "RetryPolicy",
    "call_with_retries",
    "classify",
    "failing_for",
    "parse_retry_after",
]

T = TypeVar("T")


def classify(exc: BaseException) -> Decision:
    """``hc.protocol.retry.classify``, plus the errors anyio itself raises (fail_after, a stream
    torn down under us), which mean the connection failed."""
    return _classify(exc, outages=_RUNTIME_OUTAGES)


_RUNTIME_OUTAGES: Final = (TimeoutError, ConnectionError, anyio.BrokenResourceError, anyio.EndOfStream)


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """Reported before each wait: ``attempt`` attempts have failed, the next starts after ``delay``."""

    attempt: int
    delay: float
    error: BaseException


class RateGate:
    """A shared "not before" instant: one Retry-After pauses every request, not only the one that
    got the 429, so a rate-limited server sees the whole job back off (rclone's pacer does the same)."""

    __slots__ = ("_clock", "_not_before")

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._not_before = -math.inf

    def hold(self, seconds: float) -> None:
        self._not_before = max(self._not_before, self._clock() + max(seconds, 0.0))

    def remaining(self) -> float:
        return max(0.0, self._not_before - self._clock())

    async def wait(self) -> None:
        # Check again after sleeping: another request may have extended the hold meanwhile.
        delay = self.remaining()
        while delay > 0:
            await anyio.sleep(delay)
            delay = self.remaining()


#: When the current run of failures of a hand-written retry loop began, per task (see failing_for).
_streak_start: ContextVar[float | None] = ContextVar("hc_retry_streak_start", default=None)


def failing_for(failures: int, *, clock: Callable[[], float] = time.monotonic) -> float:
    """Seconds since the first of ``failures`` consecutive failures, for retry loops that count
    their own failures (streams that resume where they stopped) and so have no loop-local clock:
    ``failures == 1`` starts a run. The start is kept in a ContextVar, i.e. per task: a task runs
    one such loop at a time, and the value dies with the task."""
    now = clock()
    start = _streak_start.get()
    if failures <= 1 or start is None:
        _streak_start.set(now)
        return 0.0
    return now - start


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[RetryEvent], None] | None = None,
    gate: RateGate | None = None,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    draw: Callable[[], float] = random.random,
    classify_error: Callable[[BaseException], Decision] = classify,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``fn`` until it succeeds, fails fatally, or the policy gives up; re-raise the last error.

    Cancellation is never swallowed: only ``Exception`` is caught, and anyio's cancellation is a
    ``BaseException`` on asyncio.
    """
    attempt = 0
    first_failure: float | None = None
    while True:
        attempt += 1
        if gate is not None:
            await gate.wait()
        try:
            return await fn()
        except Exception as exc:
            decision = classify_error(exc)
            now = clock()
            first_failure = now if first_failure is None else first_failure
            if policy.gives_up(attempt, decision, now - first_failure):
                raise
            delay = policy.backoff.delay(attempt, decision, draw())
            if gate is not None and decision.kind is RetryKind.RETRY_AFTER:
                gate.hold(delay)
            if on_retry is not None:
                on_retry(RetryEvent(attempt, delay, exc))
            await sleep(delay)
