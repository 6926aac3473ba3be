"""Opening the client's own SQLite files (the hash cache, job journals) in WAL mode."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Final

__all__ = ["connect_wal"]

#: How long an open waits for another process holding the file (busy timeout and WAL switch).
_WAIT_S: Final = 5.0


def connect_wal(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode, WAL journal, ``synchronous=NORMAL``, with a busy timeout
    from the first statement on.

    Several processes may open one new file at once (the shards of a migration share the hash
    cache). Switching a file to WAL takes an exclusive lock, and SQLite answers "database is
    locked" to the others at once, without its busy handler; the mode is a property of the file,
    so they retry until one switch has landed (then the PRAGMA merely reads it)."""
    connection = sqlite3.connect(path, timeout=_WAIT_S, isolation_level=None, check_same_thread=False)
    try:
        deadline = time.monotonic() + _WAIT_S
        while True:
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        connection.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        connection.close()
        raise
    return connection
