"""Walking paged listings quickly without unbounded fan-out, always yielding pages in order.

Two page styles exist in the Harness API:

- v1 pages know their total (``pageCount``): fetch page 0, learn the count, then fetch the rest
  concurrently with a bounded look-ahead window, yielding each page when its turn comes;
- v3 pages only say ``hasMore``: fetch the next page while the caller processes the current one.

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
) -> AsyncGenerator[CursorPage[_T], None]:
    """Yield pages 0, 1, … until one says ``has_more=False``, fetching one page ahead."""
    pending: asyncio.Task[CursorPage[_T]] | None = asyncio.ensure_future(fetch(0))
    try:
        while pending is not None:
            page = await pending
            pending = asyncio.ensure_future(fetch(page.index + 1)) if page.has_more else None
            yield page
    finally:
        await _cancel_all([pending] if pending is not None else [])


async def _cancel_all(tasks: Sequence[asyncio.Task[_T]] | deque[asyncio.Task[_T]]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        # gather collects every outcome (no "exception was never retrieved"), yet still lets a
        # cancellation of the caller itself propagate.
        await asyncio.gather(*tasks, return_exceptions=True)
