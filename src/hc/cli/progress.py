"""Progress for push and pull: a sink for the engine's accounting events (the only tqdm user).

Modes (``--progress``):

- ``bar``: on a terminal, one overall bar (bytes, files done of files seen, rate, ETA) and a bar
  for each large file in flight (at most a few, so the screen stays readable);
- ``plain``: one status line every few seconds (``push: 120/1000 files, 12.0 MiB of 40.0 MiB,
  5.2 MiB/s, ETA 6s``), for logs and CI where bars would be noise;
- ``none``: nothing; ``auto`` (the default) is ``bar`` when stderr is a terminal, else ``plain``.

The engine's byte counts are signed deltas (a retry rewinds), so the bars go back as well as
forward. Totals grow while the job streams in its items. Everything is drawn from the event loop
thread; refreshes are throttled, so a job of a million small files does not spend its time drawing.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, TextIO

import anyio

from hc.cli._options import ProgressMode
from hc.cli.render import human_size
from hc.transfer.accounting import (
    Accounting,
    BytesMoved,
    Event,
    ItemFinished,
    ItemRetried,
    ItemStarted,
    Stats,
)

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["Progress", "ProgressMode", "format_duration", "resolve_mode", "status_line"]

#: Files at least this large get a bar of their own in ``bar`` mode.
LARGE_FILE: Final = 16 * 1024 * 1024
MAX_FILE_BARS: Final = 4
#: Seconds between refreshes of the bars, and between plain status lines.
BAR_INTERVAL: Final = 0.2
PLAIN_INTERVAL: Final = 5.0


def resolve_mode(mode: ProgressMode, *, stream: TextIO, quiet: bool = False) -> ProgressMode:
    """The concrete mode: ``auto`` becomes ``bar`` on a terminal and ``plain`` elsewhere."""
    if quiet:
        return ProgressMode.NONE
    if mode is not ProgressMode.AUTO:
        return mode
    try:
        return ProgressMode.BAR if stream.isatty() else ProgressMode.PLAIN
    except (AttributeError, ValueError):
        return ProgressMode.PLAIN


def format_duration(seconds: float) -> str:
    """``0.42s``, ``12s``, ``3m05s``, ``2h01m``."""
    if seconds < 10:
        return f"{seconds:.2f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def status_line(label: str, stats: Stats) -> str:
    """One plain progress line."""
    text = (
        f"{label}: {stats.items_finished}/{stats.items_queued} files, "
        f"{human_size(stats.bytes_done)} of {human_size(max(stats.bytes_total, stats.bytes_done))}"
    )
    if stats.rate > 0:
        text += f", {human_size(int(stats.rate))}/s"
    if stats.eta is not None and math.isfinite(stats.eta):
        text += f", ETA {format_duration(stats.eta)}"
    if stats.items_failed:
        text += f", {stats.items_failed} failed"
    if stats.retries:
        text += f", {stats.retries} retries"
    return text


class Progress:
    """Subscribe it to an ``Accounting`` (``accounting.subscribe(progress)``); close it at the end."""

    def __init__(
        self,
        accounting: Accounting,
        *,
        mode: ProgressMode,
        label: str,
        stream: TextIO | None = None,
        verbose: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._accounting = accounting
        self._stream = stream if stream is not None else sys.stderr
        self.mode = resolve_mode(mode, stream=self._stream)
        self._label = label
        self._verbose = verbose
        self._clock = clock
        self._last_draw = clock()
        self._overall: tqdm[Any] | None = None
        self._file_bars: dict[str, tqdm[Any]] = {}
        self._free_positions = list(range(MAX_FILE_BARS, 0, -1))
        self._closed = False

    # -- the subscriber ------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        if self.mode is ProgressMode.NONE or self._closed:
            return
        if self.mode is ProgressMode.BAR:
            self._on_bar_event(event)
        elif isinstance(event, ItemRetried) and self._verbose:
            self.write(f"{self._label}: retrying {event.path} in {event.delay:.1f}s: {event.error}")
        self._maybe_draw()

    def _on_bar_event(self, event: Event) -> None:
        if isinstance(event, ItemStarted):
            if event.size >= LARGE_FILE and self._free_positions:
                self._file_bars[event.path] = _tqdm()(
                    total=event.size,
                    initial=event.resumed,
                    desc=_short(event.path),
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    position=self._free_positions.pop(),
                    leave=False,
                    file=self._stream,
                    dynamic_ncols=True,
                    mininterval=BAR_INTERVAL,
                )
        elif isinstance(event, BytesMoved):
            bar = self._file_bars.get(event.path)
            if bar is not None:
                bar.update(event.delta)
        elif isinstance(event, ItemFinished):
            bar = self._file_bars.pop(event.result.path, None)
            if bar is not None:
                position = bar.pos
                bar.close()
                self._free_positions.append(abs(position))
        elif isinstance(event, ItemRetried) and self._verbose:
            self.write(f"{self._label}: retrying {event.path} in {event.delay:.1f}s: {event.error}")

    # -- drawing -------------------------------------------------------------------------------

    def _maybe_draw(self) -> None:
        interval = BAR_INTERVAL if self.mode is ProgressMode.BAR else PLAIN_INTERVAL
        if self._clock() - self._last_draw >= interval:
            self.refresh()

    def refresh(self) -> None:
        """Draw now (the overall bar, or a plain line)."""
        if self.mode is ProgressMode.NONE or self._closed:
            return
        self._last_draw = self._clock()
        stats = self._accounting.snapshot()
        if self.mode is ProgressMode.PLAIN:
            self._print(status_line(self._label, stats))
            return
        bar = self._bar()
        total = max(stats.bytes_total, stats.bytes_done)
        if bar.total != total:
            bar.total = total
        bar.set_postfix_str(f"{stats.items_finished}/{stats.items_queued} files", refresh=False)
        delta = stats.bytes_done - bar.n
        if delta:
            bar.update(delta)
        else:
            bar.refresh()

    def _bar(self) -> tqdm[Any]:
        if self._overall is None:
            self._overall = _tqdm()(
                total=0,
                desc=self._label,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                position=0,
                leave=True,
                file=self._stream,
                dynamic_ncols=True,
                mininterval=BAR_INTERVAL,
            )
        return self._overall

    def write(self, message: str) -> None:
        """Print a line (a warning, a failed item) without tearing the bars."""
        if self.mode is ProgressMode.BAR and not self._closed and (self._overall or self._file_bars):
            _tqdm().write(message, file=self._stream)
        else:
            self._print(message)

    def _print(self, message: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # a closed stderr must not break the transfer
            print(message, file=self._stream, flush=True)

    @asynccontextmanager
    async def ticking(self) -> AsyncIterator[None]:
        """Redraw on a timer while the block runs, so a stalled transfer still shows its state."""
        if self.mode is ProgressMode.NONE:
            yield
            return

        async def tick() -> None:
            interval = BAR_INTERVAL if self.mode is ProgressMode.BAR else PLAIN_INTERVAL
            while True:
                await anyio.sleep(interval)
                self._maybe_draw()

        async with anyio.create_task_group() as tg:
            tg.start_soon(tick)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()

    def close(self) -> None:
        """Finish the bars (the overall one stays on screen at its final state)."""
        if self._closed:
            return
        if self.mode is ProgressMode.BAR:
            for bar in self._file_bars.values():
                bar.close()
            self._file_bars.clear()
            if self._overall is not None:
                self.refresh()
                self._overall.close()
        self._closed = True


def _short(path: str, limit: int = 30) -> str:
    return path if len(path) <= limit else "…" + path[-(limit - 1) :]


def _tqdm() -> type[tqdm[Any]]:
    # Imported on first use: only bar mode (stderr is a terminal) draws bars, and importing tqdm
    # costs more start-up time than a whole re-push of unchanged files spends on its work.
    from tqdm import tqdm

    return tqdm
