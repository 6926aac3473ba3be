"""TransferManager: push and pull many files through one bounded pool of requests.

Shape of a job (both directions):

```
items (async, lazy) ──► bounded stream (backlog) ──► N item workers ──► per item: plan, then act
                                                                     └─► parts/ranges as tasks
every request (a whole PUT, one part, one ranged GET) holds one token of ONE CapacityLimiter
```

- Memory is flat whatever the item count: items are pulled from the caller's iterator only as
  workers free up (the stream holds at most ``backlog``), bytes move ``buffer_size`` at a time,
  and nothing keeps a per-item record after the item ends (results go to accounting subscribers).
- Concurrency is never multiplied by nesting: item workers hold no token; the parts of a big file
  and whole small files compete for the same ``concurrency`` tokens.
- Hashing and disk I/O run in worker threads (``hash_threads`` at once for hashing), so both
  cores work while the loop moves bytes.
- A large file bound for an upload session is not hashed before its first byte moves when the
  registry takes the sha256 at commit (``digest_at_commit``) and no cached hash or same-size
  destination file could make it a skip: the session opens without a digest, the file is hashed
  while its parts go up, and the commit carries the digest (``_send_while_hashing``).
- Each item is a ``TransferCoordinator``; failures are per item (the job carries on) and end up
  in the summary, a cancelled job leaves its ``.part`` files, upload sessions and journal for the
  next run to resume.

Layout: this module is the public face (``push``, ``pull``, ``copy``, ``listing``); the item code
lives per direction in ``_pushing.py``, ``_pulling.py`` and ``_copying.py``, on the shared core
in ``_engine.py`` (limits, the job driver, retries; its docstring says why it is a base class).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from pathlib import Path

import anyio

from hc.errors import NotFound
from hc.transfer._copying import CopySide, IndexCache, location_text
from hc.transfer._engine import Job
from hc.transfer._pulling import DestinationTree, PullItem, PullSide, first_per_destination
from hc.transfer._pushing import PushSide
from hc.transfer.batchwrite import BatchWriter
from hc.transfer.journal import Journal
from hc.transfer.pacer import classify
from hc.transfer.remote import CopyPair, FileEntry, Remote
from hc.transfer.results import Summary
from hc.transfer.walk import LocalItem

__all__ = ["TransferManager"]


class TransferManager(PushSide, PullSide, CopySide):
    """Bulk push/pull against a ``Remote``. Seams are constructor arguments: tests hand in a fake
    Remote, an in-memory journal and their own Accounting subscriber."""

    # --- public API ---------------------------------------------------------------------------

    async def push(
        self, items: AsyncIterable[LocalItem] | Iterable[LocalItem], *, package: str, version: str
    ) -> Summary:
        """Upload every item to ``package/version/<item.relpath>``; skip what is already identical."""
        job = Job(journal=self._journal or Journal.in_memory(), package=package, version=version)
        need_listing = not self._config.overwrite
        if need_listing:
            job.index_ready = anyio.Event()

        async def setup(tg: anyio.abc.TaskGroup) -> None:
            if need_listing:
                tg.start_soon(self._load_index, job)

        return await self._run(
            job,
            items,
            describe=lambda item: (item.relpath, item.size),
            handle=self._push_one,
            setup=setup,
        )

    async def pull(
        self,
        items: AsyncIterable[FileEntry] | Iterable[FileEntry],
        dest: Path,
        *,
        target: Callable[[FileEntry], str] | None = None,
    ) -> Summary:
        """Download every item to ``dest / target(item)`` (default: its path in the version),
        verified, via ``<name>.part`` (``.hc-<hash>.part`` for a name too long to take the suffix)
        and an atomic rename. A path the listing names twice is fetched once, from its first entry;
        the repeats fail as items. Small files are written by a ``BatchWriter`` (synced in batches),
        large ones into a journaled ``.part`` whose ranges record their progress every chunk."""
        job = Job(
            journal=self._journal or Journal.in_memory(),
            dest=dest,
            target=target or (lambda entry: entry.path),
        )
        if not self._config.dry_run:
            await anyio.to_thread.run_sync(lambda: dest.mkdir(parents=True, exist_ok=True))
        name_of = job.target
        assert name_of is not None

        def describe(item: PullItem) -> tuple[str, int]:
            return item.name, item.entry.size

        writer = BatchWriter(dest)
        tree = DestinationTree(dest)

        async def setup(outer: anyio.abc.TaskGroup) -> None:
            # Runs until the workers are done, then (shielded) finishes what they submitted.
            outer.start_soon(writer.run)

        async def handle(job: Job, item: PullItem) -> None:
            if item.duplicate:
                await self._pull_duplicate(item.name, item.entry)
            else:
                await self._pull_one(job, item, tree, writer)

        return await self._run(
            job, first_per_destination(items, name_of), describe=describe, handle=handle, setup=setup
        )

    async def copy(
        self,
        source: Remote,
        items: AsyncIterable[CopyPair] | Iterable[CopyPair],
        *,
        verify_destination: bool = False,
    ) -> Summary:
        """Copy files from ``source`` to this manager's remote (the destination), streaming each
        download straight into its upload: no local disk, about one chunk per stream in memory.

        Per item (``item.source`` = the source listing's entry, ``item.destination`` = where it goes):

        - skip when the destination already holds identical content (one destination listing per
          version, loaded lazily and shared by that version's items; ``overwrite`` turns this off);
        - upload with ``X-Checksum-*`` = the source listing's digests, so the destination checks
          what it computed against the source (an hc registry and Harness refuse a mismatch); the
          bytes are also hashed on the way through and the upload is broken off before its last
          chunk if they differ from the listing. A source entry without a sha256 is read once to
          compute it first. ``verify_destination`` adds a HEAD after each upload and compares the
          destination's size and sha256 (for servers that may not check the headers);
        - retries: a request is retried by the pacer (Retry-After honoured, one gate for the job);
          an integrity failure restarts the item from byte 0, up to ``max_attempts`` times;
        - journal: ``mark_done`` / ``mark_failed`` under the destination path
          (``package/version/path``); results and bytes go to ``accounting``;
        - one request token per item in flight (its GET and PUT run together), under the manager's
          single ``concurrency`` limit; ``dry_run`` reports ``planned`` items and changes nothing.

        Returns the job's ``Summary``; a failed item does not stop the others.
        """
        job = Job(
            journal=self._journal or Journal.in_memory(),
            source=source,
            indexes=IndexCache(),
            verify_destination=verify_destination,
        )
        return await self._run(
            job,
            items,
            describe=lambda item: (location_text(item.destination), item.source.size),
            handle=self._copy_one,
        )

    async def listing(self, package: str, version: str) -> AsyncIterator[FileEntry]:
        """``remote.list_files`` made resilient: a listing broken off by a transient error restarts
        and skips what it already yielded (listings are ordered). A missing version lists nothing."""
        yielded = 0
        failures = 0
        while True:
            seen = 0
            try:
                async for entry in self._remote.list_files(package, version):
                    seen += 1
                    if seen <= yielded:
                        continue
                    yielded += 1
                    failures = 0
                    yield entry
                return
            except NotFound:
                return
            except Exception as exc:
                decision = classify(exc)
                failures += 1
                if not decision.retryable or failures >= self._policy.max_attempts:
                    raise
                await anyio.sleep(self._policy.backoff.delay(failures, decision, self._draw()))
