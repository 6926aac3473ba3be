"""Resumable upload sessions: parts written at their offsets, received ranges, commit by digest.

The wire protocol is described in ``hc.protocol.uploads``; this module is what stands behind it.

- A session is a row in SQLite (``upload_sessions``: target path, size, declared sha256, received
  ranges, expiry) plus a file ``uploads/<id>.data`` preallocated to the full size at ``POST`` (a
  full disk is reported then, not half-way). Parts are streamed in ≥ 1 MiB batches and written in
  place with ``pwritev`` on worker threads; a part's range is added to the row only after its
  bytes are in the file, so a server restart keeps exactly the acknowledged parts. A part whose
  body breaks off (the client was killed, the connection cut) records the bytes that reached the
  file before the break: a resumed upload sends only the rest, not the whole part again.
- The first copy of a byte wins. A part writes only the bytes that are not received yet (its
  *fresh* ranges, decided before any I/O), and records only those. Re-sends are therefore
  idempotent, and bytes already hashed can never change. A part whose range overlaps a part still
  in flight first waits for that part's outcome: the other part may yet fail (a dead connection),
  and its bytes must then be this part's to write, not silently dropped as duplicates.
- Hashing is incremental over the contiguous prefix. A part that starts where the hash stands
  feeds its bytes to the four hash lanes (``LaneHashers``) as they stream, so a sequential upload
  is fully hashed when its last part lands and the commit reads nothing back. Parts that arrive
  ahead of the hash are caught up from the file (the page cache, usually) in the background as
  soon as the gap before them closes; the commit only waits for that. After a server restart the
  hash state is gone and the commit re-reads what it needs.
- A session may be opened without a sha256 (``digestAtCommit``, advertised unless turned off): the
  client then hashes while it sends. Such a session never answers ``unchanged`` at ``POST`` (the
  bytes are unknown yet) and its commit is checked against the commit's ``digest`` alone.
- Commit: every byte received → digests → sha256 checked against the ``digest`` parameter and the
  declared one (if any) → ``fsync`` → hard-linked into the blob store (no copy) → the file row and the end of
  the session in one transaction (``Catalog.commit_upload``, same re-upload rule as a PUT) → the
  session file unlinked. A mismatch discards the session. A crash at any step leaves the session
  (commit again), or the file committed and a leftover session file (swept), never a partial file
  under a real name.
- Durability of parts: a part is acknowledged once it is in the page cache and recorded (the row
  commit survives a process crash, as everything in WAL mode with ``synchronous=NORMAL``). A power
  loss may lose acknowledged bytes; the commit's digest check catches that and the client starts
  again. The commit itself fsyncs before anything becomes visible.
- Expiry: a session lives ``ttl`` seconds after its last part. Expired rows and session files that
  no row names are swept at start-up and periodically; a lookup of an expired session is a 404
  even before the sweep.

Limit: two server processes sharing a store merge their received ranges in the database, but do
not see each other's parts in flight; a client that sends *different* bytes for the same range to
two processes at once can commit bytes other than those it declared (``hc server fsck`` reports
such a blob). hc's clients never do that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from hc.errors import Conflict, IntegrityError, NotFound, StorageError, UsageError
from hc.protocol.digest import Checksums
from hc.protocol.uploads import (
    DEFAULT_MAX_PART_SIZE,
    DEFAULT_MIN_PART_SIZE,
    DEFAULT_SESSION_TTL_SECONDS,
    Range,
    UploadCapabilities,
    UploadState,
    contiguous_offset,
    missing_ranges,
    parse_part_content_range,
    subtract_ranges,
)

from .blobs import BlobStore, LaneHashers
from .metadata import Catalog, Database, FileRow, PutOutcome, RegistryRow, UploadRow, now_ms
from .paths import StoreLayout

__all__ = ["PartTooLarge", "Unchanged", "UploadSessions", "state_of", "sweep_uploads"]

log = logging.getLogger("hc.server")

_SUFFIX: Final = ".data"
_ID_RE: Final = re.compile(r"^[0-9a-f]{32}$")
#: How often a part waiting for the bytes another part claims checks that the other's connection
#: is still open.
_CLAIM_CHECK_S: Final = 1.0
#: A part hands its bytes to the writer and the hash lanes in batches of this size (two batches in
#: memory per part: the one being written and hashed, the one arriving). Parts arrive several at
#: once (hc sends 4), so this is smaller than a whole-file PUT's blobs.BATCH: at 4 MiB, a 1 GiB
#: upload in 4 parts held ~55 MiB of buffers and the process peaked at ~160 MiB RSS.
PART_BATCH: Final = 1 << 20
#: The hash catch-up (parts that landed ahead of the hash, read back from the session file) reads
#: this much per round trip through the event loop into one of two buffers, while the lanes hash
#: the other. The round trips are what limited it on a loop busy receiving the other parts: in a
#: 1 GiB upload of 4 parallel parts nearly all bytes are caught up, and its commit came 3.1 s after
#: the last part with 1 MiB reads, 1.7-1.9 s with 16 MiB (the four digests then keep up as far as
#: two cores allow); the whole push took 5.3 s, now 4.4-4.9 s (curl -T: 3.9 s).
CATCH_UP_READ: Final = 16 << 20
#: At most this many buffers per pwritev call (Linux IOV_MAX is 1024).
_MAX_IOV: Final = 512


def state_of(row: UploadRow) -> UploadState:
    return UploadState(id=row.id, size=row.size, received=row.received, expires_at=row.expires_at)


@dataclass(eq=False)
class _Live:
    """What this process knows of a session beyond its row: the running hash and parts in flight."""

    hashers: LaneHashers = field(default_factory=LaneHashers)
    #: the hashers have seen exactly [0, hashed)
    hashed: int = 0
    #: held by whoever feeds the hashers: a part streaming at ``hashed``, a catch-up, a commit
    hash_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: ranges being written by parts in flight (disjoint from each other and from the received ones)
    claimed: list[Range] = field(default_factory=list)
    #: who holds each claimed range: the part's task and whether its connection is still open
    owners: dict[Range, _Owner] = field(default_factory=dict)
    #: set (and replaced) whenever a part in flight gives its claims up, recorded or not
    released: asyncio.Event = field(default_factory=asyncio.Event)
    #: the contiguous received prefix as last recorded here (the catch-up hashes up to it)
    offset: int = 0
    committing: bool = False

    def reset_hash(self) -> None:
        self.hashers, self.hashed = LaneHashers(), 0

    def owners_of(self, part: Range) -> list[_Owner]:
        """The parts in flight that claim some byte of ``part``."""
        start, end = part
        return [self.owners[c] for c in self.claimed if c[0] < end and start < c[1]]

    def claim(self, ranges: Sequence[Range], owner: _Owner) -> None:
        self.claimed.extend(ranges)
        for rng in ranges:
            self.owners[rng] = owner

    def release(self, ranges: Sequence[Range]) -> None:
        for rng in ranges:
            self.claimed.remove(rng)
            del self.owners[rng]
        released, self.released = self.released, asyncio.Event()
        released.set()


@dataclass
class _Landed:
    """How far a part's bytes are in the session file (its first byte's offset until a batch is)."""

    end: int


@dataclass(frozen=True, eq=False, slots=True)
class _Owner:
    task: asyncio.Task[Any] | None
    alive: Callable[[], bool]


def _always_alive() -> bool:
    return True


def _create_data_file(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        if size:
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                if exc.errno not in (95, 22):  # EOPNOTSUPP, EINVAL: a file system without fallocate
                    raise
                os.ftruncate(fd, size)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)


def _views(chunks: Sequence[bytes], offset: int, start: int, end: int) -> list[memoryview]:
    """Memoryviews over ``[start, end)`` of ``chunks``, which hold the bytes from ``offset`` on."""
    views = []
    position = offset
    for chunk in chunks:
        chunk_end = position + len(chunk)
        lo, hi = max(start, position), min(end, chunk_end)
        if lo < hi:
            views.append(memoryview(chunk)[lo - position : hi - position])
        position = chunk_end
        if position >= end:
            break
    return views


def _pwrite_all(fd: int, views: list[memoryview], offset: int) -> None:
    while views:
        if len(views) > _MAX_IOV:
            views = [memoryview(b"".join(views))]
        written = os.pwritev(fd, views, offset)
        offset += written
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]


def _write_fresh(fd: int, chunks: list[bytes], offset: int, fresh: Sequence[Range]) -> None:
    end = offset + sum(len(c) for c in chunks)
    for f_start, f_end in fresh:
        lo, hi = max(f_start, offset), min(f_end, end)
        if lo < hi:
            _pwrite_all(fd, _views(chunks, offset, lo, hi), lo)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sweep_uploads(layout: StoreLayout, db: Database, now: int) -> int:
    """Blocking: delete expired sessions and session files no row names. Returns files removed.

    The folder is listed *before* the rows are read: a session's row is committed before its file
    is created, so a file seen here whose row is missing afterwards is truly orphaned."""
    expired = set(db.run_sync(Catalog.expire_uploads, now))
    try:
        names = [e.name for e in os.scandir(layout.uploads)]
    except FileNotFoundError:
        return 0
    alive = db.run_sync(Catalog.upload_ids) - expired
    removed = 0
    for name in names:
        if name.endswith(_SUFFIX) and name[: -len(_SUFFIX)] in alive:
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(layout.uploads / name)
            removed += 1
    return removed


class PartTooLarge(UsageError):
    """A part larger than the advertised ``maxPartSize`` (HTTP 413)."""

    http_status = 413
    code = "PAYLOAD_TOO_LARGE"


@dataclass(frozen=True, slots=True)
class Unchanged:
    """``POST`` found the file already stored with these bytes: no session was opened."""

    file: FileRow


class UploadSessions:
    """The sessions of one store, for one server process (state lives in the event loop)."""

    def __init__(
        self,
        *,
        layout: StoreLayout,
        db: Database,
        blobs: BlobStore,
        executor: Executor,
        ttl_s: float = DEFAULT_SESSION_TTL_SECONDS,
        min_part_size: int = DEFAULT_MIN_PART_SIZE,
        max_part_size: int = DEFAULT_MAX_PART_SIZE,
        digest_at_commit: bool = True,
    ) -> None:
        self._layout = layout
        self._db = db
        self._blobs = blobs
        self._executor = executor
        self.ttl_ms = int(ttl_s * 1000)
        self.min_part_size = min_part_size
        self.max_part_size = max_part_size
        #: a ``POST`` may leave the sha256 out (the commit's digest decides); off: 400, as before
        self.digest_at_commit = digest_at_commit
        self._live: dict[str, _Live] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def capabilities(self) -> UploadCapabilities:
        return UploadCapabilities(
            upload_sessions=True,
            parallel_parts=True,
            min_part_size=self.min_part_size,
            max_part_size=self.max_part_size,
            session_ttl_seconds=max(1, self.ttl_ms // 1000),
            digest_at_commit=self.digest_at_commit,
        )

    def data_path(self, upload_id: str) -> Path:
        return self._layout.uploads / f"{upload_id}{_SUFFIX}"

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ------------------------------------------------------------------------------- lifecycle

    async def begin(
        self,
        registry: RegistryRow,
        *,
        package: str,
        version: str,
        path: str,
        size: int,
        sha256: str,
        overwrite: bool,
    ) -> UploadRow | Unchanged:
        """Open a session; ``sha256`` "" leaves the digest to the commit (no ``unchanged`` then)."""
        if not sha256 and not self.digest_at_commit:
            raise UsageError("field 'sha256' must be 64 hex characters")
        if sha256:
            existing = await self._db.run(Catalog.get_file, registry.id, package, version, path)
            if existing is not None and existing.sha256 == sha256 and existing.size == size:
                return Unchanged(existing)
        upload_id = uuid.uuid4().hex
        # The row first, then the file: the sweep relies on that order (see sweep_uploads).
        row: UploadRow = await self._db.run(
            Catalog.create_upload,
            upload_id=upload_id,
            registry_id=registry.id,
            package=package,
            version=version,
            path=path,
            size=size,
            sha256=sha256,
            overwrite=overwrite,
            expires_at=now_ms() + self.ttl_ms,
        )
        try:
            await self._run(_create_data_file, self.data_path(upload_id), size)
        except BaseException as exc:
            await self._db.run(Catalog.delete_upload, upload_id)
            if isinstance(exc, OSError):
                raise StorageError(
                    f"cannot reserve {size} bytes for the upload: {exc.strerror or exc}"
                ) from exc
            raise
        self._live[upload_id] = _Live()
        return row

    async def load(self, registry: RegistryRow, upload_id: str) -> UploadRow:
        """The session's row; NotFound when unknown, of another registry, or expired."""
        row = None
        if _ID_RE.match(upload_id):
            row = await self._db.run(Catalog.get_upload, upload_id)
        if row is None or row.registry_id != registry.id or row.expires_at < now_ms():
            self._live.pop(upload_id, None)
            raise NotFound(f"upload session {upload_id!r} not found (committed, aborted or expired)")
        return row

    def _live_for(self, row: UploadRow) -> _Live:
        live = self._live.get(row.id)
        if live is None:  # first use since a restart (or in this process): hash from byte 0
            live = self._live[row.id] = _Live()
        live.offset = max(live.offset, contiguous_offset(row.received))
        return live

    async def abort(self, registry: RegistryRow, upload_id: str) -> None:
        await self.load(registry, upload_id)
        self._live.pop(upload_id, None)
        if not await self._db.run(Catalog.delete_upload, upload_id):
            raise NotFound(f"upload session {upload_id!r} not found (committed, aborted or expired)")
        await self._run(self._unlink, upload_id)

    def _unlink(self, upload_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.data_path(upload_id))

    async def sweep(self) -> int:
        removed: int = await self._run(sweep_uploads, self._layout, self._db, now_ms())
        known = await self._db.run(Catalog.upload_ids)
        for upload_id in [i for i in self._live if i not in known]:
            del self._live[upload_id]
        return removed

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._live.clear()

    # ----------------------------------------------------------------------------------- parts

    async def write_part(
        self,
        registry: RegistryRow,
        upload_id: str,
        *,
        content_range: str | None,
        content_length: int | None,
        body: AsyncIterator[bytes],
        alive: Callable[[], bool] = _always_alive,
    ) -> UploadRow:
        """Store one part. A part whose body breaks off (the client died, the connection was cut)
        keeps the bytes that reached the file before the break: they are recorded, and a resumed
        upload sends only the rest. A malformed part (longer than its range) records nothing.
        ``alive`` says whether the part's connection is still open (see the wait for claims)."""
        row = await self.load(registry, upload_id)
        part = parse_part_content_range(content_range, row.size)
        if part.length > self.max_part_size:
            raise PartTooLarge(
                f"a part may hold at most {self.max_part_size} bytes; this one has {part.length}"
            )
        if content_length is not None and content_length != part.length:
            raise UsageError(
                f"Content-Length {content_length} does not match Content-Range {content_range!r} "
                f"({part.length} bytes); nothing was recorded"
            )
        live = self._live_for(row)
        # Bytes claimed by a part in flight are not this part's to write, but that part may still
        # fail (its connection may have died and its handler not yet noticed): wait for its
        # outcome, then decide from the ranges recorded by then. Dropping this part's copy instead
        # would answer success for bytes that end up recorded by nobody.
        while owners := live.owners_of((part.start, part.end)):
            try:
                await asyncio.wait_for(live.released.wait(), _CLAIM_CHECK_S)
            except TimeoutError:
                # A part whose connection closed before its handler began reading is never told
                # (aiohttp feeds no EOF then): it would wait for its body, and hold its claim,
                # forever. End it; its cleanup releases the claim like any failed part's.
                for owner in owners:
                    if owner.task is not None and not owner.alive():
                        owner.task.cancel()
                continue
            row = await self.load(registry, upload_id)
            live = self._live_for(row)
        # Decided before the next await: the bytes this part writes are claimed at once, so no
        # other part in flight writes them too.
        fresh = subtract_ranges((part.start, part.end), [*row.received, *live.claimed])
        live.claim(fresh, _Owner(asyncio.current_task(), alive))
        owns_hash = False
        snapshot = None
        landed = _Landed(part.start)
        streamed = False
        try:
            if fresh and fresh[0][0] == live.hashed and not live.hash_lock.locked():
                await live.hash_lock.acquire()
                owns_hash = fresh[0][0] == live.hashed  # still true unless a waiter got there first
                if not owns_hash:
                    live.hash_lock.release()
            hashing = fresh[0] if owns_hash else (0, 0)
            snapshot = live.hashers.copy() if owns_hash else None
            await self._stream_part(live, row.id, part.start, part.length, body, fresh, hashing, landed)
            streamed = True
            if fresh:
                updated = await self._db.run(
                    Catalog.record_upload_ranges, row.id, fresh, now_ms() + self.ttl_ms
                )
                if updated is None:
                    raise NotFound(f"upload session {upload_id!r} ended while the part was arriving")
                row = updated
            if owns_hash:
                live.hashed = hashing[1]
        except BaseException as exc:
            if snapshot is not None:
                # The part is not recorded whole: its bytes are not hashed here (what of them is
                # kept below is hashed from the file, like any part that arrived ahead).
                live.hashers = snapshot
            if not streamed and isinstance(exc, Exception) and not isinstance(exc, UsageError):
                await self._keep_landed(row, live, fresh, landed.end)
            raise
        finally:
            live.release(fresh)
            if owns_hash:
                live.hash_lock.release()
        live.offset = max(live.offset, contiguous_offset(row.received))
        self._kick_catch_up(row.id, live)
        return row

    async def _keep_landed(self, row: UploadRow, live: _Live, fresh: Sequence[Range], end: int) -> None:
        """Record the fresh bytes of a broken part that are in the file (those before ``end``)."""
        kept = [(lo, min(hi, end)) for lo, hi in fresh if lo < end]
        if not kept:
            return
        try:
            updated = await self._db.run(Catalog.record_upload_ranges, row.id, kept, now_ms() + self.ttl_ms)
        except Exception as exc:  # the part's own failure is what the client must hear about
            log.debug("keeping %d bytes of a broken part of upload %s failed: %s", end, row.id, exc)
            return
        if updated is not None:
            live.offset = max(live.offset, contiguous_offset(updated.received))

    async def _stream_part(
        self,
        live: _Live,
        upload_id: str,
        start: int,
        length: int,
        body: AsyncIterator[bytes],
        fresh: Sequence[Range],
        hashing: Range,
        landed: _Landed,
    ) -> None:
        """Read the body in batches; write its fresh bytes in place and feed the bytes of
        ``hashing`` to the hashers, each batch on worker threads while the next one arrives.
        ``landed.end`` follows the end of the bytes written, also when the body breaks off."""
        fd = await self._run(os.open, self.data_path(upload_id), os.O_WRONLY | os.O_CLOEXEC)
        loop = asyncio.get_running_loop()
        pending: list[asyncio.Future[Any]] = []
        batch: list[bytes] = []
        batch_size = 0
        position = start  # file offset of batch[0]
        received = 0
        try:

            async def flush() -> None:
                nonlocal pending, batch, batch_size, position
                if pending:
                    done, pending = pending, []
                    await asyncio.gather(*done)
                    landed.end = position  # every batch handed out so far is written
                if not batch:
                    return
                chunks, batch, batch_size = batch, [], 0
                offset, position = position, position + sum(len(c) for c in chunks)
                pending = [loop.run_in_executor(self._executor, _write_fresh, fd, chunks, offset, fresh)]
                lo, hi = max(offset, hashing[0]), min(position, hashing[1])
                if lo < hi:
                    pending += live.hashers.submit(self._executor, _views(chunks, offset, lo, hi))

            try:
                async for chunk in body:
                    if not chunk:
                        continue
                    received += len(chunk)
                    if received > length:
                        raise UsageError(f"the part's body is longer than its {length}-byte Content-Range")
                    batch.append(chunk)
                    batch_size += len(chunk)
                    if batch_size >= PART_BATCH:
                        await flush()
                if received < length:
                    raise IntegrityError(
                        f"the part's body ended after {received} of {length} bytes;"
                        " the bytes before the break are kept"
                    )
            except Exception as exc:
                if not isinstance(exc, UsageError):
                    await flush()  # what arrived before the break is written too
                raise
            await flush()
            await flush()  # waits for the last batch
        finally:
            if pending:
                outcomes = await asyncio.gather(*pending, return_exceptions=True)
                if not any(isinstance(outcome, BaseException) for outcome in outcomes):
                    landed.end = position
            await self._run(os.close, fd)

    # ------------------------------------------------------------------------------- hashing

    def _kick_catch_up(self, upload_id: str, live: _Live) -> None:
        if live.hashed < live.offset and not live.hash_lock.locked() and not live.committing:
            task = asyncio.get_running_loop().create_task(self._catch_up_task(upload_id, live))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _catch_up_task(self, upload_id: str, live: _Live) -> None:
        async with live.hash_lock:
            try:
                await self._hash_from_file(upload_id, live, live.offset)
            except (OSError, StorageError) as exc:
                # The commit will start the hash over; a vanished file means the session ended.
                log.debug("background hash of upload %s stopped: %s", upload_id, exc)
                live.reset_hash()

    async def _hash_from_file(self, upload_id: str, live: _Live, until: int) -> None:
        """Feed the hashers with ``[live.hashed, until)`` read back from the session file; the
        caller holds ``live.hash_lock``. Reads the next batch while the lanes hash the current."""
        if live.hashed >= until:
            return
        fd = await self._run(os.open, self.data_path(upload_id), os.O_RDONLY | os.O_CLOEXEC)
        try:
            # Two fixed buffers, used in turn: one is read into while the lanes hash the other.
            buffers = (bytearray(CATCH_UP_READ), bytearray(CATCH_UP_READ))
            pending: list[asyncio.Future[Any]] = []
            position, turn = live.hashed, 0
            while position < until:
                want = min(CATCH_UP_READ, until - position)
                view = memoryview(buffers[turn])[:want]
                if await self._run(os.preadv, fd, [view], position) != want:
                    raise StorageError(f"the data of upload {upload_id} is shorter than what was received")
                if pending:
                    await asyncio.gather(*pending)  # the lanes are done with the other buffer
                    live.hashed = position
                pending = live.hashers.submit(self._executor, [view])
                position += want
                turn ^= 1
            await asyncio.gather(*pending)
            live.hashed = position
        finally:
            await self._run(os.close, fd)

    # -------------------------------------------------------------------------------- commit

    async def commit(
        self, registry: RegistryRow, upload_id: str, *, sha256: str, overwrite: bool
    ) -> tuple[UploadRow, Checksums, PutOutcome]:
        row = await self.load(registry, upload_id)
        lacking = missing_ranges(row.size, row.received)
        if lacking:
            first = lacking[0]
            raise UsageError(
                f"upload {upload_id} is incomplete: {sum(e - s for s, e in lacking)} byte(s) missing, "
                f"the first at [{first[0]}, {first[1]})"
            )
        live = self._live_for(row)
        if live.committing:
            raise Conflict(f"upload {upload_id} is already being committed")
        live.committing = True
        try:
            async with live.hash_lock:
                try:
                    await self._hash_from_file(upload_id, live, row.size)
                except FileNotFoundError:
                    raise NotFound(f"upload session {upload_id!r} not found (committed or aborted)") from None
                checksums = live.hashers.result()
            # A session opened without a sha256 (digestAtCommit) has only the commit's to match.
            if checksums.sha256 != sha256 or (row.sha256 and checksums.sha256 != row.sha256):
                self._live.pop(upload_id, None)
                await self._db.run(Catalog.delete_upload, upload_id)
                await self._run(self._unlink, upload_id)
                raise IntegrityError(
                    f"the uploaded bytes hash to sha256 {checksums.sha256}, not {sha256}"
                    + (f" (declared {row.sha256})" if row.sha256 and row.sha256 != sha256 else "")
                    + "; nothing was stored and the session was discarded"
                )
            overwrite = overwrite or row.overwrite
            if not overwrite:  # refuse before linking: a refused commit should leave no stray blob
                existing = await self._db.run(
                    Catalog.get_file, registry.id, row.package, row.version, row.path
                )
                if existing is not None and existing.sha256 != checksums.sha256:
                    raise Conflict(
                        f"{row.package}/{row.version}/{row.path} already exists with different content "
                        f"(sha256 {existing.sha256}); pass overwrite=true to replace it"
                    )
            data = self.data_path(upload_id)
            try:
                await self._run(self._make_blob, data, checksums.sha256)
            except FileNotFoundError:
                raise NotFound(f"upload session {upload_id!r} not found (committed or aborted)") from None
            except OSError as exc:
                raise StorageError(f"cannot store the upload: {exc.strerror or exc}") from exc
            outcome: PutOutcome = await self._db.run(
                Catalog.commit_upload,
                upload_id,
                checksums=checksums,
                overwrite=overwrite,
                ensure_blob=lambda: self._blobs.link(data, checksums.sha256),
            )
        finally:
            live.committing = False
        self._live.pop(upload_id, None)
        await self._run(self._unlink, upload_id)
        return row, checksums, outcome

    def _make_blob(self, data: Path, sha256: str) -> None:
        if not self._blobs.exists(sha256):
            _fsync_path(data)  # bytes already stored under that digest need no second fsync
        self._blobs.link(data, sha256)
