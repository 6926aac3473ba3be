"""Linux file-system calls that Python's ``os`` module does not expose, loaded once through ctypes.

Both are optimisations with a portable fallback, so each is ``None`` where libc lacks it (not
Linux, musl without the symbol) and callers then do the plain thing (an fsync per file, or no
early writeback). The server's blob store and the client's downloads share them.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable
from typing import Any, Final

__all__ = ["start_writeback", "syncfs"]


def _libc_function(name: str) -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        # The running program's own symbols, libc's among them (dlopen(NULL)): no
        # ctypes.util.find_library, which runs /sbin/ldconfig in a subprocess on every start.
        libc = ctypes.CDLL(None, use_errno=True)
        return getattr(libc, name)
    except (OSError, AttributeError):
        return None


def _load_start_writeback() -> Callable[[int, int, int], None] | None:
    """``sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)``: start writing a range to
    disk without waiting for it. Kicked after each batch of a large file, it overlaps the disk with
    the network, so the fsync at the end waits for the tail only instead of the whole file."""
    function = _libc_function("sync_file_range")
    if function is None:
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint)
    function.restype = ctypes.c_int
    write = 2  # SYNC_FILE_RANGE_WRITE

    def start_writeback(fd: int, offset: int, length: int) -> None:
        function(fd, offset, length, write)  # best effort: a later fsync is what makes it durable

    return start_writeback


def _load_syncfs() -> Callable[[int], None] | None:
    """``syncfs(fd)``: flush every dirty page and inode of the file system holding ``fd`` in one
    call (one flush for a batch of files instead of an fsync each)."""
    function = _libc_function("syncfs")
    if function is None:
        return None
    function.argtypes = (ctypes.c_int,)
    function.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        if function(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return syncfs


start_writeback: Final = _load_start_writeback()
syncfs: Final = _load_syncfs()
