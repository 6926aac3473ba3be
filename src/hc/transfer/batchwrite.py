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

import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio

from hc.syscalls import syncfs
from hc.transfer._files import fsync_directory, open_own_file, write_at

__all__ = ["BatchWriter", "OnWritten"]

_log = logging.getLogger(__name__)

_O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)

#: Called once per file after its batch: the file's stat (it kept inode and mtime through the
#: rename), or the error that stopped it.
OnWritten = Callable[[os.stat_result | None, OSError | None], Awaitable[None]]


@dataclass(slots=True, eq=False)
class _Request:
    part: Path
    final: Path
    body: bytes
    on_done: OnWritten
    stat: os.stat_result | None = None
    error: OSError | None = None
    #: on another file system than the root (a mount inside the tree): ``syncfs`` of the root's
    #: file system does not cover it, so it is fsynced on its own
    foreign: bool = False


class BatchWriter:
    """Writes small verified files under ``root`` in batches (see the module docstring).

    Run ``run()`` as a task for the life of the job: it flushes what is queued whenever there is
    something, and when it is cancelled it still flushes (shielded) what was already submitted, so
    every submitted file gets its ``on_done``. ``max_bytes`` bounds the bodies waiting in memory
    (``submit`` waits for room); ``sync=False`` skips both syncs.
    """

    def __init__(
        self, root: Path, *, max_bytes: int = 16 << 20, max_batch: int = 1024, sync: bool = True
    ) -> None:
        self._root = root
        self._max_bytes = max_bytes
        self._max_batch = max_batch
        self._sync_enabled = sync
        self._root_device: int | None = None
        self._queue: list[_Request] = []
        self._queued_bytes = 0
        #: renamed by the last batch, names not yet durable: the next sync covers them
        self._renamed: list[_Request] = []
        self._wake = anyio.Event()
        self._room = anyio.Event()

    async def submit(self, part: Path, final: Path, body: bytes, on_done: OnWritten) -> None:
        """Queue ``body`` to be written to ``final`` via ``part`` (same directory). Returns once
        it is queued; ``on_done`` reports the outcome. Waits while the queue is full."""
        while self._queue and self._queued_bytes + len(body) > self._max_bytes:
            if self._room.is_set():
                self._room = anyio.Event()
            await self._room.wait()
        # No checkpoint from here on: once queued, the file is the flusher's to finish.
        self._queue.append(_Request(part, final, body, on_done))
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
        written = [request for request in batch if self._write_part(request)]
        self._sync(written, carried)
        renamed = [request for request in written if request.error is None and self._rename(request)]
        for request in batch:
            request.body = b""  # the memory goes now, not when the last report ran
        return renamed

    def _write_part(self, request: _Request) -> bool:
        try:
            try:
                fd = self._open(request.part)
            except FileNotFoundError:
                request.part.parent.mkdir(parents=True, exist_ok=True)
                fd = self._open(request.part)
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
            self._fail(request, exc)
            return False

    @staticmethod
    def _open(path: Path) -> int:
        return open_own_file(path, os.O_WRONLY | os.O_TRUNC)

    def _rename(self, request: _Request) -> bool:
        try:
            os.replace(request.part, request.final)
            return True
        except OSError as exc:
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
            for request in (*data, *names):
                self._fail(request, exc)

    @staticmethod
    def _fail(request: _Request, exc: OSError) -> None:
        request.error = exc
        request.stat = None
        try:
            request.part.unlink(missing_ok=True)
        except OSError as cleanup:
            _log.debug("cannot remove %s: %s", request.part, cleanup)
