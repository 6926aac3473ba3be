"""A local cache of file digests, so a re-run does not re-hash files that did not change.

An entry is keyed by the absolute path and valid only while ``(size, mtime_ns, inode)`` still
match. Like git's index, it refuses to remember a file modified within the last two seconds
("racily clean"): a write landing in the same mtime tick as the hash would otherwise go unseen.
Writes are batched in memory and written in one short transaction; several hc processes may
share the file (WAL, busy timeout), and a cache that is busy or broken only loses entries.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from hc.errors import StorageError
from hc.protocol.digest import ALGORITHMS, Checksums
from hc.protocol.identifiers import is_utf8_text
from hc.transfer._sqlite import connect_wal

__all__ = ["HashCache"]

_log = logging.getLogger(__name__)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS files (
    path     TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode    INTEGER NOT NULL,
    md5      TEXT,
    sha1     TEXT,
    sha256   TEXT NOT NULL,
    sha512   TEXT
) WITHOUT ROWID;
"""
_RACY_WINDOW_NS: Final = 2_000_000_000
#: paths remembered while the cache holds only this process's rows (then it just asks SQLite)
_MAX_OWN: Final = 100_000


class HashCache:
    """``get``/``put`` digests by path and stat identity. Use from one thread at a time."""

    def __init__(self, connection: sqlite3.Connection, *, commit_every: int = 256) -> None:
        self._db = connection
        self._commit_every = commit_every
        #: rows not yet written, by path (``get`` sees them too)
        self._rows: dict[str, tuple[object, ...]] = {}
        self._db.executescript(_SCHEMA)
        # A cache that starts empty (a first run, a fresh HC_HOME) can only hold what this
        # process writes: remembering those paths spares a SELECT per file that cannot hit.
        # Rows another process adds meanwhile are missed, which only costs a hash.
        self._only_own: bool = self._is_empty()
        self._own: set[str] = set()

    def _is_empty(self) -> bool:
        try:
            return self._db.execute("SELECT 1 FROM files LIMIT 1").fetchone() is None
        except sqlite3.Error:
            return False

    @classmethod
    def open(cls, path: Path) -> HashCache:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            return cls(connect_wal(path))  # shared by processes: see connect_wal
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open hash cache {path}: {exc}") from exc

    @classmethod
    def in_memory(cls) -> HashCache:
        return cls(sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False))

    def get(
        self, path: str, *, size: int, mtime_ns: int, inode: int, require: Iterable[str] = ("sha256",)
    ) -> Checksums | None:
        """The cached digests, or ``None`` when unknown, stale, or missing a required algorithm."""
        if not is_utf8_text(path):  # a non-UTF-8 file name: not cached, rather than a failed job
            return None
        waiting = self._rows.get(path)
        if waiting is not None:
            row: tuple[object, ...] | None = waiting[4:] if waiting[1:4] == (size, mtime_ns, inode) else None
        elif self._only_own and path not in self._own:
            return None
        else:
            try:
                row = self._db.execute(
                    "SELECT md5, sha1, sha256, sha512 FROM files"
                    " WHERE path = ? AND size = ? AND mtime_ns = ? AND inode = ?",
                    (path, size, mtime_ns, inode),
                ).fetchone()
            except sqlite3.Error as exc:
                _log.debug("hash cache: read failed (%s); hashing instead", exc)
                return None
        if row is None:
            return None
        md5, sha1, sha256, sha512 = (None if v is None else str(v) for v in row)
        if sha256 is None:
            return None
        found = Checksums(size=size, md5=md5, sha1=sha1, sha256=sha256, sha512=sha512)
        if any(found.get(algorithm) is None for algorithm in require):
            return None
        return found

    def put(
        self,
        path: str,
        *,
        mtime_ns: int,
        inode: int,
        checksums: Checksums,
        now_ns: int | None = None,
        trust_recent: bool = False,
    ) -> bool:
        """Remember digests; returns False (and stores nothing) for a racily recent file.

        ``trust_recent`` is for a file the engine itself just wrote, verified and renamed: its
        digests are known from the verification, not from a read that could race a writer.
        """
        now = time.time_ns() if now_ns is None else now_ns
        if not is_utf8_text(path) or (not trust_recent and now - mtime_ns < _RACY_WINDOW_NS):
            return False
        digests = [checksums.get(algorithm) for algorithm in ALGORITHMS]
        # Rows wait in memory and go to disk in one short transaction per batch: the cache is
        # shared by every hc process of a user, so holding its write lock between puts would make
        # the others wait (and a cache must never be the reason a transfer fails).
        self._rows[path] = (path, checksums.size, mtime_ns, inode, *digests)
        if len(self._rows) >= self._commit_every:
            self.flush()
        return True

    def flush(self) -> None:
        """Write the waiting rows. A busy or broken cache only loses them: it is a cache."""
        rows, self._rows = list(self._rows.values()), {}
        if not rows:
            return
        if self._only_own:
            self._own.update(str(row[0]) for row in rows)
            if len(self._own) > _MAX_OWN:
                self._only_own, self._own = False, set()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO files (path, size, mtime_ns, inode, md5, sha1, sha256, sha512)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            _log.debug("hash cache: %d entries not saved (%s)", len(rows), exc)

    def close(self) -> None:
        self.flush()
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
