"""``hc.cli.progress``: the plain status line, its pacing, and the bars following signed deltas."""

from __future__ import annotations

import io

import pytest

from hc.cli.progress import (
    PLAIN_INTERVAL,
    Progress,
    ProgressMode,
    format_duration,
    resolve_mode,
    status_line,
)
from hc.transfer import Accounting, ItemResult, Status
from hc.transfer.accounting import Stats


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0.00s"), (0.421, "0.42s"), (12.7, "12s"), (185, "3m05s"), (7260, "2h01m")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_status_line_is_plain_and_complete() -> None:
    stats = Stats(
        items_queued=1000,
        items_finished=120,
        items_failed=2,
        bytes_done=12 * 1024 * 1024,
        bytes_total=40 * 1024 * 1024,
        elapsed=3.0,
        rate=5.2 * 1024 * 1024,
        eta=6.0,
        retries=1,
    )
    assert status_line("push", stats) == (
        "push: 120/1000 files, 12.0 MiB of 40.0 MiB, 5.2 MiB/s, ETA 6.00s, 2 failed, 1 retries"
    )


def test_auto_is_a_bar_on_a_terminal_and_plain_elsewhere() -> None:
    assert resolve_mode(ProgressMode.AUTO, stream=Tty()) is ProgressMode.BAR
    assert resolve_mode(ProgressMode.AUTO, stream=io.StringIO()) is ProgressMode.PLAIN
    assert resolve_mode(ProgressMode.BAR, stream=io.StringIO(), quiet=True) is ProgressMode.NONE


def test_plain_mode_prints_a_line_every_interval_and_not_more() -> None:
    clock = Clock()
    accounting = Accounting(clock=clock)
    out = io.StringIO()
    progress = Progress(accounting, mode=ProgressMode.PLAIN, label="pull", stream=out, clock=clock)
    accounting.subscribe(progress)
    accounting.queued("a", 2048)
    accounting.started("a", 2048)
    for _ in range(50):
        accounting.moved("a", 10)  # many events, no time passing: no line
    assert out.getvalue() == ""
    clock.now += PLAIN_INTERVAL
    accounting.moved("a", 10)
    assert out.getvalue().splitlines() == ["pull: 0/1 files, 510 B of 2.0 KiB, 102 B/s, ETA 15s"]
    progress.close()


def test_bars_follow_deltas_back_and_forth_and_stay_quiet_when_closed() -> None:
    clock = Clock()
    accounting = Accounting(clock=clock)
    out = Tty()
    progress = Progress(accounting, mode=ProgressMode.AUTO, label="push", stream=out, clock=clock)
    assert progress.mode is ProgressMode.BAR
    accounting.subscribe(progress)
    big = 64 * 1024 * 1024
    accounting.queued("big.bin", big)
    accounting.started("big.bin", big)
    accounting.moved("big.bin", 1024 * 1024)
    accounting.moved("big.bin", -1024 * 1024)  # a retry rewinds
    clock.now += 1
    accounting.moved("big.bin", big)
    progress.write("warning: something")
    accounting.finished(ItemResult(path="big.bin", status=Status.DONE, size=big))
    progress.close()
    text = out.getvalue()
    assert "warning: something" in text
    assert "big.bin" in text  # its own bar while in flight
    assert "1/1 files" in text
    before = out.getvalue()
    progress(None)  # type: ignore[arg-type]  # closed: events are ignored
    assert out.getvalue() == before
