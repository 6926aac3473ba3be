"""Keep the process's resident memory close to what it actually holds.

glibc gives each thread that contends for malloc an arena of its own (up to 8 per core), and
memory freed into an arena mostly stays resident. The server moves large request bodies through
worker threads (hash lanes, writers, the SQLite thread), so buffers are allocated in one arena and
freed from another: a 1 GiB upload in four parallel parts left ~100 MiB resident beyond the live
buffers. Two arenas keep that near the live set at no measurable CPU cost (most allocation happens
under the GIL anyway, so arenas rarely contend). A fixed ``M_MMAP_THRESHOLD`` would return every
large buffer at once, but it cost ~30 % more CPU per GiB in page faults, so it is not used.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Final

__all__ = ["limit_malloc_arenas"]

_M_ARENA_MAX: Final = -8
_ARENAS: Final = 2

_done = False


def limit_malloc_arenas(arenas: int = _ARENAS) -> None:
    """Cap glibc's malloc arenas for this process (once; a no-op elsewhere). Arenas that already
    exist stay, so call it before the first worker threads start where possible."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return
    _done = True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return  # not glibc (musl has no arenas to cap)
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    mallopt(_M_ARENA_MAX, arenas)
