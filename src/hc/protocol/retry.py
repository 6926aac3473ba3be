"""When to try again, as pure data and functions shared by every retry loop in hc.

The policy follows the Go hc's retry client (go-retryablehttp: connection errors, 429 and every 5xx
except 501 are retried) with two changes users asked for: full-jitter exponential backoff instead
of a fixed doubling, and Retry-After honoured without a 3-second cap (but with a sane ceiling, so a
hostile header cannot park a job for a day). Decisions are data (``Decision``) and the delay is a
pure function of ``(attempt, decision, random draw)``, so both are tested as tables
(tests/unit/test_pacer.py).

How long an operation keeps trying (``RetryPolicy.gives_up``): ``max_attempts`` attempts, and, when
the failure is an *outage* (no connection, a connection that broke, 502/503/504), also until
``outage_budget`` seconds (30 s; ``--retry-budget``) have passed since its first failure. A registry
that restarts refuses connections for several seconds, which five quick attempts (~4 s of waiting
on average) do not outlast; the Go CLI waits 1+2+4+8 s. Other failures (a 500, a 429 the server
asked us to wait out, a corrupt body) keep the plain attempt count.

The loops that apply it: ``hc.transfer.pacer.call_with_retries`` (the engine: shared rate gate,
retry events) and ``hc.api._http.with_retries`` (management requests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from hc.errors import HcError, RateLimited, RetryKind, TransientError, UsageError

__all__ = [
    "FATAL",
    "NO_RETRY",
    "OUTAGE",
    "RETRY",
    "Backoff",
    "Decision",
    "RetryPolicy",
    "classify",
]

#: Statuses worth retrying even when the error class itself says fatal (a RemoteError carrying 502).
_NOT_RETRIED_5XX: Final = 501
#: Statuses that mean "no registry behind this address right now": a gateway or load balancer
#: answering for a registry that is down or restarting (a 500 is a registry that failed).
_OUTAGE_STATUSES: Final = frozenset({502, 503, 504})


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after an error: give up, retry with backoff, or retry after ``delay_hint`` seconds.
    ``outage``: the registry looks unreachable or down (see the module docstring), which earns the
    operation a time budget on top of its attempts."""

    kind: RetryKind
    delay_hint: float | None = None
    outage: bool = False

    @property
    def retryable(self) -> bool:
        return self.kind is not RetryKind.FATAL


FATAL: Final = Decision(RetryKind.FATAL)
RETRY: Final = Decision(RetryKind.RETRY)
OUTAGE: Final = Decision(RetryKind.RETRY, outage=True)


def _status_retryable(status: int | None) -> bool:
    return status is not None and (status == 429 or (500 <= status < 600 and status != _NOT_RETRIED_5XX))


def classify(
    exc: BaseException, *, outages: tuple[type[BaseException], ...] = (TimeoutError, ConnectionError)
) -> Decision:
    """Map an exception to a retry decision. Pure; the table is in tests/unit/test_pacer.py.
    ``outages``: foreign exception types that mean "the connection failed" (the engine adds its
    async runtime's)."""
    if isinstance(exc, BaseExceptionGroup):
        # A task group failed: retry only if every inner failure is retryable; honour the longest
        # wait; an outage only if every inner failure says so.
        decisions = [classify(inner, outages=outages) for inner in exc.exceptions]
        if not decisions or any(not d.retryable for d in decisions):
            return FATAL
        outage = all(d.outage for d in decisions)
        hints = [d.delay_hint for d in decisions if d.delay_hint is not None]
        if hints:
            return Decision(RetryKind.RETRY_AFTER, max(hints), outage)
        return OUTAGE if outage else RETRY
    if isinstance(exc, RateLimited):
        return Decision(RetryKind.RETRY_AFTER, max(0.0, exc.retry_after), exc.status in _OUTAGE_STATUSES)
    if isinstance(exc, HcError):
        if exc.retry_kind is RetryKind.RETRY:
            # A TransientError without a status failed below HTTP: refused, reset, timed out.
            if isinstance(exc, TransientError) and (exc.status is None or exc.status in _OUTAGE_STATUSES):
                return OUTAGE
            return RETRY
        if exc.retry_kind is RetryKind.RETRY_AFTER:
            return Decision(RetryKind.RETRY_AFTER, None, exc.status in _OUTAGE_STATUSES)
        if not _status_retryable(exc.status):
            return FATAL
        return OUTAGE if exc.status in _OUTAGE_STATUSES else RETRY
    # Foreign exceptions should have been translated at the HTTP boundary; a few can still reach a
    # retry loop from the async runtime (a timeout, a stream torn down under us).
    if isinstance(exc, outages):
        return OUTAGE
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
    """How many attempts one operation gets, and how long to wait between them.

    ``max_attempts`` attempts in all; an outage (``Decision.outage``) is retried past them until
    ``outage_budget`` seconds have passed since the operation's first failure. With the default
    backoff (full jitter from 0.5 s, capped at 30 s) that is about 8 attempts over 30-45 s. A policy
    without backoff (``base`` 0) gets no budget: it could only spin.
    """

    max_attempts: int = 5
    backoff: Backoff = Backoff()
    outage_budget: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise UsageError("max attempts must be at least 1")
        if not 0 <= self.outage_budget <= 86400:
            raise UsageError("the outage budget must be 0..86400 seconds")

    def gives_up(self, attempt: int, decision: Decision, failing_for: float) -> bool:
        """Whether to stop after ``attempt`` failed attempts, the first ``failing_for`` seconds ago.

        A server that asks for a longer wait than ``backoff.retry_after_cap`` is not waited for:
        the error (which names the wait) goes to the user at once, rather than a command sitting
        silent for an hour or retrying earlier than the server asked."""
        if not decision.retryable:
            return True
        if (
            decision.kind is RetryKind.RETRY_AFTER
            and decision.delay_hint is not None
            and decision.delay_hint > self.backoff.retry_after_cap
        ):
            return True
        if attempt < self.max_attempts:
            return False
        return not (decision.outage and self.backoff.base > 0 and failing_for < self.outage_budget)


#: One attempt, no time budget: for writes that must not be sent twice.
NO_RETRY: Final = RetryPolicy(max_attempts=1, outage_budget=0.0)
