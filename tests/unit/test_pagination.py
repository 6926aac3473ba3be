"""hc.api.pagination: pages in order, bounded look-ahead, cancellation, errors (pure logic, fake fetcher)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from contextlib import aclosing
from typing import TypeVar

import pytest

from hc.api.pagination import CursorPage, NumberedPage, iter_cursor_pages, iter_numbered_pages
from hc.errors import TransientError

_P = TypeVar("_P")


class FakePages:
    """Serves ``count`` numbered pages; each fetch finishes after a random number of loop turns, so
    pages complete out of order. Records concurrency and which pages were asked for."""

    def __init__(self, count: int, *, fail_at: int | None = None, seed: int = 0) -> None:
        self.count = count
        self.fail_at = fail_at
        self.requested: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.cancelled: list[int] = []
        self._random = random.Random(seed)

    async def numbered(self, index: int) -> NumberedPage[str]:
        return await self._serve(
            index, lambda: NumberedPage([f"item-{index}"], index=index, count=self.count)
        )

    async def cursor(self, index: int) -> CursorPage[str]:
        return await self._serve(
            index, lambda: CursorPage([f"item-{index}"], index=index, has_more=index + 1 < self.count)
        )

    async def _serve(self, index: int, build: Callable[[], _P]) -> _P:
        self.requested.append(index)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            for _ in range(self._random.randint(0, 20)):
                await asyncio.sleep(0)
            if index == self.fail_at:
                raise TransientError(f"page {index} failed")
            return build()
        except asyncio.CancelledError:
            self.cancelled.append(index)
            raise
        finally:
            self.in_flight -= 1


@pytest.mark.parametrize("count", [0, 1, 2, 9, 50])
@pytest.mark.parametrize("lookahead", [1, 3, 8])
async def test_numbered_pages_come_in_order_with_bounded_lookahead(count: int, lookahead: int) -> None:
    fake = FakePages(count, seed=count * 31 + lookahead)
    pages = [page async for page in iter_numbered_pages(fake.numbered, lookahead=lookahead)]
    assert [p.index for p in pages] == list(range(max(count, 1)))
    assert sorted(fake.requested) == list(range(max(count, 1)))
    assert fake.max_in_flight <= lookahead


async def test_numbered_pages_overlap_when_allowed() -> None:
    fake = FakePages(30, seed=3)
    pages = [page async for page in iter_numbered_pages(fake.numbered, lookahead=8)]
    assert len(pages) == 30
    assert fake.max_in_flight > 1  # the rest really were fetched concurrently


async def test_lookahead_bounds_pages_held_for_a_slow_consumer() -> None:
    fake = FakePages(40, seed=5)
    seen = 0
    async for page in iter_numbered_pages(fake.numbered, lookahead=4):
        seen += 1
        for _ in range(50):  # a slow consumer: every outstanding fetch has time to finish
            await asyncio.sleep(0)
        # pages requested but not yet consumed never exceed the window
        assert len(fake.requested) - (page.index + 1) <= 4
    assert seen == 40


async def test_closing_early_cancels_pages_in_flight() -> None:
    fake = FakePages(100, seed=7)
    async with aclosing(iter_numbered_pages(fake.numbered, lookahead=8)) as pages:
        async for page in pages:
            if page.index == 2:
                break
    assert fake.in_flight == 0
    assert len(fake.requested) <= 2 + 1 + 8
    assert max(fake.requested) < 100


async def test_a_failing_page_raises_and_cancels_the_rest() -> None:
    fake = FakePages(20, fail_at=5, seed=11)
    got: list[int] = []
    with pytest.raises(TransientError, match="page 5 failed"):
        async for page in iter_numbered_pages(fake.numbered, lookahead=8):
            got.append(page.index)
    assert got == [0, 1, 2, 3, 4]  # everything before the failure, in order
    assert fake.in_flight == 0


async def test_failing_first_page_raises() -> None:
    fake = FakePages(3, fail_at=0)
    with pytest.raises(TransientError):
        async for _ in iter_numbered_pages(fake.numbered):
            pass


async def test_lookahead_must_be_positive() -> None:
    with pytest.raises(ValueError):
        async for _ in iter_numbered_pages(FakePages(1).numbered, lookahead=0):
            pass


@pytest.mark.parametrize("count", [1, 2, 7])
async def test_cursor_pages_in_order_until_has_more_is_false(count: int) -> None:
    fake = FakePages(count, seed=count)
    pages = [page async for page in iter_cursor_pages(fake.cursor)]
    assert [p.index for p in pages] == list(range(count))
    assert fake.requested == list(range(count))  # never asks past the last page
    assert fake.max_in_flight <= 1


async def test_cursor_prefetches_the_next_page_while_the_current_is_processed() -> None:
    fake = FakePages(5, seed=1)
    async with aclosing(iter_cursor_pages(fake.cursor)) as pages:
        async for page in pages:
            if page.index == 1:
                await asyncio.sleep(0)
                assert 2 in fake.requested  # already asked for while page 1 is being handled
                break
    assert fake.in_flight == 0
    assert 3 not in fake.requested


async def test_cursor_error_propagates() -> None:
    fake = FakePages(5, fail_at=3)
    got: list[int] = []
    with pytest.raises(TransientError):
        async for page in iter_cursor_pages(fake.cursor):
            got.append(page.index)
    assert got == [0, 1, 2]
