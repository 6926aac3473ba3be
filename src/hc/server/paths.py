"""Where the embedded registry keeps its store, and the layout inside it.

The default follows the XDG base-directory spec (``$XDG_DATA_HOME/hc``, else ``~/.local/share/hc``)
because the store is data, not configuration or cache: deleting it loses artifacts. ``$HC_HOME``
overrides it for people who keep everything of a tool in one place (and for tests).

Layout (one store may be shared by several hc processes at once):

```
DATA_DIR/
  registry.db (+ -wal, -shm)   SQLite metadata (WAL)
  blobs/sha256/ab/<hex>         content-addressed file bodies, immutable once renamed in
  tmp/                          in-flight uploads; never read as data, swept when their writer is gone
  uploads/<id>.data             resumable upload sessions' bytes (preallocated, written at offsets);
                                removed on commit/abort/expiry, swept when no session row names them
  local-credentials.json        the "local" account's API key (0600), for the in-process client
```
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["StoreLayout", "default_data_dir"]


def default_data_dir() -> Path:
    """``$HC_HOME``, else ``$XDG_DATA_HOME/hc``, else ``~/.local/share/hc``."""
    hc_home = os.environ.get("HC_HOME")
    if hc_home:
        return Path(hc_home).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    # The XDG spec says a relative $XDG_DATA_HOME is invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "hc"
    return Path.home() / ".local" / "share" / "hc"


@dataclass(frozen=True, slots=True)
class StoreLayout:
    root: Path

    @property
    def database(self) -> Path:
        return self.root / "registry.db"

    @property
    def blobs(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def credentials(self) -> Path:
        return self.root / "local-credentials.json"

    def create(self) -> None:
        """Create the folders (0700: the store holds hashed keys and private artifacts). A store folder
        that already exists with wider permissions (say a data dir made 0755 by hand) is narrowed
        to 0700 when it is the user's own: otherwise its artifacts and database would be readable
        by every local user."""
        for folder in (self.root, self.blobs.parent, self.blobs, self.tmp, self.uploads):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = folder.stat()
            if os.name == "posix" and st.st_mode & 0o077 and st.st_uid == os.geteuid():
                folder.chmod(0o700)
