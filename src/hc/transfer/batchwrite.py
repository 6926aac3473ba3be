"""Small downloads land in batches: one thread hop and two file-system syncs for many files.

A pull of thousands of small files spent most of its client CPU per file on disk bookkeeping: a
thread hop, an fsync of the file and another of its directory. ``BatchWriter`` keeps the
guarantees and shares their cost (group commit). Item workers ``submit`` a verified body and move
on to their next item; one flusher task takes everything queued and, in one worker-thread call:

1. writes each body to its temporary name (``.part``), nothing under a final name yet;
2. syncs the file system once (``syncfs``; an fsync per file where there is none, or for a file
   on another file system mounted inside the tree): the bytes are durable *before* any of them
   gets its final name;
3. renames them; their names become durable with the next sync (``syncfs``, or an fsync per
   directory).

Only then does each file's ``on_done`` run (the item is reported done). So a final name never
holds unverified or partial bytes, even after a power cut, and an item is never reported written
before its name is durable. A sync takes milliseconds whatever the batch's size, which is why the
workers must not wait for it: the batch grows while the previous one syncs. And while more files
are waiting, the sync that makes one batch's names durable is the one that makes the next
batch's bytes durable (step 3 of a batch shares step 2 of the next): one ``syncfs`` per batch
instead of two. ``syncfs`` also writes back whatever else is dirty on that file system, so on a
busy machine each one costs far more than this job's bytes.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio

from hc.errors import HcError
from hc.syscalls import syncfs
from hc.transfer._destfiles import located, open_child_directory, open_own_file, open_tree_directory
from hc.transfer._files import fsync_directory, write_at

__all__ = ["BatchWriter", "OnWritten"]

_log = logging.getLogger(__name__)

_O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
#: directory descriptors a batch keeps open (a batch spread over more directories walks again)
_OPEN_FOLDERS: Final = 256

#: Called once per file after its batch: the file's stat (it kept inode and mtime through the
#: rename), or the error that stopped it (an OSError, or UnsafePathError for a directory that
#: became a link out of the destination).
OnWritten = Callable[[os.stat_result | None, Exception | None], Awaitable[None]]


@dataclass(slots=True, eq=False)
class _Request:
    part: Path
    final: Path
    body: bytes
    on_done: OnWritten
    stat: os.stat_result | None = None
    error: Exception | None = None
    #: on another file system than the root (a mount inside the tree): ``syncfs`` of the root's
    #: file system does not cover it, so it is fsynced on its own
    foreign: bool = False
    #: the folders from the root to ``final``'s directory (``None``: worked out from the paths)
    folders: tuple[str, ...] | None = None


class BatchWriter:
    """Writes small verified files under ``root`` in batches (see the module docstring).

    Run ``run()`` as a task for the life of the job: it flushes what is queued whenever there is
    something, and when it is cancelled it still flushes (shielded) what was already submitted, so
    every submitted file gets its ``on_done``. ``max_bytes`` bounds the bodies waiting in memory
    (``submit`` waits for room); ``sync=False`` skips both syncs.

    Each file is created, renamed and (on failure) removed relative to a descriptor of its
    directory, opened by walking down from ``root`` without following a link out of it (a batch
    opens each directory once): a directory swapped for a link after the engine checked its path
    cannot carry the write, or the cleanup, somewhere else.
    """

    def __init__(
        self, root: Path, *, max_bytes: int = 16 << 20, max_batch: int = 1024, sync: bool = True
    ) -> None:
        self._root = root
        self._max_bytes = max_bytes
        self._max_batch = max_batch
        self._sync_enabled = sync
        self._root_device: int | None = None
        #: the root, resolved, and the directories of the batch being written (worker thread only)
        self._base: Path | None = None
        self._folders: _Folders | None = None
        self._queue: list[_Request] = []
        self._queued_bytes = 0
        #: renamed by the last batch, names not yet durable: the next sync covers them
        self._renamed: list[_Request] = []
        self._wake = anyio.Event()
        self._room = anyio.Event()

    async def submit(
        self,
        part: Path,
        final: Path,
        body: bytes,
        on_done: OnWritten,
        *,
        folders: tuple[str, ...] | None = None,
    ) -> None:
        """Queue ``body`` to be written to ``final`` via ``part`` (same directory). Returns once
        it is queued; ``on_done`` reports the outcome. Waits while the queue is full. ``folders``
        (the directories from the root to ``final``, if the caller knows them) saves working
        them out from the paths."""
        while self._queue and self._queued_bytes + len(body) > self._max_bytes:
            if self._room.is_set():
                self._room = anyio.Event()
            await self._room.wait()
        # No checkpoint from here on: once queued, the file is the flusher's to finish.
        self._queue.append(_Request(part, final, body, on_done, folders=folders))
        self._queued_bytes += len(body)
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                while self._queue or self._renamed:
                    await self._flush_next()
        finally:
            with anyio.CancelScope(shield=True):
                while self._queue or self._renamed:
                    await self._flush_next()

    async def _flush_next(self) -> None:
        batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
        self._queued_bytes -= sum(len(request.body) for request in batch)
        self._room.set()
        carried, self._renamed = self._renamed, []
        with anyio.CancelScope(shield=True):  # every file of a taken batch is finished and reported
            renamed = await anyio.to_thread.run_sync(self._write_batch, batch, carried)
            if self._queue:
                # More files are waiting: the sync of their bytes will make these names durable.
                self._renamed = renamed
            else:
                await anyio.to_thread.run_sync(self._sync, [], renamed)
            carried_over = set(map(id, self._renamed))
            for request in (*carried, *batch):
                if id(request) in carried_over:
                    continue  # reported after the next sync
                try:
                    await request.on_done(request.stat, request.error)
                except Exception as exc:  # one item's report must not lose the others'
                    _log.debug("reporting %s failed: %s", request.final, exc)

    # --- the worker-thread half ---------------------------------------------------------------

    def _write_batch(self, batch: list[_Request], carried: list[_Request]) -> list[_Request]:
        """Write ``batch`` to its ``.part`` names, sync (which also makes the names ``carried``
        over from the last batch durable), rename; returns the renamed requests, whose names are
        not durable yet."""
        if self._root_device is None:
            try:
                self._root_device = os.stat(self._root).st_dev
            except OSError:
                self._root_device = -1  # every file counts as foreign: each is fsynced
        if self._base is None:
            self._base = self._root.resolve()
        self._folders = folders = _Folders(self._root, self._base)
        try:
            # Directory by directory (each is opened once per batch, not once per file).
            ordered = sorted(batch, key=folders.key)
            written = [request for request in ordered if self._write_part(request)]
            self._sync(written, carried)
            renamed = [request for request in written if request.error is None and self._rename(request)]
        finally:
            self._folders.close()
            self._folders = None
        for request in batch:
            request.body = b""  # the memory goes now, not when the last report ran
        return renamed

    def _folder(self, request: _Request, *, create: bool = False) -> int:
        assert self._folders is not None, "only while a batch is written"
        return self._folders.open(request, create=create)

    def _write_part(self, request: _Request) -> bool:
        try:
            folder = self._folder(request, create=True)
        except (OSError, HcError) as exc:
            self._fail(request, exc, created=False)
            return False
        try:
            fd = open_own_file(request.part.name, os.O_WRONLY, dir_fd=folder, truncate=True)
            try:
                write_at(fd, request.body, 0)
                request.stat = os.fstat(fd)
                request.foreign = request.stat.st_dev != self._root_device
                if self._sync_enabled and (syncfs is None or request.foreign):
                    os.fsync(fd)
            finally:
                os.close(fd)
            return True
        except OSError as exc:
            self._fail(request, located(exc, request.part.parent))
            return False

    def _rename(self, request: _Request) -> bool:
        # Both names relative to the directory the bytes were written in: a directory swapped
        # for a link since cannot move them elsewhere.
        try:
            folder = self._folder(request)
            os.replace(request.part.name, request.final.name, src_dir_fd=folder, dst_dir_fd=folder)
            return True
        except OSError as exc:
            self._fail(request, located(exc, request.part.parent))
            return False
        except HcError as exc:
            self._fail(request, exc)
            return False

    def _sync(self, data: list[_Request], names: list[_Request]) -> None:
        """One sync that makes ``data``'s bytes (written, not yet renamed) and ``names`` (renamed)
        durable; on failure every one of them fails."""
        if not self._sync_enabled or not (data or names):
            return
        try:
            if syncfs is not None:
                fd = os.open(self._root, os.O_RDONLY | _O_CLOEXEC)
                try:
                    syncfs(fd)
                except OSError as exc:
                    raise OSError(exc.errno, f"syncfs failed: {exc.strerror}", str(self._root)) from exc
                finally:
                    os.close(fd)
            # Files syncfs does not cover were fsynced when written; their names need their
            # directories fsynced.
            covered = syncfs is not None
            for directory in {r.final.parent for r in names if r.foreign or not covered}:
                fsync_directory(directory)
        except OSError as exc:
            for request in data:
                self._fail(request, exc)
            for request in names:
                self._fail(request, exc, created=False)  # renamed: no .part left to remove

    def _fail(self, request: _Request, exc: Exception, *, created: bool = True) -> None:
        """Record the failure and remove the ``.part`` this batch ``created``: by its name in the
        directory it was written in, so cleaning up never deletes a file somewhere else."""
        request.error = exc
        request.stat = None
        if not created or self._folders is None:
            return
        try:
            os.unlink(request.part.name, dir_fd=self._folder(request))
        except FileNotFoundError:
            pass
        except (OSError, HcError) as cleanup:
            _log.debug("cannot remove %s: %s", request.part, cleanup)


class _Folders:
    """The directories one batch writes into, each opened once per batch (walking down from the
    root as ``open_tree_directory`` does, so never through a link out of it) and kept open for
    the renames after the sync, at most ``_OPEN_FOLDERS`` of them. A walk starts from the
    deepest directory already open on its way (the batch is sorted: a parent written to comes
    before its children), else from the root, which stays open for the batch."""

    __slots__ = ("_base", "_open", "_root", "_root_fd")

    def __init__(self, root: Path, base: Path) -> None:
        self._root = root
        self._base = base
        self._root_fd: int | None = None
        self._open: dict[tuple[str, ...], int] = {}

    def key(self, request: _Request) -> tuple[str, ...]:
        """The folders from the root to the request's directory."""
        if request.folders is None:
            request.folders = ("",)  # not under the root: ``open`` refuses it
            parent = request.final.parent
            for root in (self._root, self._base):
                if parent.is_relative_to(root):
                    request.folders = parent.relative_to(root).parts
                    break
        return request.folders

    def open(self, request: _Request, *, create: bool) -> int:
        key = self.key(request)
        if key == ("",):
            raise OSError(errno.EXDEV, "not under the destination", str(request.final))
        if self._root_fd is None:
            self._root_fd = open_tree_directory(self._base, (), create=create, name=str(request.final))
        if not key:
            return self._root_fd
        fd = self._open.get(key)
        if fd is None:
            fd = self._walk(key, create=create, name=str(request.final))
            if len(self._open) >= _OPEN_FOLDERS:
                # The last one opened goes: the batch visits its directories in order, and again
                # in the same order for the renames, so the ones kept first are all reused.
                os.close(self._open.pop(next(reversed(self._open))))
            self._open[key] = fd
        return fd

    def _walk(self, key: tuple[str, ...], *, create: bool, name: str) -> int:
        depth = len(key) - 1
        while depth > 0 and key[:depth] not in self._open:
            depth -= 1
        start = self._open[key[:depth]] if depth else self._root_fd
        assert start is not None
        fd = start
        try:
            for index in range(depth, len(key)):
                try:
                    child = open_child_directory(fd, key[index], create=create)
                except OSError as exc:
                    raise located(exc, self._base.joinpath(*key[:index])) from exc
                if child is None:  # a link on the way: the full walk resolves (or refuses) it
                    return open_tree_directory(self._base, key, create=create, name=name)
                if fd != start:
                    os.close(fd)
                fd = child
            opened, fd = fd, start
            return opened
        finally:
            if fd != start:
                os.close(fd)

    def close(self) -> None:
        for fd in self._open.values():
            os.close(fd)
        self._open.clear()
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None
