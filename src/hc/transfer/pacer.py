"""When to try again: retry decisions as pure functions, and one small async loop that applies them.

The policy follows the Go hc's retry client (go-retryablehttp: connection errors, 429 and every 5xx
except 501 are retried) with two changes users asked for: full-jitter exponential backoff instead
of a fixed doubling, and Retry-After honoured without a 3-second cap (but with a sane ceiling, so a
hostile header cannot park a job for a day). Decisions are data (``Decision``) and the delay is a
pure function of ``(attempt, decision, random draw)``, so both are tested as tables.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

import anyio

from hc.errors import HcError, RateLimited, RetryKind, UsageError
from hc.protocol.headers import parse_retry_after

__all__ = [
    "Backoff",
    "Decision",
    "RateGate",
    "RetryEvent",
    "RetryPolicy",
    "call_with_retries",
    "classify",
    "parse_retry_after",
]

T = TypeVar("T")

#: Statuses worth retrying even when the error class itself says fatal (a RemoteError carrying 502).
_NOT_RETRIED_5XX: Final = 501


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after an error: give up, retry with backoff, or retry after ``delay_hint`` seconds."""

    kind: RetryKind
    delay_hint: float | None = None

    @property
    def retryable(self) -> bool:
        return self.kind is not RetryKind.FATAL


FATAL: Final = Decision(RetryKind.FATAL)
RETRY: Final = Decision(RetryKind.RETRY)


def _status_retryable(status: int | None) -> bool:
    return status is not None and (status == 429 or (500 <= status < 600 and status != _NOT_RETRIED_5XX))


def classify(exc: BaseException) -> Decision:
    """Map an exception to a retry decision. Pure; the table is in tests/unit/test_pacer.py."""
    if isinstance(exc, BaseExceptionGroup):
        # A task group failed: retry only if every inner failure is retryable; honour the longest wait.
        decisions = [classify(inner) for inner in exc.exceptions]
        if not decisions or any(not d.retryable for d in decisions):
            return FATAL
        hints = [d.delay_hint for d in decisions if d.delay_hint is not None]
        return Decision(RetryKind.RETRY_AFTER, max(hints)) if hints else RETRY
    if isinstance(exc, RateLimited):
        return Decision(RetryKind.RETRY_AFTER, max(0.0, exc.retry_after))
    if isinstance(exc, HcError):
        if exc.retry_kind is RetryKind.RETRY:
            return RETRY
        if exc.retry_kind is RetryKind.RETRY_AFTER:
            return Decision(RetryKind.RETRY_AFTER, None)
        return RETRY if _status_retryable(exc.status) else FATAL
    # Foreign exceptions should have been translated at the api boundary; these few can still
    # reach the engine from anyio itself (fail_after, a stream torn down under us).
    if isinstance(exc, TimeoutError | ConnectionError | anyio.BrokenResourceError | anyio.EndOfStream):
        return RETRY
    return FATAL


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Full-jitter exponential backoff: the n-th retry waits ``U(0, min(cap, base·2^(n-1)))``.

    Full jitter spreads a burst of failures (a 503 storm over 16 streams) across the window
    instead of synchronising the retries. A server's Retry-After replaces the computed delay,
    clipped to ``retry_after_cap``.
    """

    base: float = 0.5
    cap: float = 30.0
    retry_after_cap: float = 300.0

    def __post_init__(self) -> None:
        if not (self.base >= 0 and self.cap >= 0 and self.retry_after_cap >= 0):
            raise UsageError("backoff base, cap and retry-after cap must be non-negative")

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the wait after ``attempt`` failed attempts (attempt >= 1)."""
        exponent = min(max(attempt - 1, 0), 62)  # 2**62 already dwarfs any cap; avoids float overflow
        return min(self.cap, self.base * float(2**exponent))

    def delay(self, attempt: int, decision: Decision, draw: float) -> float:
        """Seconds to wait before attempt ``attempt + 1``; ``draw`` is a uniform sample in [0, 1)."""
        if decision.kind is RetryKind.RETRY_AFTER and decision.delay_hint is not None:
            return min(max(decision.delay_hint, 0.0), self.retry_after_cap)
        return self.ceiling(attempt) * min(max(draw, 0.0), 1.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How many attempts one operation gets, and how long to wait between them."""

    max_attempts: int = 5
    backoff: Backoff = Backoff()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise UsageError("max attempts must be at least 1")


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


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[RetryEvent], None] | None = None,
    gate: RateGate | None = None,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    draw: Callable[[], float] = random.random,
    classify_error: Callable[[BaseException], Decision] = classify,
) -> T:
    """Call ``fn`` until it succeeds, fails fatally, or runs out of attempts; re-raise the last error.

    Cancellation is never swallowed: only ``Exception`` is caught, and anyio's cancellation is a
    ``BaseException`` on asyncio.
    """
    attempt = 0
    while True:
        attempt += 1
        if gate is not None:
            await gate.wait()
        try:
            return await fn()
        except Exception as exc:
            decision = classify_error(exc)
            if not decision.retryable or attempt >= policy.max_attempts:
                raise
            delay = policy.backoff.delay(attempt, decision, draw())
            if gate is not None and decision.kind is RetryKind.RETRY_AFTER:
                gate.hold(delay)
            if on_retry is not None:
                on_retry(RetryEvent(attempt, delay, exc))
            await sleep(delay)
