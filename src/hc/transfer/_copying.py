"""Copy, item by item, registry to registry: the source's bytes streamed into the destination's
upload (no local disk). The upload declares the source listing's digests, so the check that the
bytes match them is end to end wherever it runs: the stream is hashed on the way through and
checked before the last chunk goes, unless the destination refuses a mismatch itself
(``verifies_checksums``, an hc registry), where hashing it twice would only cost the client a CPU
second per GiB.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

import anyio

from hc.errors import IntegrityError, NotFound, TransientError
from hc.protocol.digest import Checksums, MultiHasher
from hc.transfer._engine import (
    THREAD_HASH_MIN,
    EngineCore,
    ItemBytes,
    Job,
    describe_error,
    is_item_error,
    source_fingerprint,
    verify_checksums,
    wanted_algorithms,
)
from hc.transfer._files import (
    CountingSource,
)
from hc.transfer.coordinator import TransferCoordinator
from hc.transfer.march import DestinationIndex, Verdict, compare
from hc.transfer.pacer import call_with_retries
from hc.transfer.remote import CopyPair, FileEntry, FileLocation, Remote, RemoteFile
from hc.transfer.results import Status

#: Destination listings a copy keeps at once (one per version being copied; items arrive grouped
#: by version, so a handful is enough, and the bound keeps memory flat over millions of versions).
_MAX_INDEXES: Final = 64


class IndexCache:
    """One destination listing per version, loaded once by the first item of that version that
    needs it (the others wait for it), least recently used evicted."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[str, str], tuple[anyio.Event, list[DestinationIndex]]] = (
            OrderedDict()
        )

    async def get(
        self, key: tuple[str, str], load: Callable[[], Awaitable[DestinationIndex]]
    ) -> DestinationIndex:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
            ready, holder = found
            await ready.wait()
            if holder:
                return holder[0]
            # The loader failed; this item tries again (and fails or succeeds on its own).
        ready, holder = anyio.Event(), []
        self._entries[key] = (ready, holder)
        while len(self._entries) > _MAX_INDEXES:
            self._entries.popitem(last=False)
        try:
            holder.append(await load())
        except BaseException:
            if self._entries.get(key) == (ready, holder):
                del self._entries[key]
            raise
        finally:
            ready.set()
        return holder[0]


class _StreamedSource:
    """A ``ByteSource`` whose bytes are a download from the source registry: every ``open()`` is a
    new GET, read chunk by chunk as the upload consumes it (no disk, one chunk in memory).

    With ``verify``, the bytes are hashed on the way through and checked against the source
    listing *before the last chunk is handed over*, so a corrupt stream makes the upload fail short
    instead of completing with wrong content. Without it only the byte count is checked (the
    destination checks the digests). ``failure`` keeps the error raised inside the body, because
    an HTTP client may report it as a broken request instead.
    """

    __slots__ = ("_hashers", "_remote", "_stall", "_verify", "entry", "failure", "label")

    def __init__(
        self,
        remote: Remote,
        entry: FileEntry,
        *,
        label: str,
        stall_timeout: float,
        hashers: anyio.CapacityLimiter,
        verify: bool = True,
    ) -> None:
        self._remote = remote
        self.entry = entry
        self.label = label
        self._stall = stall_timeout
        self._hashers = hashers
        self._verify = verify
        self.failure: BaseException | None = None

    @property
    def size(self) -> int:
        return self.entry.size

    async def open(self) -> AsyncIterator[bytes]:
        self.failure = None
        try:
            async for chunk in self._chunks():
                yield chunk
        except Exception as exc:
            self.failure = exc
            raise

    async def _chunks(self) -> AsyncIterator[bytes]:
        entry, size = self.entry, self.entry.size
        hasher = MultiHasher(wanted_algorithms(entry)) if self._verify else None
        received = 0
        async with self._remote.open_read(entry) as stream:
            if stream.total_size is not None and stream.total_size != size:
                raise IntegrityError(
                    f"{self.label}: the source changed ({stream.total_size} bytes, listed as {size})"
                )
            chunks = aiter(stream)
            while True:
                with anyio.fail_after(self._stall):
                    chunk = await anext(chunks, None)
                if chunk is None:
                    break
                received += len(chunk)
                if received > size:
                    raise IntegrityError(f"{self.label}: the source sent more than the {size} bytes listed")
                if hasher is not None:
                    if len(chunk) >= THREAD_HASH_MIN:
                        await anyio.to_thread.run_sync(hasher.update, chunk, limiter=self._hashers)
                    else:
                        hasher.update(chunk)
                    if received == size:
                        verify_checksums(self.label, entry, hasher.result())
                yield chunk
        if received < size:
            raise TransientError(
                f"{self.label}: the source download ended early at byte {received} of {size}"
            )
        if size == 0 and hasher is not None:
            verify_checksums(self.label, entry, hasher.result())


def _source_checksums(entry: FileEntry) -> Checksums | None:
    """What the upload declares (``X-Checksum-*``): the source listing's digests."""
    if not entry.sha256:
        return None
    return Checksums(
        size=entry.size,
        sha256=entry.sha256.strip().lower(),
        md5=entry.md5.strip().lower() if entry.md5 else None,
        sha1=entry.sha1.strip().lower() if entry.sha1 else None,
        sha512=entry.sha512.strip().lower() if entry.sha512 else None,
    )


def location_text(location: FileLocation) -> str:
    return f"{location.package}/{location.version}/{location.path}"


class CopySide(EngineCore):
    """Registry to registry: each file streamed from its source into its destination."""

    async def _destination_index(self, job: Job, package: str, version: str) -> DestinationIndex:
        assert job.indexes is not None

        async def fetch() -> DestinationIndex:
            index = DestinationIndex()
            try:
                async for entry in self._remote.list_files(package, version):
                    index.add(entry.path, entry)
            except NotFound:
                pass
            return index

        return await job.indexes.get(
            (package, version),
            lambda: call_with_retries(fetch, self._policy, gate=self._gate, draw=self._draw),
        )

    async def _copy_one(self, job: Job, item: CopyPair) -> None:
        config = self._config
        entry, where = item.source, item.destination
        label = location_text(where)
        coordinator = self._coordinator(label, entry.size)
        action = "copy"
        try:
            if not config.overwrite:
                index = await self._destination_index(job, where.package, where.version)
                if compare(entry, index.get(where.path)) is Verdict.IDENTICAL:
                    coordinator.finish(Status.SKIPPED, action="identical", sha256=entry.sha256)
                    return
            if config.dry_run:
                coordinator.finish(Status.PLANNED, action=action, sha256=entry.sha256)
                return
            coordinator.start()
            job.journal.begin(label, fingerprint=source_fingerprint(entry), size=entry.size)
            sha256 = await self._copy_bytes(job, coordinator, entry, where, label)
            job.journal.mark_done(label, sha256=sha256)
            coordinator.finish(Status.DONE, action=action, sha256=sha256)
        except Exception as exc:
            if not config.dry_run:
                job.journal.mark_failed(label, describe_error(exc))
            await self._finish_with_error(coordinator, exc, action=action, local_path=None)
            if not is_item_error(exc):
                raise
        except BaseException:
            if not coordinator.done:
                coordinator.cancel(action=action)
            raise

    async def _hash_source(
        self, coordinator: TransferCoordinator, source: Remote, entry: FileEntry, label: str
    ) -> FileEntry:
        """Read a source file once to learn its sha256 (its listing gave none)."""
        streamed = _StreamedSource(
            source, entry, label=label, stall_timeout=self._config.stall_timeout, hashers=self._hashers
        )

        async def read_all() -> Checksums:
            hasher = MultiHasher(("sha256",))  # a fresh one per attempt
            async for chunk in streamed.open():
                hasher.update(chunk)
            return hasher.result()

        digests = await self._call(coordinator, read_all)
        return RemoteFile(
            package=entry.package,
            version=entry.version,
            path=entry.path,
            size=entry.size,
            sha256=digests.sha256,
            md5=entry.md5,
            sha1=entry.sha1,
            sha512=entry.sha512,
        )

    async def _copy_bytes(
        self, job: Job, coordinator: TransferCoordinator, entry: FileEntry, where: FileLocation, label: str
    ) -> str:
        source = job.source
        assert source is not None
        tracker = ItemBytes(self.accounting, coordinator.path, entry.size)
        self.accounting.started(coordinator.path, entry.size)
        attempt = 0
        while True:
            attempt += 1
            coordinator.attempts += 1
            try:
                if not entry.sha256:
                    entry = await self._hash_source(coordinator, source, entry, label)
                sha256 = await self._copy_attempt(coordinator, source, entry, where, label, tracker)
                if job.verify_destination:
                    await self._verify_destination(coordinator, entry, where, label)
                return sha256
            except IntegrityError as exc:
                tracker.rewind_all()
                if attempt >= self._policy.max_attempts:
                    raise
                self.accounting.retried(coordinator.path, attempt=attempt, delay=0.0, error=exc)

    async def _copy_attempt(
        self,
        coordinator: TransferCoordinator,
        source: Remote,
        entry: FileEntry,
        where: FileLocation,
        label: str,
        tracker: ItemBytes,
    ) -> str:
        """One streamed GET → PUT (with request-level retries, each a fresh GET)."""
        checksums = _source_checksums(entry)
        assert checksums is not None
        verify = not self._remote.capabilities.verifies_checksums
        streamed = _StreamedSource(
            source,
            entry,
            label=label,
            stall_timeout=self._config.stall_timeout,
            hashers=self._hashers,
            verify=verify,
        )
        counted = CountingSource(streamed, tracker.add)

        async def put() -> None:
            try:
                await self._remote.put_file(
                    where, counted, checksums=checksums, overwrite=self._config.overwrite
                )
            except Exception as exc:
                # The body's own error (the source broke or lied) explains the failure better
                # than the half-sent request it caused.
                failure = streamed.failure
                if failure is not None and failure is not exc:
                    raise failure from exc
                if failure is None and not verify and isinstance(exc, IntegrityError):
                    # The destination's own check refused what the source sent.
                    raise IntegrityError(
                        f"{label}: the bytes read from the source do not match its listed sha256 "
                        f"{checksums.sha256}; the destination refused them and stored nothing"
                    ) from exc
                raise

        await self._call(coordinator, put, on_rewind=lambda: tracker.add(-counted.take_attempt_bytes()))
        return checksums.sha256

    async def _verify_destination(
        self, coordinator: TransferCoordinator, entry: FileEntry, where: FileLocation, label: str
    ) -> None:
        found = await self._call(coordinator, lambda: self._remote.stat(where))
        if found is None:
            raise IntegrityError(f"{label}: the destination does not show the file after the upload")
        if found.size != entry.size:
            raise IntegrityError(
                f"{label}: the destination holds {found.size} bytes, the source {entry.size}"
            )
        want = (entry.sha256 or "").lower()
        if found.sha256 and want and found.sha256.lower() != want:
            raise IntegrityError(
                f"{label}: sha256 mismatch at the destination ({found.sha256}, expected {want})"
            )
