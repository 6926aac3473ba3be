"""Small PUTs in groups: bodies and file rows of the uploads that arrive together are stored in one
worker call, on the database thread.

A 4 KiB upload used to cost two thread hops of its own group (the bodies: hash, write, syncfs;
then the rows: one transaction), and each hop costs the event loop and the worker a wake-up and a
GIL hand-over. When uploads trickle in (a client that is itself the bottleneck sends one or two at
a time), groups hold one upload each and those hops were most of the server's CPU: ~1.1 ms a file
at concurrency 2. Here the whole group is one call: hash and verify each body, write the new ones,
one ``syncfs`` (``SmallBlobs.store_batch``), then every row in one transaction
(``Catalog.put_files``), with ``ensure_blob`` re-checking each body inside it as before.

Bodies of ``blobs.INLINE_BODY`` or less are only hashed here: the row's transaction stores them
in the database (``inline_blobs``), so such an upload creates no file, needs no flush of the file
system and commits body and row atomically. Larger bodies are files, durable (syncfs, or an fsync
each where syncfs is missing) before the transaction that records them starts. Either way a 201
means body and row survive a crash of the process, like every commit of the store (see
``hc.server.metadata`` on ``synchronous``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

from hc.errors import HcError
from hc.protocol.digest import Checksums

from .blobs import INLINE_BODY, BlobStore, SmallBlobs, hash_and_verify
from .group_commit import settle_group
from .metadata import Catalog, Database, PutFile, PutOutcome

__all__ = ["SmallPut", "SmallPuts"]

#: at most this many uploads in one group (bounds the latency of the first in a burst)
_MAX_GROUP: Final = 256


@dataclass(frozen=True, slots=True)
class SmallPut:
    """One small upload: its body, what it declared, and where it goes (``target.checksums`` and
    ``target.ensure_blob`` are filled in once the body is hashed)."""

    data: bytes
    expected_size: int | None
    expected: Mapping[str, str]
    target: PutFile


def _no_blob() -> None:  # placeholder until the body's digest is known
    raise AssertionError("ensure_blob of an unhashed upload")


def put_target(*, registry_id: int, package: str, version: str, path: str, overwrite: bool) -> PutFile:
    """A PutFile for ``SmallPut.target`` (its checksums and ensure_blob are set by the group)."""
    return PutFile(
        registry_id=registry_id,
        package=package,
        version=version,
        path=path,
        checksums=Checksums(size=0, sha256="0" * 64),
        overwrite=overwrite,
        ensure_blob=_no_blob,
    )


class SmallPuts:
    """Group writer for small PUTs; ``put`` runs in the event loop that first calls it."""

    def __init__(self, blobs: BlobStore, small: SmallBlobs, db: Database) -> None:
        self._blobs = blobs
        self._small = small
        self._db = db
        self._queue: list[tuple[SmallPut, asyncio.Future[tuple[Checksums, PutOutcome]]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def put(self, item: SmallPut) -> tuple[Checksums, PutOutcome]:
        """Store the body and record the file; raises what refused it (IntegrityError, Conflict,
        NotFound, OSError, ...) with nothing of it recorded."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[tuple[Checksums, PutOutcome]] = loop.create_future()
        self._queue.append((item, waiter))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush_loop())
        return await waiter

    async def _flush_loop(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:_MAX_GROUP], self._queue[_MAX_GROUP:]
            await settle_group(
                [waiter for _, waiter in batch],
                [item for item, _ in batch],
                lambda items: self._db.run_on_thread(self._store_group, items),
            )

    def _store_group(self, items: Sequence[SmallPut]) -> list[tuple[Checksums, PutOutcome] | Exception]:
        """On the database thread: file bodies first (durable when this returns), then the rows,
        with the inline bodies written in the rows' transaction."""
        stored = self._hash_and_store(items)
        results: list[tuple[Checksums, PutOutcome] | Exception] = []
        puts: list[PutFile] = []
        for item, checksums in zip(items, stored, strict=True):
            if not isinstance(checksums, Checksums):
                continue
            if len(item.data) <= INLINE_BODY:
                puts.append(replace(item.target, checksums=checksums, inline=item.data))
            else:
                ensure = functools.partial(self._blobs.write_small, item.data, checksums.sha256, sync=True)
                puts.append(replace(item.target, checksums=checksums, ensure_blob=ensure))
        outcomes = iter(self._db.call(Catalog.put_files, puts) if puts else [])
        for checksums in stored:
            if not isinstance(checksums, Checksums):
                results.append(checksums)
                continue
            outcome = next(outcomes)
            results.append(outcome if isinstance(outcome, Exception) else (checksums, outcome))
        return results

    def _hash_and_store(self, items: Sequence[SmallPut]) -> list[Checksums | Exception]:
        """Each body's checksums (or what refused it); bodies above INLINE_BODY are written to
        blob files (one flush for the group), the others only hashed: their rows carry them."""
        results: dict[int, Checksums | Exception] = {}
        to_files = [i for i, item in enumerate(items) if len(item.data) > INLINE_BODY]
        if to_files:
            stored = self._small.store_batch(
                [(items[i].data, items[i].expected_size, items[i].expected) for i in to_files]
            )
            results.update(zip(to_files, stored, strict=True))
        for i, item in enumerate(items):
            if i in results:
                continue
            try:
                results[i] = hash_and_verify(item.data, item.expected_size, item.expected)
            except HcError as exc:
                results[i] = exc
        return [results[i] for i in range(len(items))]
