"""One transfer's state machine: status, result or exception, failure cleanups, done callbacks.

Tasks report to the coordinator and never to each other. Undo actions are registered where the
resource is created (opening an upload session registers its abort) and run exactly once, and only
when the item *fails*: a cancelled item keeps its session and ``.part`` file so the next run can
resume them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

import anyio

from hc.transfer.results import ItemResult, Status

__all__ = ["InvalidTransition", "TransferCoordinator"]

_log = logging.getLogger(__name__)

_ALLOWED: Final[dict[Status, frozenset[Status]]] = {
    Status.QUEUED: frozenset(
        {Status.RUNNING, Status.SKIPPED, Status.PLANNED, Status.FAILED, Status.CANCELLED}
    ),
    Status.RUNNING: frozenset({Status.DONE, Status.SKIPPED, Status.PLANNED, Status.FAILED, Status.CANCELLED}),
}

Cleanup = Callable[[], Awaitable[object]]


class InvalidTransition(RuntimeError):
    """A programming error: the engine moved an item through an impossible state change."""


class TransferCoordinator:
    """Holds the truth about one item. The engine calls ``start``, then exactly one of
    ``finish`` / ``fail`` / ``cancel``; ``result`` is available once the status is final."""

    __slots__ = (
        "_cleanups",
        "_done_callbacks",
        "_exception",
        "_result",
        "_status",
        "attempts",
        "path",
        "size",
    )

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = size
        self.attempts = 0
        self._status = Status.QUEUED
        self._result: ItemResult | None = None
        self._exception: BaseException | None = None
        self._cleanups: list[Cleanup] = []
        self._done_callbacks: list[Callable[[ItemResult], None]] = []

    def __repr__(self) -> str:
        return (
            f"<TransferCoordinator path={self.path!r} status={self._status.value} attempts={self.attempts}>"
        )

    @property
    def status(self) -> Status:
        return self._status

    @property
    def done(self) -> bool:
        return self._status.final

    @property
    def exception(self) -> BaseException | None:
        return self._exception

    @property
    def result(self) -> ItemResult:
        if self._result is None:
            raise InvalidTransition(f"{self!r} has no result yet")
        return self._result

    def _move(self, status: Status) -> None:
        if status not in _ALLOWED.get(self._status, frozenset()):
            raise InvalidTransition(f"{self!r} cannot become {status.value}")
        self._status = status

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._move(Status.RUNNING)

    def add_failure_cleanup(self, cleanup: Cleanup) -> None:
        """Register an undo to run if (and only if) this item fails."""
        self._cleanups.append(cleanup)

    def discard_failure_cleanups(self) -> None:
        """The resources were consumed (a session was committed): nothing is left to undo."""
        self._cleanups.clear()

    def add_done_callback(self, callback: Callable[[ItemResult], None]) -> None:
        self._done_callbacks.append(callback)

    def finish(
        self,
        status: Status = Status.DONE,
        *,
        action: str = "",
        sha256: str | None = None,
        local_path: str | None = None,
    ) -> ItemResult:
        if status not in (Status.DONE, Status.SKIPPED, Status.PLANNED):
            raise InvalidTransition(f"finish() cannot end in {status.value}")
        self._move(status)
        self._cleanups.clear()
        return self._announce(
            ItemResult(
                path=self.path,
                status=status,
                size=self.size,
                sha256=sha256,
                action=action,
                attempts=max(self.attempts, 1 if status is Status.DONE else 0),
                local_path=local_path,
            )
        )

    async def fail(
        self,
        exc: BaseException,
        *,
        message: str | None = None,
        action: str = "",
        local_path: str | None = None,
    ) -> ItemResult:
        """Mark failed, then run the failure cleanups once each, shielded from cancellation."""
        self._move(Status.FAILED)
        self._exception = exc
        cleanups, self._cleanups = self._cleanups, []
        with anyio.CancelScope(shield=True):
            for cleanup in reversed(cleanups):
                try:
                    await cleanup()
                except Exception as cleanup_exc:  # an undo that fails must not hide the real error
                    _log.debug("cleanup for %s failed: %s", self.path, cleanup_exc)
        return self._announce(
            ItemResult(
                path=self.path,
                status=Status.FAILED,
                size=self.size,
                action=action,
                attempts=self.attempts,
                error=message or str(exc) or type(exc).__name__,
                local_path=local_path,
            )
        )

    def cancel(self, *, action: str = "", local_path: str | None = None) -> ItemResult:
        """Mark cancelled; cleanups are *not* run, so the partial state stays resumable."""
        self._move(Status.CANCELLED)
        self._cleanups.clear()
        return self._announce(
            ItemResult(
                path=self.path,
                status=Status.CANCELLED,
                size=self.size,
                action=action,
                attempts=self.attempts,
                error="cancelled",
                local_path=local_path,
            )
        )

    def _announce(self, result: ItemResult) -> ItemResult:
        self._result = result
        for callback in self._done_callbacks:
            callback(result)
        return result
