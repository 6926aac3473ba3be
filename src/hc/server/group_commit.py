"""Settle one group of queued writes: wait for the group's result, then wake each caller with its own.

The group writers (``Database.put_file``, ``SmallPuts.put`` and ``SmallBlobs.store``) queue callers
with a waiter each and store a whole group per thread hop; this is the part they share. A failure
of the whole group (the thread call raised) goes to every caller still waiting; a per-item
``Exception`` in the results goes to that item's caller only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

__all__ = ["settle_group"]

T = TypeVar("T")
R = TypeVar("R")


async def settle_group(
    waiters: Sequence[asyncio.Future[R]],
    items: list[T],
    store: Callable[[list[T]], Awaitable[Sequence[R | Exception]]],
) -> None:
    """Store the group (``store(items)``: one result per waiter, in order) and resolve each waiter.

    ``store`` is called here rather than by the caller so that a failure to even start it (an
    executor already shut down) reaches the waiters too instead of leaving them hanging. Re-raises
    only a ``BaseException`` that is not an ``Exception`` (cancellation, exit), after passing it to
    the waiters, so the flushing task stops as it was asked to.
    """
    try:
        outcomes = await store(items)
    except BaseException as exc:
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(exc)
        if not isinstance(exc, Exception):
            raise
        return
    for waiter, outcome in zip(waiters, outcomes, strict=True):
        if waiter.done():
            continue
        if isinstance(outcome, Exception):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)
