"""Durable resume state of one job, in SQLite (one file per job under ``$HC_HOME/jobs/``).

Per item the journal remembers what a re-run needs to carry on rather than start again:

- its status (``pending`` / ``done`` / ``failed``) and a *fingerprint* of the source (size, mtime
  and inode for a local file; size and sha256 for a remote one). A changed source invalidates the
  partial state, because resuming it would splice two different files together;
- for an upload, the session id and the offset the server last acknowledged (on resume the server
  is asked again: the journal says *which* session, the server what it holds);
- for a download, the ``.part`` path, the byte ranges of its plan and the verified bytes written
  from the start of each range.

Writes are batched into one transaction per ``commit_every`` writes or ``commit_interval``
seconds, so a million-item job does not pay a commit per chunk; ``flush()`` (called on completion,
on cancellation and periodically) commits the rest. A hard kill loses at most the last batch, which
costs re-sending a little, never a wrong file: every download is verified against its digest
before it gets its final name.

Only the engine touches this file; the server's SQL lives in ``hc.server.metadata``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from hc.errors import StorageError, UsageError
from hc.protocol.ranges import ByteRange
from hc.transfer._sqlite import connect_wal

__all__ = ["Journal", "JournalEntry", "job_key"]

_SCHEMA_VERSION: Final = 1
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS items (
    key         TEXT PRIMARY KEY,
    status      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    size        INTEGER NOT NULL,
    session_id  TEXT,
    acked       INTEGER NOT NULL DEFAULT 0,
    part_path   TEXT,
    sha256      TEXT,
    error       TEXT,
    updated     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS parts (
    key   TEXT NOT NULL,
    idx   INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end   INTEGER NOT NULL,
    done  INTEGER NOT NULL,
    PRIMARY KEY (key, idx)
) WITHOUT ROWID;
"""

PENDING: Final = "pending"
DONE: Final = "done"
FAILED: Final = "failed"


def job_key(*identity: str) -> str:
    """A stable file-name-safe key for a job from what identifies it (verb, registry, version, args)."""
    return hashlib.sha256("\0".join(identity).encode("utf-8", "surrogatepass")).hexdigest()[:24]


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalEntry:
    key: str
    status: str
    fingerprint: str
    size: int
    session_id: str | None
    acked: int
    part_path: str | None
    sha256: str | None
    error: str | None


class Journal:
    """Resume state for one job. Use from one thread at a time (the event loop's)."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        *,
        lock_fd: int | None = None,
        commit_every: int = 512,
        commit_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = connection
        self._lock_fd = lock_fd
        self._commit_every = commit_every
        self._commit_interval = commit_interval
        self._clock = clock
        self._pending_writes = 0
        self._batch_started = 0.0
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    @classmethod
    def open(cls, path: Path, *, commit_every: int = 512, commit_interval: float = 0.5) -> Journal:
        """Open (creating if needed) the journal at ``path``. Refuses a second concurrent opener,
        since two processes resuming the same job would write the same ``.part`` files."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise UsageError(f"another hc process is running this job (journal {path} is locked)") from None
        try:
            connection = connect_wal(path)
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, _SCHEMA_VERSION):
                raise StorageError(f"journal {path} has schema {version}; this hc knows {_SCHEMA_VERSION}")
            return cls(
                connection, lock_fd=lock_fd, commit_every=commit_every, commit_interval=commit_interval
            )
        except sqlite3.Error as exc:
            os.close(lock_fd)
            raise StorageError(f"cannot open job journal {path}: {exc}") from exc
        except BaseException:
            os.close(lock_fd)
            raise

    @classmethod
    def in_memory(cls) -> Journal:
        """A journal that lives only as long as the job (when no resume directory is configured)."""
        return cls(sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False))

    def close(self) -> None:
        try:
            self.flush()
            self._db.close()
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- batching -----------------------------------------------------------------------------

    def _write(self, sql: str, params: Sequence[object]) -> None:
        try:
            if not self._db.in_transaction:
                self._db.execute("BEGIN")
                self._batch_started = self._clock()
            self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise StorageError(f"job journal write failed: {exc}") from exc
        self._pending_writes += 1
        if (
            self._pending_writes >= self._commit_every
            or self._clock() - self._batch_started >= self._commit_interval
        ):
            self.flush()

    def flush(self) -> None:
        """Commit every batched write."""
        if self._db.in_transaction:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StorageError(f"job journal commit failed: {exc}") from exc
        self._pending_writes = 0

    # --- items --------------------------------------------------------------------------------

    def get(self, key: str) -> JournalEntry | None:
        row = self._db.execute(
            "SELECT key, status, fingerprint, size, session_id, acked, part_path, sha256, error"
            " FROM items WHERE key = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        return JournalEntry(
            key=row[0],
            status=row[1],
            fingerprint=row[2],
            size=row[3],
            session_id=row[4],
            acked=row[5],
            part_path=row[6],
            sha256=row[7],
            error=row[8],
        )

    def begin(self, key: str, *, fingerprint: str, size: int) -> JournalEntry | None:
        """Record that ``key`` is being worked on. Returns the earlier entry when its partial state
        is still valid for this source, and ``None`` (after forgetting that state) when the source
        changed or nothing was known."""
        previous = self.get(key)
        if previous is not None and previous.fingerprint == fingerprint and previous.size == size:
            if previous.status != PENDING:
                self._write("UPDATE items SET status = ?, error = NULL WHERE key = ?", (PENDING, key))
            return previous
        self._write("DELETE FROM parts WHERE key = ?", (key,))
        self._write(
            "INSERT OR REPLACE INTO items (key, status, fingerprint, size, updated) VALUES (?, ?, ?, ?, ?)",
            (key, PENDING, fingerprint, size, time.time()),
        )
        return None

    def set_session(self, key: str, session_id: str | None, *, acked: int = 0) -> None:
        self._write(
            "UPDATE items SET session_id = ?, acked = ?, updated = ? WHERE key = ?",
            (session_id, acked, time.time(), key),
        )

    def set_acked(self, key: str, acked: int) -> None:
        """The bytes the server acknowledged for the item's session (for reports and dry runs; on
        resume the server is asked again, since it is the authority on what it holds)."""
        self._write("UPDATE items SET acked = ? WHERE key = ?", (acked, key))

    def set_download(self, key: str, part_path: str, ranges: Sequence[ByteRange]) -> None:
        """Start a fresh download plan: the ``.part`` path and its ranges, nothing verified yet."""
        self._write(
            "UPDATE items SET part_path = ?, updated = ? WHERE key = ?", (part_path, time.time(), key)
        )
        self._write("DELETE FROM parts WHERE key = ?", (key,))
        for index, part in enumerate(ranges):
            self._write(
                "INSERT INTO parts (key, idx, start, end, done) VALUES (?, ?, ?, ?, 0)",
                (key, index, part.start, part.end),
            )

    def download_plan(self, key: str) -> tuple[list[ByteRange], dict[int, int]]:
        """The ranges recorded for a download and the verified bytes of each (by index)."""
        rows = self._db.execute("SELECT idx, start, end, done FROM parts WHERE key = ? ORDER BY idx", (key,))
        ranges: list[ByteRange] = []
        progress: dict[int, int] = {}
        for index, start, end, done in rows:
            if index != len(ranges):  # a gap means a damaged plan: start over
                return [], {}
            ranges.append(ByteRange(start, end))
            progress[index] = done
        return ranges, progress

    def set_progress(self, key: str, index: int, done: int) -> None:
        self._write("UPDATE parts SET done = ? WHERE key = ? AND idx = ?", (done, key, index))

    def reset(self, key: str) -> None:
        """Forget an item's partial state (its ``.part`` or session is gone or untrustworthy)."""
        self._write("DELETE FROM parts WHERE key = ?", (key,))
        self._write(
            "UPDATE items SET session_id = NULL, acked = 0, part_path = NULL, status = ?, updated = ?"
            " WHERE key = ?",
            (PENDING, time.time(), key),
        )

    def mark_done(self, key: str, *, sha256: str | None) -> None:
        self._write("DELETE FROM parts WHERE key = ?", (key,))
        self._write(
            "UPDATE items SET status = ?, sha256 = ?, session_id = NULL, acked = 0, part_path = NULL,"
            " error = NULL, updated = ? WHERE key = ?",
            (DONE, sha256, time.time(), key),
        )

    def mark_failed(self, key: str, error: str) -> None:
        self._write(
            "UPDATE items SET status = ?, error = ?, updated = ? WHERE key = ?",
            (FAILED, error, time.time(), key),
        )

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT status, COUNT(*) FROM items GROUP BY status").fetchall())
