"""Retry policy as tables: which errors are retried, how long to wait, and Retry-After parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import pytest

from hc.errors import (
    AuthError,
    Conflict,
    HcError,
    IntegrityError,
    NotFound,
    PermissionDenied,
    RateLimited,
    RemoteError,
    RetryKind,
    TransientError,
    UnsafePathError,
    UsageError,
)
from hc.transfer.pacer import (
    Backoff,
    Decision,
    RateGate,
    RetryEvent,
    RetryPolicy,
    call_with_retries,
    classify,
    failing_for,
    parse_retry_after,
)

R, F, A = RetryKind.RETRY, RetryKind.FATAL, RetryKind.RETRY_AFTER


@pytest.mark.parametrize(
    ("exc", "kind", "hint", "outage"),
    [
        # outage: the registry looks unreachable or down (no connection, 502/503/504)
        (TransientError("connection reset"), R, None, True),
        (TransientError("cannot connect: connection refused"), R, None, True),
        (TransientError("bad gateway", status=502), R, None, True),
        (TransientError("unavailable", status=503), R, None, True),
        (TransientError("gateway timeout", status=504), R, None, True),
        (TransientError("server error", status=500), R, None, False),
        (TransientError("too many", status=429), R, None, False),
        (RateLimited("slow down", retry_after=7.5), A, 7.5, False),
        (RateLimited("negative is clamped", retry_after=-3), A, 0.0, False),
        (RateLimited("503 with Retry-After", retry_after=2, status=503), A, 2.0, True),
        (IntegrityError("sha256 mismatch"), R, None, False),
        (RemoteError("server error", status=500), R, None, False),
        (RemoteError("bad gateway", status=502), R, None, True),
        (RemoteError("gateway timeout", status=504), R, None, True),
        (RemoteError("too many", status=429), R, None, False),
        (RemoteError("not implemented", status=501), F, None, False),
        (RemoteError("bad request", status=400), F, None, False),
        (RemoteError("no status"), F, None, False),
        (NotFound("no such file", status=404), F, None, False),
        (Conflict("exists", status=409), F, None, False),
        (AuthError("unauthorized", status=401), F, None, False),
        (PermissionDenied("forbidden", status=403), F, None, False),
        (UsageError("bad flag"), F, None, False),
        (UnsafePathError("../etc"), F, None, False),
        (HcError("plain"), F, None, False),
        (TimeoutError(), R, None, True),
        (ConnectionResetError(104, "reset"), R, None, True),
        (anyio.BrokenResourceError(), R, None, True),
        (anyio.EndOfStream(), R, None, True),
        (PermissionError(13, "denied"), F, None, False),
        (FileNotFoundError(2, "missing"), F, None, False),
        (ValueError("a bug"), F, None, False),
        (ExceptionGroup("g", [TransientError("a"), RateLimited("b", retry_after=2)]), A, 2.0, False),
        (ExceptionGroup("g", [TransientError("a"), TimeoutError()]), R, None, True),
        (ExceptionGroup("g", [TransientError("a"), IntegrityError("b")]), R, None, False),
        (ExceptionGroup("g", [TransientError("a"), NotFound("b")]), F, None, False),
    ],
)
def test_classify_table(exc: BaseException, kind: RetryKind, hint: float | None, outage: bool) -> None:
    assert classify(exc) == Decision(kind, hint, outage)


OUT = Decision(R, outage=True)


@pytest.mark.parametrize(
    ("attempt", "decision", "failing_for", "gives_up"),
    [
        # max_attempts=5, outage_budget=30 s
        (1, OUT, 0.0, False),
        (4, Decision(R), 3.0, False),
        (5, Decision(R), 3.0, True),  # not an outage: the attempt count alone
        (5, Decision(A, 1.0), 3.0, True),
        (5, OUT, 3.0, False),  # an outage is retried past the count...
        (12, OUT, 29.9, False),
        (12, OUT, 30.0, True),  # ...until 30 s have passed since its first failure
        (3, OUT, 500.0, False),  # and always gets its attempts, however long they took
        (1, Decision(F), 0.0, True),
        (1, Decision(F, outage=True), 0.0, True),
    ],
)
def test_an_outage_is_retried_for_a_time_budget_other_errors_for_a_count(
    attempt: int, decision: Decision, failing_for: float, gives_up: bool
) -> None:
    policy = RetryPolicy(max_attempts=5, outage_budget=30.0)
    assert policy.gives_up(attempt, decision, failing_for) is gives_up


def test_a_policy_without_backoff_gets_no_outage_budget() -> None:
    # it could only spin
    policy = RetryPolicy(max_attempts=2, backoff=Backoff(base=0.0, cap=0.0), outage_budget=30.0)
    assert policy.gives_up(2, OUT, 0.0)


@pytest.mark.parametrize("budget", [-1.0, 86401.0])
def test_policy_rejects_a_bad_outage_budget(budget: float) -> None:
    with pytest.raises(UsageError):
        RetryPolicy(outage_budget=budget)


def test_failing_for_counts_from_the_first_failure_of_a_run() -> None:
    clock = [10.0]

    def now() -> float:
        return clock[0]

    assert failing_for(1, clock=now) == 0.0
    clock[0] = 14.0
    assert failing_for(2, clock=now) == 4.0
    clock[0] = 20.0
    assert failing_for(3, clock=now) == 10.0
    assert failing_for(1, clock=now) == 0.0  # progress, then a new run
    clock[0] = 21.5
    assert failing_for(2, clock=now) == 1.5


@pytest.mark.parametrize(
    ("attempt", "draw", "expected"),
    [
        (1, 1.0, 0.5),  # ceiling base·2^0
        (2, 1.0, 1.0),
        (3, 1.0, 2.0),
        (4, 0.5, 2.0),  # full jitter: a fraction of the ceiling
        (7, 1.0, 30.0),  # capped
        (10_000, 1.0, 30.0),  # no float overflow on absurd attempt counts
        (3, 0.0, 0.0),
        (3, 7.0, 2.0),  # an out-of-range draw is clamped
    ],
)
def test_backoff_is_full_jitter_exponential_with_cap(attempt: int, draw: float, expected: float) -> None:
    backoff = Backoff(base=0.5, cap=30.0)
    assert backoff.delay(attempt, Decision(R), draw) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("hint", "expected"),
    [(12.0, 12.0), (0.0, 0.0), (10_000.0, 300.0), (-5.0, 0.0)],
)
def test_retry_after_beats_backoff_within_a_ceiling(hint: float, expected: float) -> None:
    backoff = Backoff(base=0.5, cap=1.0, retry_after_cap=300.0)
    assert backoff.delay(1, Decision(A, hint), 0.99) == expected


def test_retry_after_without_hint_falls_back_to_backoff() -> None:
    assert Backoff(base=1.0, cap=8.0).delay(3, Decision(A, None), 1.0) == 4.0


@pytest.mark.parametrize("bad", [{"base": -1.0}, {"cap": -1.0}, {"retry_after_cap": -1.0}])
def test_backoff_rejects_negative_settings(bad: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        Backoff(**bad)


def test_policy_needs_one_attempt() -> None:
    with pytest.raises(UsageError):
        RetryPolicy(max_attempts=0)


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        ("  7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Fri, 02 Jan 2026 03:05:05 GMT", 60.0),
        ("Fri, 02 Jan 2026 03:04:05 GMT", 0.0),
        ("Thu, 01 Jan 2026 00:00:00 GMT", 0.0),  # in the past: go now
        ("Friday, 02-Jan-26 03:04:15 GMT", 10.0),  # RFC 850 form, still allowed by HTTP
        ("Fri Jan  2 03:04:25 2026", 20.0),  # asctime form
        ("", None),
        (None, None),
        ("soon", None),
        ("-5", None),
        ("1e9999", None),
        ("Fri, 99 Foo 2026 99:99:99 GMT", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == expected


class Flaky:
    def __init__(self, errors: list[BaseException], result: str = "ok") -> None:
        self.errors = errors
        self.result = result
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


async def test_call_with_retries_retries_then_succeeds_and_reports_each_wait() -> None:
    fn = Flaky([TransientError("reset"), RateLimited("429", retry_after=4.0)])
    sleeps: list[float] = []
    events: list[RetryEvent] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    policy = RetryPolicy(max_attempts=5, backoff=Backoff(base=1.0, cap=10.0))
    result = await call_with_retries(fn, policy, on_retry=events.append, sleep=sleep, draw=lambda: 0.5)
    assert result == "ok"
    assert fn.calls == 3
    assert sleeps == [0.5, 4.0]
    assert [e.attempt for e in events] == [1, 2]


async def test_call_with_retries_stops_at_the_attempt_limit() -> None:
    fn = Flaky([TransientError(f"fail {i}") for i in range(10)])

    async def sleep(seconds: float) -> None:
        pass

    with pytest.raises(TransientError, match="fail 2"):
        await call_with_retries(fn, RetryPolicy(max_attempts=3, outage_budget=0.0), sleep=sleep)
    assert fn.calls == 3


async def test_call_with_retries_rides_out_an_outage_for_its_budget() -> None:
    """A registry that refuses connections for 20 s (a restart): five attempts would give up after
    a few seconds; the 30 s budget keeps trying, and the attempt after the outage succeeds."""
    clock = [0.0]
    up_at = 20.0

    async def fn() -> str:
        if clock[0] < up_at:
            raise TransientError("cannot connect: connection refused")
        return "ok"

    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    policy = RetryPolicy(max_attempts=5, backoff=Backoff(base=0.5, cap=8.0), outage_budget=30.0)
    result = await call_with_retries(fn, policy, sleep=sleep, draw=lambda: 1.0, clock=lambda: clock[0])
    assert result == "ok"
    assert clock[0] >= up_at


async def test_call_with_retries_gives_an_outage_up_after_its_budget() -> None:
    clock = [0.0]
    calls = 0

    async def fn() -> str:
        nonlocal calls
        calls += 1
        raise TransientError("unavailable", status=503)

    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    policy = RetryPolicy(max_attempts=3, backoff=Backoff(base=1.0, cap=4.0), outage_budget=30.0)
    with pytest.raises(TransientError):
        await call_with_retries(fn, policy, sleep=sleep, draw=lambda: 1.0, clock=lambda: clock[0])
    # waits 1, 2, 4, 4, ...: the first failure at 0 s, the last at or past 30 s
    assert 30.0 <= clock[0] < 34.0
    assert calls > 3


async def test_a_500_keeps_the_attempt_count() -> None:
    fn = Flaky([TransientError("server error", status=500) for _ in range(10)])

    async def sleep(seconds: float) -> None:
        pass

    policy = RetryPolicy(max_attempts=3, outage_budget=30.0)
    with pytest.raises(TransientError):
        await call_with_retries(fn, policy, sleep=sleep, clock=lambda: 0.0)
    assert fn.calls == 3


async def test_call_with_retries_does_not_retry_fatal_errors() -> None:
    fn = Flaky([NotFound("gone")])
    with pytest.raises(NotFound):
        await call_with_retries(fn, RetryPolicy(max_attempts=5))
    assert fn.calls == 1


async def test_retry_after_holds_the_shared_gate() -> None:
    clock = [100.0]
    gate = RateGate(clock=lambda: clock[0])
    fn = Flaky([RateLimited("429", retry_after=3.0)])

    async def sleep(seconds: float) -> None:
        assert gate.remaining() == pytest.approx(3.0)  # everyone else waits too
        clock[0] += seconds

    await call_with_retries(fn, RetryPolicy(max_attempts=2), gate=gate, sleep=sleep)
    assert gate.remaining() == 0.0


async def test_cancellation_is_not_retried() -> None:
    calls = 0

    async def slow() -> None:
        nonlocal calls
        calls += 1
        await anyio.sleep(10)

    with anyio.move_on_after(0.01):
        await call_with_retries(slow, RetryPolicy(max_attempts=5))
    assert calls == 1


async def test_a_retry_after_beyond_the_cap_is_not_waited_for() -> None:
    """A server asking for an hour gets its error shown now, not a silent hour (nor an early retry)."""
    fn = Flaky([RateLimited("429", retry_after=3600.0), RateLimited("429", retry_after=1.0)])
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    with pytest.raises(RateLimited):
        await call_with_retries(fn, RetryPolicy(max_attempts=5), sleep=sleep)
    assert (fn.calls, sleeps) == (1, [])
    fn = Flaky([RateLimited("429", retry_after=300.0)])  # at the cap: waited for
    await call_with_retries(fn, RetryPolicy(max_attempts=5), sleep=sleep)
    assert sleeps == [300.0]
