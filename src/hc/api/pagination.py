"""Walking paged listings quickly without unbounded fan-out, always yielding pages in order.

Two page styles exist in the Harness API:

- v1 pages know their total (``pageCount``): fetch page 0, learn the count, then fetch the rest
  concurrently with a bounded look-ahead window, yielding each page when its turn comes;
- v3 pages only say ``hasMore``: pages are asked for ahead of the one being read, speculatively
  (the end is only known when a page says so). The window starts at one page and grows by one for
  every page that says ``hasMore``, up to ``lookahead``: a one-page lookup costs one request, and a
  long listing keeps ``lookahead`` requests in flight. Pages past the end cost at most
  ``lookahead - 1`` small empty answers; a page known to be the last stops further requests, and
  pages past it are cancelled and never surface (not even their errors). A caller that knows about
  how many pages there are (a version's ``fileCount``) says so: the window then opens fully at once
  and asks for nothing past the expected end, unless the last expected page says ``hasMore``.

Both take a ``fetch(page_index)`` coroutine function, so the logic is tested with a fake fetcher.
The look-ahead window counts pages in flight *and* pages fetched but not yet consumed, so memory
stays bounded even when the consumer is slow. Closing the iterator early (use
``contextlib.aclosing`` when breaking out of the loop) cancels what is in flight.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["CursorPage", "NumberedPage", "iter_cursor_pages", "iter_numbered_pages"]

_T = TypeVar("_T")

#: Pages fetched ahead of the consumer by default (in flight or waiting to be yielded).
DEFAULT_LOOKAHEAD = 8


@dataclass(frozen=True)
class NumberedPage(Generic[_T]):
    """A v1 page: its 0-based ``index`` and the ``count`` of pages (``total`` items if known)."""

    items: Sequence[_T]
    index: int
    count: int
    total: int | None = None


@dataclass(frozen=True)
class CursorPage(Generic[_T]):
    """A v3 page: its 0-based ``index`` and whether another follows."""

    items: Sequence[_T]
    index: int
    has_more: bool


async def iter_numbered_pages(
    fetch: Callable[[int], Awaitable[NumberedPage[_T]]],
    *,
    lookahead: int = DEFAULT_LOOKAHEAD,
) -> AsyncGenerator[NumberedPage[_T], None]:
    """Yield every page in order: page 0 first, then pages 1..count-1 fetched ``lookahead`` at a time.

    The page count is the one page 0 reported; a listing that grows meanwhile is read as it was.
    """
    if lookahead < 1:
        raise ValueError("lookahead must be at least 1")
    first = await fetch(0)
    yield first
    remaining = iter(range(1, first.count))
    window: deque[asyncio.Task[NumberedPage[_T]]] = deque()
    try:
        for index in remaining:
            window.append(asyncio.ensure_future(fetch(index)))
            if len(window) >= lookahead:
                break
        while window:
            page = await window.popleft()
            # Refill before yielding, so the window keeps working while the caller does.
            next_index = next(remaining, None)
            if next_index is not None:
                window.append(asyncio.ensure_future(fetch(next_index)))
            yield page
    finally:
        await _cancel_all(window)


async def iter_cursor_pages(
    fetch: Callable[[int], Awaitable[CursorPage[_T]]],
    *,
    lookahead: int = 1,
    expected_pages: int | None = None,
) -> AsyncGenerator[CursorPage[_T], None]:
    """Yield pages 0, 1, … until one says ``has_more=False``, in order, with up to ``lookahead``
    pages requested ahead of the caller (in flight, or fetched and waiting for their turn).

    ``lookahead=1`` is the classic "fetch the next page while this one is processed". Pages are
    numbered by our own index: a page's own idea of its number is ignored. ``expected_pages`` is a
    hint (it may be wrong either way): speculate up to it, not past it.
    """
    if lookahead < 1:
        raise ValueError("lookahead must be at least 1")
    window: deque[tuple[int, asyncio.Task[CursorPage[_T]]]] = deque()
    next_index = 0
    # The window grows by one per page that says has_more, up to lookahead; with a hint it is
    # opened at once, since nothing is asked for past the expected end.
    width = 1 if expected_pages is None else lookahead
    last: int | None = None  # the index of a page known to be the last one
    expected_last = None if expected_pages is None else max(expected_pages, 1) - 1

    def refill() -> None:
        nonlocal next_index, last
        # A page that finished early may already say it is the last: ask for nothing past it.
        for index, task in window:
            finished = task.done() and not task.cancelled() and task.exception() is None
            if finished and not task.result().has_more and (last is None or index < last):
                last = index
        bound = last if last is not None else expected_last
        while len(window) < width and (bound is None or next_index <= bound):
            window.append((next_index, asyncio.ensure_future(fetch(next_index))))
            next_index += 1

    try:
        refill()
        while window:
            index, task = window.popleft()
            page = await task
            if not page.has_more:
                await _cancel_all([task for _, task in window])  # pages past the end
                window.clear()
                yield page
                return
            if expected_last is not None and index >= expected_last:
                expected_last = None  # more than expected (files added, or smaller pages): no hint
            width = min(lookahead, width + 1)
            # Refill before yielding, so the window keeps working while the caller does.
            refill()
            yield page
    finally:
        await _cancel_all([task for _, task in window])


async def _cancel_all(tasks: Sequence[asyncio.Task[_T]] | deque[asyncio.Task[_T]]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        # gather collects every outcome (no "exception was never retrieved"), yet still lets a
        # cancellation of the caller itself propagate.
        await asyncio.gather(*tasks, return_exceptions=True)
