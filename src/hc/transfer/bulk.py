"""Bulk operations that move no bytes (tag a version, copy one on the server): one bounded pool.

``run_bulk`` is the engine's shape without the byte plumbing:

```
targets (async, lazy) ──► bounded stream (backlog) ──► workers ──► per target: journal? dry run? act
every call holds one token of ONE CapacityLimiter (``concurrency``); retries by the pacer
```

- Memory is flat whatever the number of targets: they are read from the caller's iterator only as
  workers free up.
- ``act`` is retried by ``call_with_retries`` (transient errors, 429 with Retry-After through one
  shared gate, so a rate-limited server sees the whole job back off).
- The journal remembers finished targets: a re-run after a kill skips them (``skipped``,
  action ``done-before``) without a request.
- A dry run calls ``plan`` instead (read-only: may ask the server whether the target would
  change) and ends each target ``planned`` or ``skipped``.
- Results are ``ItemResult``s through ``Accounting``, so the CLI's progress and ``--results``
  writers work unchanged; sizes are 0.

A job that changes the very metadata a listing filters on (``metadata delete --where``) must not
let the server filter: targets would leave the filtered set while offset paging walks it, and
pages would skip them. ``hc.cli._bulk_select`` filters those on the client instead.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

import anyio

from hc.errors import HcError
from hc.transfer.accounting import Accounting
from hc.transfer.config import TransferConfig
from hc.transfer.coordinator import TransferCoordinator
from hc.transfer.journal import DONE, Journal
from hc.transfer.pacer import RateGate, RetryEvent, call_with_retries
from hc.transfer.results import Status, Summary

__all__ = ["BulkOutcome", "run_bulk"]

T = TypeVar("T")

_ITEM_ERRORS: Final = (HcError, OSError)


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    """What ``act`` or ``plan`` says about a target: ``changed=False`` ends it ``skipped``."""

    changed: bool = True
    action: str = ""


async def run_bulk(
    targets: AsyncIterable[T],
    *,
    key: Callable[[T], str],
    act: Callable[[T], Awaitable[BulkOutcome]],
    plan: Callable[[T], Awaitable[BulkOutcome]] | None = None,
    config: TransferConfig,
    accounting: Accounting,
    journal: Journal | None = None,
    action: str = "",
    draw: Callable[[], float] = random.random,
) -> Summary:
    """Run ``act`` (or, in a dry run, ``plan``) once per target, ``config.concurrency`` at a time.

    ``key(target)`` names a target in the journal and in results. Failures are per target; a
    non-item error (a bug) or cancellation stops the job. Returns the job's summary.
    """
    policy = config.retry_policy
    gate = RateGate()
    limiter = anyio.CapacityLimiter(config.concurrency)
    send, receive = anyio.create_memory_object_stream[T](config.backlog)
    accounting.start()

    async def call(
        fn: Callable[[T], Awaitable[BulkOutcome]], target: T, co: TransferCoordinator
    ) -> BulkOutcome:
        async def attempt() -> BulkOutcome:
            async with limiter:
                return await fn(target)

        def report(event: RetryEvent) -> None:
            co.attempts += 1
            accounting.retried(co.path, attempt=event.attempt, delay=event.delay, error=event.error)

        return await call_with_retries(attempt, policy, on_retry=report, gate=gate, draw=draw)

    async def one(target: T) -> None:
        name = key(target)
        co = TransferCoordinator(name, 0)
        co.add_done_callback(accounting.finished)
        try:
            if journal is not None and not config.dry_run:
                prior = journal.get(name)
                if prior is not None and prior.status == DONE:
                    co.finish(Status.SKIPPED, action="done-before")
                    return
            if config.dry_run:
                outcome = await call(plan, target, co) if plan is not None else BulkOutcome(True, action)
                co.finish(
                    Status.PLANNED if outcome.changed else Status.SKIPPED, action=outcome.action or action
                )
                return
            co.start()
            if journal is not None:
                journal.begin(name, fingerprint="", size=0)
            co.attempts = 1
            outcome = await call(act, target, co)
            if journal is not None:
                journal.mark_done(name, sha256=None)
            co.finish(Status.DONE if outcome.changed else Status.SKIPPED, action=outcome.action or action)
        except _ITEM_ERRORS as exc:
            if journal is not None and not config.dry_run:
                journal.mark_failed(name, str(exc))
            await co.fail(exc, message=str(exc) or type(exc).__name__, action=action)
        except BaseException:
            if not co.done:
                co.cancel(action=action)
            raise

    async def feed() -> None:
        async with send:
            async for target in targets:
                accounting.queued(key(target), 0)
                await send.send(target)

    async def work(stream: anyio.abc.ObjectReceiveStream[T]) -> None:
        async with stream:
            async for target in stream:
                await one(target)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(feed)
            async with receive:
                for _ in range(config.concurrency):
                    tg.start_soon(work, receive.clone())
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise
    finally:
        if journal is not None and not config.dry_run:
            journal.flush()
        accounting.stop()
    return accounting.summary()


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]
