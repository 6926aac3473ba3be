"""Writing inside a download's destination without being led out of it or into another file.

A pull writes where a listing says, inside a destination folder that other local users may share
(``/tmp``, a team's mount). Checking a path and then using it by name is a race they can win: a
folder swapped for a link, a link, FIFO or hard link planted at a ``.part`` name. So files are
created exclusively or vetted after opening (``open_own_file``), and folders are walked one
descriptor at a time from the resolved destination, never following a link out of it
(``open_tree_directory``). Linux and other POSIX systems (``dir_fd``, ``O_NOFOLLOW``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from hc.errors import UnsafePathError

__all__ = ["is_own_file", "located", "open_child_directory", "open_own_file", "open_tree_directory"]

_O_BINARY: Final = getattr(os, "O_BINARY", 0)
_O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK: Final = getattr(os, "O_NONBLOCK", 0)
_EUID: Final = os.geteuid() if hasattr(os, "geteuid") else None


def is_own_file(st: os.stat_result) -> bool:
    """A file hc may write into: a regular file with no other name (a hard link planted at the
    ``.part`` name would carry the bytes, or a truncation, to the file it also names), owned by
    this user (another user's file, writable by all, would keep its owner after the rename: the
    owner could then change the verified file under its final name)."""
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and (_EUID is None or st.st_uid == _EUID)


def open_own_file(
    path: Path | str, flags: int, mode: int = 0o644, *, dir_fd: int | None = None, truncate: bool = False
) -> int:
    """Open, creating it if need be, one of hc's own temporary files (a download's ``.part``), never
    through a symlink at its name, never blocking on a FIFO there, never into another file's bytes.

    The name is hc's: whatever else is there was put by someone else. A link, followed, would write
    the download into whatever it points at (a classic attack on shared folders); a FIFO would make
    the open wait for a reader forever; a hard link would share its bytes with another name. Any of
    those is removed (``unlink`` follows nothing) and a new file created in its place, exclusively,
    so something planted again in between makes the open fail instead of being used. ``truncate``
    empties the file once it is known to be hc's (``O_TRUNC`` at the open would act on whatever
    was planted first). ``path`` is relative to ``dir_fd`` when that is given."""
    flags = (flags & ~os.O_TRUNC) | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY | _O_NONBLOCK
    try:  # the usual case, nothing there: a file this call creates is hc's, no need to look
        return os.open(path, flags | os.O_EXCL, mode, dir_fd=dir_fd)
    except FileExistsError:
        pass
    try:
        fd = os.open(path, flags, mode, dir_fd=dir_fd)
    except OSError as exc:
        # ELOOP: a symlink (O_NOFOLLOW); ENXIO: a FIFO nobody reads (O_NONBLOCK); EISDIR and the
        # rest are real errors of the item.
        if exc.errno not in (errno.ELOOP, errno.ENXIO):
            raise
        planted = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISREG(planted.st_mode) or stat.S_ISDIR(planted.st_mode):
            raise
    else:
        try:
            st = os.fstat(fd)
            if is_own_file(st):
                if truncate and st.st_size:
                    os.ftruncate(fd, 0)
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    os.unlink(path, dir_fd=dir_fd)
    return os.open(path, flags | os.O_EXCL, mode, dir_fd=dir_fd)


_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_DIRECTORY_FLAGS: Final = os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC
#: links a walk follows (each resolving inside the tree) before it gives up, as the kernel does
_MAX_LINK_HOPS: Final = 40


def open_tree_directory(base: Path, folders: Sequence[str], *, create: bool, name: str) -> int:
    """Open the directory ``base/folders...`` without ever leaving ``base``, creating the missing
    ones with ``create``; returns its descriptor (the caller closes it).

    Every component is opened relative to its parent's descriptor, not following a link, so a
    directory swapped for a link after a path was checked cannot carry a write out of the tree
    (checking a path and then using it by name is a race another user of a shared folder can
    win). A link met on the way is followed only when it resolves inside ``base``: the walk
    starts again along the path it resolves to, in the same way. ``base`` itself (the caller's
    destination, already resolved) is trusted. Raises UnsafePathError for a link out of the tree
    (``name``, the item's path, for the message) and OSError for the rest (a file in the way)."""
    parts = list(folders)
    for _ in range(_MAX_LINK_HOPS):
        try:
            fd = os.open(base, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        except FileNotFoundError:
            if not create:
                raise
            base.mkdir(parents=True, exist_ok=True)  # the caller's own destination (removed mid-job?)
            fd = os.open(base, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        try:
            for index, part in enumerate(parts):
                try:
                    child = open_child_directory(fd, part, create=create)
                except OSError as exc:
                    raise located(exc, base.joinpath(*parts[:index])) from exc
                if child is None:  # a link: resolve it, check it, walk again along its target
                    parts = _resolved_inside(base, parts, index, name)
                    break
                os.close(fd)
                fd = child
            else:
                result, fd = fd, -1
                return result
        finally:
            if fd >= 0:
                os.close(fd)
    raise OSError(errno.ELOOP, "too many levels of symbolic links", str(base.joinpath(*parts)))


def open_child_directory(parent: int, part: str, *, create: bool) -> int | None:
    """The descriptor of directory ``part`` in ``parent``, made if missing (``create``), or
    ``None`` when ``part`` is a symlink."""
    for _ in range(2):
        try:
            return os.open(part, _DIRECTORY_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
            # mkdir never follows a link at its name; an existing one was made by another worker
            # meanwhile (or planted: the next open looks at it).
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o777, dir_fd=parent)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            if not stat.S_ISLNK(os.stat(part, dir_fd=parent, follow_symlinks=False).st_mode):
                raise
            return None
    return os.open(part, _DIRECTORY_FLAGS, dir_fd=parent)


def located(exc: OSError, directory: Path) -> OSError:
    """``exc`` naming its file by its full path: an error of a call relative to a directory's
    descriptor names the bare name (``Is a directory: f.part``), which tells a user little."""
    name = exc.filename
    if not isinstance(name, str) or "/" in name or exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror, str(directory / name))


def _resolved_inside(base: Path, parts: list[str], index: int, name: str) -> list[str]:
    """``parts`` with its first ``index + 1`` components (ending in a link) replaced by where they
    resolve to, or UnsafePathError when that is not strictly inside ``base``."""
    linked = base.joinpath(*parts[: index + 1])
    shown = "/".join(parts[: index + 1])
    try:
        resolved = linked.resolve()
    except (OSError, RuntimeError) as exc:  # a loop of links (RuntimeError before Python 3.13)
        raise OSError(errno.ELOOP, f"{shown!r} is a loop of symbolic links", str(linked)) from exc
    if not resolved.is_relative_to(base):  # (the root itself is inside, as for safe_join)
        raise UnsafePathError(f"unsafe path {name!r}: {shown!r} is a link that leads out of the destination")
    return [*resolved.relative_to(base).parts, *parts[index + 1 :]]
