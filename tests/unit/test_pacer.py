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
    parse_retry_after,
)

R, F, A = RetryKind.RETRY, RetryKind.FATAL, RetryKind.RETRY_AFTER


@pytest.mark.parametrize(
    ("exc", "kind", "hint"),
    [
        (TransientError("connection reset"), R, None),
        (TransientError("bad gateway", status=502), R, None),
        (TransientError("unavailable", status=503), R, None),
        (RateLimited("slow down", retry_after=7.5), A, 7.5),
        (RateLimited("negative is clamped", retry_after=-3), A, 0.0),
        (IntegrityError("sha256 mismatch"), R, None),
        (RemoteError("server error", status=500), R, None),
        (RemoteError("bad gateway", status=502), R, None),
        (RemoteError("gateway timeout", status=504), R, None),
        (RemoteError("too many", status=429), R, None),
        (RemoteError("not implemented", status=501), F, None),
        (RemoteError("bad request", status=400), F, None),
        (RemoteError("no status"), F, None),
        (NotFound("no such file", status=404), F, None),
        (Conflict("exists", status=409), F, None),
        (AuthError("unauthorized", status=401), F, None),
        (PermissionDenied("forbidden", status=403), F, None),
        (UsageError("bad flag"), F, None),
        (UnsafePathError("../etc"), F, None),
        (HcError("plain"), F, None),
        (TimeoutError(), R, None),
        (ConnectionResetError(104, "reset"), R, None),
        (anyio.BrokenResourceError(), R, None),
        (anyio.EndOfStream(), R, None),
        (PermissionError(13, "denied"), F, None),
        (FileNotFoundError(2, "missing"), F, None),
        (ValueError("a bug"), F, None),
        (ExceptionGroup("g", [TransientError("a"), RateLimited("b", retry_after=2)]), A, 2.0),
        (ExceptionGroup("g", [TransientError("a"), TimeoutError()]), R, None),
        (ExceptionGroup("g", [TransientError("a"), NotFound("b")]), F, None),
    ],
)
def test_classify_table(exc: BaseException, kind: RetryKind, hint: float | None) -> None:
    assert classify(exc) == Decision(kind, hint)


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
        await call_with_retries(fn, RetryPolicy(max_attempts=3), sleep=sleep)
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
