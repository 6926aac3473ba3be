"""hc.api.pagination, v3 (``hasMore``) look-ahead: pages in order, the window's bound and growth,
what is asked for past the end (pure logic, fake fetcher)."""

from __future__ import annotations

import asyncio
import random
from contextlib import aclosing

import pytest

from hc.api.pagination import CursorPage, iter_cursor_pages
from hc.errors import RemoteError, TransientError


class FakeCursor:
    """``count`` pages of one item; each fetch takes a seeded random number of loop turns, so pages
    finish out of order. Pages past the end are empty with ``has_more=False`` (as a registry answers
    them), or fail when ``past_end_fails``. Records what was asked for and how much ran at once."""

    def __init__(
        self,
        count: int,
        *,
        seed: int = 0,
        turns: int = 20,
        jitter: bool = True,
        fail_at: int | None = None,
        past_end_fails: bool = False,
    ) -> None:
        self.count = count
        self.fail_at = fail_at
        self.past_end_fails = past_end_fails
        self.requested: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.consumed = 0
        self.max_ahead = 0  # pages requested but not yet handed to the consumer
        self._turns = turns
        self._jitter = jitter
        self._random = random.Random(seed)

    async def fetch(self, index: int) -> CursorPage[str]:
        self.requested.append(index)
        self.max_ahead = max(self.max_ahead, len(self.requested) - self.consumed)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            for _ in range(self._random.randint(0, self._turns) if self._jitter else self._turns):
                await asyncio.sleep(0)
            if index == self.fail_at:
                raise TransientError(f"page {index} failed")
            if index >= self.count:
                if self.past_end_fails:
                    raise RemoteError(f"page {index} does not exist")
                return CursorPage([], index=index, has_more=False)
            return CursorPage([f"item-{index}"], index=index, has_more=index + 1 < self.count)
        finally:
            self.in_flight -= 1

    async def walk(self, lookahead: int, expected_pages: int | None = None) -> list[str]:
        items: list[str] = []
        async for page in iter_cursor_pages(self.fetch, lookahead=lookahead, expected_pages=expected_pages):
            self.consumed += 1
            items.extend(page.items)
        return items


@pytest.mark.parametrize("count", [1, 2, 3, 9, 40])
@pytest.mark.parametrize("lookahead", [1, 2, 8])
@pytest.mark.parametrize("seed", [0, 1, 2])
async def test_pages_come_in_order_and_the_window_is_bounded(count: int, lookahead: int, seed: int) -> None:
    fake = FakeCursor(count, seed=seed * 100 + count * 10 + lookahead)
    assert await fake.walk(lookahead) == [f"item-{i}" for i in range(count)]
    assert fake.max_ahead <= lookahead
    assert fake.max_in_flight <= lookahead
    # every page is asked for once; past the end, at most lookahead - 1 speculative pages
    assert len(fake.requested) == len(set(fake.requested))
    assert set(range(count)) <= set(fake.requested)
    assert max(fake.requested) <= count - 1 + lookahead - 1


async def test_a_one_page_listing_costs_one_request() -> None:
    fake = FakeCursor(1)
    assert await fake.walk(8) == ["item-0"]
    assert fake.requested == [0]


async def test_lookahead_one_never_asks_past_the_end() -> None:
    fake = FakeCursor(7, seed=4)
    await fake.walk(1)
    assert fake.requested == list(range(7))


async def test_a_long_listing_fills_the_window() -> None:
    # Every fetch takes the same time and the consumer is eager: once the window has grown,
    # `lookahead` pages are in flight at once, and never more.
    fake = FakeCursor(60, turns=30, jitter=False)
    assert len(await fake.walk(8)) == 60
    assert fake.max_in_flight == 8
    assert fake.max_ahead == 8


async def test_a_slow_consumer_holds_at_most_the_window() -> None:
    fake = FakeCursor(30, seed=9)
    async for _ in iter_cursor_pages(fake.fetch, lookahead=4):
        fake.consumed += 1
        for _ in range(60):  # every outstanding fetch has time to finish
            await asyncio.sleep(0)
        assert len(fake.requested) - fake.consumed <= 4
    assert fake.consumed == 30


async def test_pages_past_the_end_never_surface_even_when_they_fail() -> None:
    fake = FakeCursor(5, seed=3, past_end_fails=True)
    assert await fake.walk(8) == [f"item-{i}" for i in range(5)]
    assert fake.in_flight == 0


async def test_a_failing_page_raises_after_the_pages_before_it() -> None:
    fake = FakeCursor(20, seed=11, fail_at=6)
    got: list[int] = []
    with pytest.raises(TransientError, match="page 6 failed"):
        async for page in iter_cursor_pages(fake.fetch, lookahead=8):
            got.append(page.index)
    assert got == [0, 1, 2, 3, 4, 5]
    assert fake.in_flight == 0


async def test_closing_early_cancels_what_is_in_flight() -> None:
    fake = FakeCursor(100, seed=7)
    async with aclosing(iter_cursor_pages(fake.fetch, lookahead=8)) as pages:
        async for page in pages:
            if page.index == 10:
                break
    await asyncio.sleep(0)
    assert fake.in_flight == 0
    assert max(fake.requested) <= 10 + 8


async def test_an_empty_page_ends_the_listing() -> None:
    async def fetch(index: int) -> CursorPage[str]:
        return CursorPage([] if index == 2 else [str(index)], index=index, has_more=index != 2)

    assert [p.index async for p in iter_cursor_pages(fetch, lookahead=8)] == [0, 1, 2]


async def test_lookahead_must_be_positive() -> None:
    with pytest.raises(ValueError):
        async for _ in iter_cursor_pages(FakeCursor(1).fetch, lookahead=0):
            pass


@pytest.mark.parametrize("count", [1, 3, 20])
async def test_with_the_expected_page_count_nothing_past_the_end_is_asked_for(count: int) -> None:
    fake = FakeCursor(count, turns=10, jitter=False)
    assert await fake.walk(8, expected_pages=count) == [f"item-{i}" for i in range(count)]
    assert sorted(fake.requested) == list(range(count))
    assert fake.max_in_flight == min(count, 8)  # the window opens at once


@pytest.mark.parametrize(("count", "expected"), [(12, 3), (12, 0), (5, 40)])
async def test_a_wrong_expectation_still_lists_every_page(count: int, expected: int) -> None:
    fake = FakeCursor(count, seed=count + expected)
    assert await fake.walk(8, expected_pages=expected) == [f"item-{i}" for i in range(count)]
    assert fake.max_ahead <= 8
    assert max(fake.requested) <= max(count - 1 + 7, expected - 1)
