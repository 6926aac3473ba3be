"""Accounting: signed byte deltas, totals that follow skips and resumes, rate, ETA, summary, results."""

from __future__ import annotations

import json

import pytest

from hc.transfer.accounting import (
    Accounting,
    BytesMoved,
    Event,
    ItemFinished,
    ItemQueued,
    ItemRetried,
    ItemStarted,
)
from hc.transfer.results import ItemResult, Status, Summary


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def result(path: str, status: Status, size: int, **kw: object) -> ItemResult:
    return ItemResult(path=path, status=status, size=size, **kw)  # type: ignore[arg-type]


def test_events_reach_subscribers_in_order_and_unsubscribe_works() -> None:
    acc = Accounting()
    seen: list[Event] = []
    unsubscribe = acc.subscribe(seen.append)
    acc.queued("a", 10)
    acc.started("a", 10)
    acc.moved("a", 6)
    acc.retried("a", attempt=1, delay=0.5, error=RuntimeError("reset"))
    acc.moved("a", -6)  # the retry rewinds what it will send again
    acc.moved("a", 10)
    acc.finished(result("a", Status.DONE, 10))
    unsubscribe()
    acc.queued("b", 1)
    assert seen == [
        ItemQueued("a", 10),
        ItemStarted("a", 10, 0),
        BytesMoved("a", 6),
        ItemRetried("a", 1, 0.5, "reset"),
        BytesMoved("a", -6),
        BytesMoved("a", 10),
        ItemFinished(result("a", Status.DONE, 10)),
    ]
    assert acc.bytes_done == 10


def test_totals_follow_skips_resumes_failures_and_cancellations() -> None:
    acc = Accounting()
    for path, size in [("done", 100), ("skip", 50), ("resumed", 80), ("failed", 40), ("cancelled", 30)]:
        acc.queued(path, size)
    assert acc.bytes_total == 300

    acc.started("done", 100)
    acc.moved("done", 100)
    acc.finished(result("done", Status.DONE, 100))

    acc.finished(result("skip", Status.SKIPPED, 50))  # never moves: leaves the total

    acc.started("resumed", 80, resumed=60)  # 60 bytes were already on disk from the last run
    acc.moved("resumed", 20)
    acc.finished(result("resumed", Status.DONE, 80))

    acc.started("failed", 40)
    acc.moved("failed", 25)
    acc.finished(result("failed", Status.FAILED, 40, error="boom"))  # its bytes are taken back

    acc.started("cancelled", 30)
    acc.moved("cancelled", 10)  # these stay: a re-run resumes from them
    acc.finished(result("cancelled", Status.CANCELLED, 30))

    assert acc.bytes_done == 100 + 20 + 10
    assert acc.bytes_total == acc.bytes_done  # nothing left to do
    summary = acc.summary()
    assert (summary.succeeded, summary.skipped, summary.failed, summary.cancelled) == (2, 1, 1, 1)
    assert summary.bytes == 130
    assert [f.path for f in acc.failures] == ["failed"]


def test_rate_and_eta_use_the_injected_clock() -> None:
    clock = Clock()
    acc = Accounting(clock=clock, rate_window=10.0)
    acc.queued("big", 1000)
    acc.started("big", 1000)
    clock.now += 2
    acc.moved("big", 200)
    stats = acc.snapshot()
    assert stats.rate == pytest.approx(100.0)
    assert stats.eta == pytest.approx(8.0)
    assert stats.elapsed == pytest.approx(2.0)
    assert stats.items_finished == 0


def test_rate_window_forgets_old_samples() -> None:
    clock = Clock()
    acc = Accounting(clock=clock, rate_window=5.0)
    acc.queued("x", 10_000)
    for _ in range(20):  # 100 B/s for 20 s, then 1000 B/s
        clock.now += 1
        acc.moved("x", 100)
    for _ in range(10):
        clock.now += 1
        acc.moved("x", 1000)
    assert acc.rate() == pytest.approx(1000.0, rel=0.25)


def test_eta_is_unknown_before_any_byte_moves() -> None:
    acc = Accounting(clock=Clock())
    acc.queued("x", 10)
    assert acc.snapshot().eta is None


def test_summary_throughput_and_json() -> None:
    summary = Summary(succeeded=3, skipped=1, failed=1, cancelled=0, planned=0, bytes=4000, seconds=2.0)
    assert summary.items == 5
    assert summary.throughput == 2000.0
    assert not summary.ok
    assert summary.to_json() == {
        "succeeded": 3,
        "skipped": 1,
        "failed": 1,
        "cancelled": 0,
        "planned": 0,
        "bytes": 4000,
        "seconds": 2.0,
        "throughput": 2000.0,
    }
    assert (
        Summary(succeeded=0, skipped=0, failed=0, cancelled=0, planned=0, bytes=0, seconds=0).throughput == 0
    )


def test_item_result_is_one_json_line() -> None:
    line = result("a/b.bin", Status.FAILED, 7, sha256=None, action="upload", attempts=5, error="HTTP 503")
    assert json.loads(json.dumps(line.to_json())) == {
        "path": "a/b.bin",
        "status": "failed",
        "size": 7,
        "sha256": None,
        "action": "upload",
        "attempts": 5,
        "error": "HTTP 503",
        "local_path": None,
    }
