"""What a transfer ends as: one status per item and a summary per job, ready for ``--results`` JSONL."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = ["ItemResult", "Status", "Summary"]


class Status(enum.Enum):
    """One item's lifecycle. queued → running → done | failed | skipped | cancelled; a dry run ends
    in ``planned``."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    PLANNED = "planned"

    @property
    def final(self) -> bool:
        return self not in (Status.QUEUED, Status.RUNNING)


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemResult:
    """The outcome of one item. ``action`` says what was (or, in a dry run, would be) done:
    ``upload``, ``upload-session``, ``download``, ``resume``, ``identical`` …"""

    path: str
    status: Status
    size: int
    sha256: str | None = None
    action: str = ""
    attempts: int = 1
    error: str | None = None
    local_path: str | None = None

    def to_json(self) -> dict[str, Any]:
        """One ``--results`` line; keys are stable, ``None`` values are kept so columns line up."""
        return {
            "path": self.path,
            "status": self.status.value,
            "size": self.size,
            "sha256": self.sha256,
            "action": self.action,
            "attempts": self.attempts,
            "error": self.error,
            "local_path": self.local_path,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    """Totals of one push or pull."""

    succeeded: int
    skipped: int
    failed: int
    cancelled: int
    planned: int
    bytes: int
    seconds: float

    @property
    def items(self) -> int:
        return self.succeeded + self.skipped + self.failed + self.cancelled + self.planned

    @property
    def throughput(self) -> float:
        """Bytes per second over the whole run (0 for an instant or empty run)."""
        return self.bytes / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.cancelled == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "succeeded": self.succeeded,
            "skipped": self.skipped,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "planned": self.planned,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "throughput": round(self.throughput, 1),
        }
