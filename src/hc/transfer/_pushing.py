"""Push, item by item: skip what the registry already holds, else a whole PUT or a resumable
upload session (parts in order or in parallel, the sha256 at commit when the registry takes it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Final

import anyio

from hc.errors import HcError, IntegrityError, NotFound, TransientError, UsageError
from hc.protocol.digest import Checksums
from hc.protocol.identifiers import is_utf8_text
from hc.protocol.ranges import ByteRange, normalize
from hc.transfer._engine import (
    INLINE_HASH_MAX,
    EngineCore,
    ItemBytes,
    Job,
    describe_error,
    is_item_error,
    leaf_errors,
)
from hc.transfer._files import (
    BytesSource,
    CountingSource,
    FileSource,
    FileStamp,
    hash_path,
    read_and_hash,
)
from hc.transfer.coordinator import TransferCoordinator
from hc.transfer.march import DestinationIndex, Verdict, compare
from hc.transfer.pacer import call_with_retries, classify
from hc.transfer.plan import clamp_part_size, remaining_upload
from hc.transfer.remote import FileRef, SessionState
from hc.transfer.results import Status
from hc.transfer.walk import LocalItem

_log = logging.getLogger(__name__)


#: Servers cap the number of parts (S3: 10 000); a huge file gets bigger parts instead.
_MAX_PARTS: Final = 10_000


def _received(session: SessionState) -> list[tuple[int, int]]:
    return list(session.received) if session.received else [(0, session.offset)]


class PushSide(EngineCore):
    """Upload items: skip what the destination already holds, whole PUTs or resumable sessions."""

    async def _load_index(self, job: Job) -> None:
        assert job.index_ready is not None

        async def fetch() -> DestinationIndex:
            index = DestinationIndex()
            try:
                async for entry in self._remote.list_files(job.package, job.version):
                    index.add(entry.path, entry)
            except NotFound:
                pass
            return index

        job.index = await call_with_retries(fetch, self._policy, gate=self._gate, draw=self._draw)
        job.index_ready.set()

    def _cached_checksums(self, item: LocalItem) -> Checksums | None:
        """The hash cache's digests of the file as walked (same size, mtime, inode), if any."""
        if self._hash_cache is None:
            return None
        return self._hash_cache.get(
            item.absolute,
            size=item.size,
            mtime_ns=item.mtime_ns,
            inode=item.inode,
            require=self._algorithms(),
        )

    async def _local_checksums(
        self, item: LocalItem, *, use_cache: bool = True
    ) -> tuple[Checksums, bytes | None, LocalItem]:
        """The file's digests (and its bytes, when small), and the item as it was when hashed: its
        size and mtime are what the upload later checks the file against (``FileSource``)."""
        cache, key = self._hash_cache, item.absolute
        algorithms = self._algorithms()
        if use_cache and (cached := self._cached_checksums(item)) is not None:
            return cached, None, item
        checksums, st, data = await read_and_hash(
            item.path,
            buffer_size=self._config.buffer_size,
            limiter=self._hashers,
            inline_limit=self._config.buffer_size,
            parallel=self._config.hash_threads,
            algorithms=algorithms,
            size_hint=item.size,
            loop_limit=INLINE_HASH_MAX,
        )
        if cache is not None and not self._config.dry_run:
            cache.put(key, mtime_ns=st.st_mtime_ns, inode=st.st_ino, checksums=checksums)
        if (item.size, item.mtime_ns, item.inode, item.device) == (
            st.st_size,
            st.st_mtime_ns,
            st.st_ino,
            st.st_dev,
        ):
            return checksums, data, item  # as walked (the usual case): no copy to make
        hashed = replace(item, size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino, device=st.st_dev)
        return checksums, data, hashed

    @staticmethod
    def _stamp(item: LocalItem) -> FileStamp:
        return FileStamp(item.size, item.mtime_ns)

    def _use_session(self, size: int) -> bool:
        return self._remote.capabilities.upload_sessions and size > self._config.chunk_size

    async def _defers_hash(self, job: Job, item: LocalItem) -> bool:
        """Whether this file (its digests not cached) may go up before it is hashed: it takes an
        upload session, the server takes the sha256 at commit (``digest_at_commit``), and the
        destination cannot make it a skip whatever its hash (no file there, or one of another
        size). Hashing first would read the whole file serially before the first byte moves.
        A dry run always hashes: its report says what would be skipped."""
        if self._config.dry_run or not self._use_session(item.size):
            return False
        if not self._remote.capabilities.digest_at_commit:
            return False
        if job.index_ready is not None:
            await job.index_ready.wait()
            assert job.index is not None
            there = job.index.get(item.relpath)
            if there is not None and there.size == item.size:
                return False  # same size: only the hash can tell whether it is a skip
        return True

    async def _hash_deferred(self, item: LocalItem) -> Checksums:
        """Hash the whole file (on worker threads, under the ``_hashers`` limiter) for a session
        opened without its digest; the cache remembers the result like any other hash."""
        checksums, st = await hash_path(
            item.path,
            buffer_size=self._config.buffer_size,
            limiter=self._hashers,
            algorithms=self._algorithms(),
            parallel=self._config.hash_threads,
        )
        if FileStamp.of(st) != self._stamp(item):
            # The parts are read against the walk's stamp (FileSource): digests of another version
            # of the file would describe neither. The item-level retry hashes again, first.
            raise IntegrityError(f"{item.location} changed since it was listed; hashing it again")
        if self._hash_cache is not None:
            self._hash_cache.put(item.absolute, mtime_ns=st.st_mtime_ns, inode=st.st_ino, checksums=checksums)
        return checksums

    async def _send_while_hashing(
        self, item: LocalItem, send: Callable[[], Awaitable[SessionState]]
    ) -> tuple[SessionState, Checksums]:
        """Send the parts while the file is hashed (sha256 at commit): the file is read twice, by
        different threads, as before, but the wall time is the longer of the two, not their sum."""
        hashed: list[Checksums] = []

        async def hash_file() -> None:
            hashed.append(await self._hash_deferred(item))

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(hash_file)
                session = await send()
        except BaseExceptionGroup as group:
            leaves = leaf_errors(group)
            # A changed file (from either side) goes to the item-level retry, which catches a
            # plain IntegrityError; any other single failure is raised as itself too.
            changed = [leaf for leaf in leaves if isinstance(leaf, IntegrityError)]
            if changed:
                raise changed[0] from group
            if len(leaves) == 1 and isinstance(leaves[0], Exception):
                raise leaves[0] from group
            raise
        return session, hashed[0]

    async def _push_one(self, job: Job, item: LocalItem) -> None:
        config = self._config
        coordinator = self._coordinator(item.relpath, item.size)
        ref = FileRef(package=job.package, version=job.version, path=item.relpath)
        local_path = item.location
        action = ""
        try:
            if not is_utf8_text(item.relpath):
                # A registry path is text (JSON, URLs): a name the file system holds as bytes that
                # are not UTF-8 cannot be one. The item fails by name; the rest of the job goes on.
                raise UsageError(
                    f"{item.location}: the name is not UTF-8 text, which a registry path must be"
                )
            checksums = self._cached_checksums(item)
            data: bytes | None = None
            hashed = item
            if checksums is None and await self._defers_hash(job, item):
                use_session = True  # the sha256 goes with the commit: hashed while the parts go up
            else:
                if checksums is None:
                    checksums, data, hashed = await self._local_checksums(item, use_cache=False)
                if job.index_ready is not None:
                    await job.index_ready.wait()
                    assert job.index is not None
                    if compare(checksums, job.index.get(item.relpath)) is Verdict.IDENTICAL:
                        coordinator.finish(
                            Status.SKIPPED, action="identical", sha256=checksums.sha256, local_path=local_path
                        )
                        return
                use_session = self._use_session(checksums.size)
            action = "upload-session" if use_session else "upload"
            if config.dry_run:
                assert checksums is not None  # a dry run never defers the hash (_defers_hash)
                prior = job.journal.get(item.relpath)
                if use_session and prior is not None and prior.session_id:
                    action = "resume"  # from about prior.acked bytes; the server has the final word
                coordinator.finish(
                    Status.PLANNED, action=action, sha256=checksums.sha256, local_path=local_path
                )
                return
            coordinator.start()
            checksums, journaled = await self._upload(
                job, coordinator, hashed, ref, checksums, data, use_session
            )
            if journaled:
                # Only an upload session leaves a journal row (its id, its acked bytes) to close.
                # A whole-file PUT never wrote one: a re-run finds the file in the listing, so
                # two no-op statements per small file would be pure cost.
                job.journal.mark_done(item.relpath, sha256=checksums.sha256)
            coordinator.finish(Status.DONE, action=action, sha256=checksums.sha256, local_path=local_path)
        except Exception as exc:
            if not config.dry_run and is_utf8_text(item.relpath):
                job.journal.mark_failed(item.relpath, describe_error(exc))
            await self._finish_with_error(coordinator, exc, action=action, local_path=local_path)
            if not is_item_error(exc):
                raise
        except BaseException:
            if not coordinator.done:
                coordinator.cancel(action=action, local_path=local_path)
            raise

    async def _upload(
        self,
        job: Job,
        coordinator: TransferCoordinator,
        item: LocalItem,
        ref: FileRef,
        checksums: Checksums | None,
        data: bytes | None,
        use_session: bool,
    ) -> tuple[Checksums, bool]:
        """Upload with item-level retries for integrity failures: the source changed (hash again)
        or the server assembled something else (new session). Returns the digests sent and
        whether any attempt went through an upload session (and so left a journal row).
        ``checksums`` None: not hashed yet, the session hashes while it sends (``_defers_hash``);
        a retry always hashes first."""
        size = item.size if checksums is None else checksums.size
        tracker = ItemBytes(self.accounting, coordinator.path, size)
        started = False

        def report_start(resumed: int) -> None:
            nonlocal started
            if not started:
                started = True
                self.accounting.started(coordinator.path, tracker.expected, resumed=resumed)

        attempt = 0
        journaled = use_session
        while True:
            attempt += 1
            coordinator.attempts += 1
            journaled = journaled or use_session
            try:
                if use_session:
                    checksums = await self._upload_session(
                        job, coordinator, item, ref, checksums, tracker, report_start
                    )
                else:
                    assert checksums is not None  # only an upload session defers the hash
                    report_start(0)
                    await self._upload_whole(coordinator, item, ref, checksums, data, tracker)
                return checksums, journaled
            except IntegrityError as exc:
                tracker.rewind_all()
                if attempt >= self._policy.max_attempts:
                    raise
                self.accounting.retried(coordinator.path, attempt=attempt, delay=0.0, error=exc)
                # Hash (and stat) the file again: it may have changed size since the last attempt.
                checksums, data, item = await self._local_checksums(item, use_cache=False)
                tracker.expected = checksums.size
                use_session = self._use_session(checksums.size)

    async def _upload_whole(
        self,
        coordinator: TransferCoordinator,
        item: LocalItem,
        ref: FileRef,
        checksums: Checksums,
        data: bytes | None,
        tracker: ItemBytes,
    ) -> None:
        config = self._config

        def file_source() -> FileSource:
            return FileSource(
                item.path,
                length=checksums.size,
                buffer_size=config.buffer_size,
                expect=self._stamp(item),
                loop_limit=INLINE_HASH_MAX,  # a cached file's digests, its bytes read on the loop
            )

        batch_limit = self._batch_limit(read=False)
        if batch_limit > 0 and checksums.size <= batch_limit:
            if data is None:  # digests from the hash cache: read it now (checked against its stamp)
                reader = file_source()
                try:
                    data = b"".join([chunk async for chunk in reader.open()])
                finally:
                    reader.close()  # a read that failed part-way leaves no descriptor behind
            whole = data
            # Joins a request with the other small files being pushed meanwhile; the registry
            # verifies it against its sha256 like a PUT (an IntegrityError sends it again).
            await self._call(
                coordinator,
                lambda: self._remote.write_whole(
                    ref,
                    whole,
                    checksums=checksums,
                    overwrite=config.overwrite,
                    stall_timeout=config.stall_timeout,
                ),
                token=False,
            )
            tracker.add(len(whole))
            return
        inner = BytesSource(data, buffer_size=config.buffer_size) if data is not None else file_source()
        source = CountingSource(inner, tracker.add, stall_timeout=config.stall_timeout)
        await self._call(
            coordinator,
            lambda: source.send(
                lambda: self._remote.put_file(ref, source, checksums=checksums, overwrite=config.overwrite)
            ),
            on_rewind=lambda: tracker.add(-source.take_attempt_bytes()),
        )

    async def _open_session(
        self,
        job: Job,
        coordinator: TransferCoordinator,
        ref: FileRef,
        item: LocalItem,
        checksums: Checksums | None,
    ) -> SessionState:
        """Resume the journal's session for this file when it still fits, else begin one (with no
        digest declared when ``checksums`` is None: the commit carries it)."""
        key = ref.path
        size = item.size if checksums is None else checksums.size
        # A session begun before the hash was known is tied to the file's stat stamp instead of
        # its sha256: a re-run of the unchanged file resumes it, a changed file starts another
        # (and the commit's digest check catches a change the stamp missed). The stamp form also
        # serves a re-run that finds the hash cached since: it is the same file.
        stamp = f"stamp:{item.size}:{item.mtime_ns}:{item.inode}"
        fingerprint = stamp
        if checksums is not None:
            prior = job.journal.get(key)
            if prior is None or prior.fingerprint != stamp:
                fingerprint = f"{checksums.size}:{checksums.sha256}"
        prior = job.journal.begin(key, fingerprint=fingerprint, size=size)
        if prior is not None and prior.session_id:
            session_id = prior.session_id
            try:
                return await self._call(coordinator, lambda: self._remote.resume_upload(ref, session_id))
            except HcError as exc:
                if classify(exc).retryable and not isinstance(exc, NotFound):
                    raise
                _log.debug(
                    "session %s for %s cannot be resumed (%s); starting a new one", session_id, key, exc
                )
        session = await self._call(
            coordinator, lambda: self._remote.begin_upload(ref, size=size, checksums=checksums)
        )
        job.journal.set_session(key, session.id)
        job.journal.flush()  # a session the journal forgets is an orphan on the server
        return session

    async def _upload_session(
        self,
        job: Job,
        coordinator: TransferCoordinator,
        item: LocalItem,
        ref: FileRef,
        checksums: Checksums | None,
        tracker: ItemBytes,
        report_start: Callable[[int], None],
    ) -> Checksums:
        """Upload through a session and return the digests committed. ``checksums`` None: the
        session declares none and the file is hashed while the parts go up (also on a resume,
        where only the missing parts are sent but the hash still reads the whole file)."""
        remote, config = self._remote, self._config
        session = await self._open_session(job, coordinator, ref, item, checksums)
        opened = session

        async def abort() -> None:
            job.journal.set_session(ref.path, None)
            await remote.abort_upload(ref, opened)

        # Registered where the session is created: a failed item does not leave it on the server.
        coordinator.add_failure_cleanup(abort)
        report_start(sum(part.length for part in normalize(_received(session))))
        caps = remote.capabilities
        part_size = clamp_part_size(
            tracker.expected,
            config.chunk_size,
            min_part=caps.min_part_size,
            max_part=caps.max_part_size,
            max_parts=_MAX_PARTS,
        )

        async def send() -> SessionState:
            if caps.parallel_parts and config.split > 1:
                return await self._send_parts_parallel(coordinator, item, ref, opened, part_size, tracker)
            return await self._send_parts_in_order(job, coordinator, item, ref, opened, part_size, tracker)

        try:
            if checksums is None:
                session, checksums = await self._send_while_hashing(item, send)
            else:
                session = await send()
            final, digests = session, checksums
            try:
                await self._call(
                    coordinator,
                    lambda: remote.commit_upload(ref, final, checksums=digests, overwrite=config.overwrite),
                )
            except NotFound:
                # A commit whose answer was lost (a gateway 502, a cut connection) is retried and
                # finds the session gone because it succeeded: the stored file says which it was.
                stored = await self._call(coordinator, lambda: remote.stat(ref))
                if stored is None or stored.size != digests.size or stored.sha256 != digests.sha256:
                    raise
        except IntegrityError:
            # The assembled bytes are wrong: this session is useless, the next attempt opens another.
            coordinator.discard_failure_cleanups()
            with anyio.CancelScope(shield=True):
                try:
                    await abort()
                except Exception as exc:
                    _log.debug("abort of %s failed: %s", ref, exc)
            raise
        coordinator.discard_failure_cleanups()
        return digests

    def _part_source(self, item: LocalItem, part: ByteRange, tracker: ItemBytes) -> CountingSource:
        inner = FileSource(
            item.path,
            offset=part.start,
            length=part.length,
            buffer_size=self._config.buffer_size,
            expect=self._stamp(item),
        )
        return CountingSource(inner, tracker.add, stall_timeout=self._config.stall_timeout)

    async def _send_parts_in_order(
        self,
        job: Job,
        coordinator: TransferCoordinator,
        item: LocalItem,
        ref: FileRef,
        session: SessionState,
        part_size: int,
        tracker: ItemBytes,
    ) -> SessionState:
        """OCI-style: each part starts at the server's offset. After a failure the server is asked
        where it got to (a broken part may have been kept in part), so nothing is sent twice and
        nothing is skipped."""
        size = tracker.expected
        session_id = session.id  # constant for the session's life; its offset is what moves
        failures = 0
        while todo := remaining_upload(size, part_size, _received(session)):
            part = todo[0]
            source = self._part_source(item, part, tracker)
            try:
                await self._gate.wait()
                async with self._requests:
                    session = await source.send(
                        lambda: self._remote.put_part(ref, session, offset=part.start, source=source)  # noqa: B023
                    )
                failures = 0
                job.journal.set_acked(ref.path, session.offset)
            except Exception as exc:
                tracker.add(-source.take_attempt_bytes())
                failures += 1
                await self._backoff_or_raise(coordinator, exc, failures)
                session = await self._call(coordinator, lambda: self._remote.resume_upload(ref, session_id))
                # Whatever of the broken part the server kept will not be sent again: count it.
                tracker.add(max(0, min(session.offset, part.end) - part.start))
        return session

    async def _send_parts_parallel(
        self,
        coordinator: TransferCoordinator,
        item: LocalItem,
        ref: FileRef,
        session: SessionState,
        part_size: int,
        tracker: ItemBytes,
    ) -> SessionState:
        """For servers that take parts at any offset: up to ``split`` parts in flight (each holding
        a request token), then ask the server what it holds and fill any hole in another round."""
        session_id = session.id
        for _ in range(self._policy.max_attempts):
            todo = remaining_upload(tracker.expected, part_size, _received(session))
            if not todo:
                return session
            pending = iter(todo)
            try:
                async with anyio.create_task_group() as tg:
                    for _ in range(min(self._config.split, len(todo))):
                        tg.start_soon(self._part_sender, coordinator, item, ref, session, pending, tracker)
            except BaseExceptionGroup as group:
                # A part found the file changed: the item-level retry (hash again, new session)
                # catches a plain IntegrityError, not one wrapped in the task group's error.
                changed = [leaf for leaf in leaf_errors(group) if isinstance(leaf, IntegrityError)]
                if changed:
                    raise changed[0] from group
                raise
            session = await self._call(coordinator, lambda: self._remote.resume_upload(ref, session_id))
        if remaining_upload(tracker.expected, part_size, _received(session)):
            raise TransientError(f"{item.relpath}: the server still lacks parts after every retry")
        return session

    async def _part_sender(
        self,
        coordinator: TransferCoordinator,
        item: LocalItem,
        ref: FileRef,
        session: SessionState,
        pending: Iterator[ByteRange],
        tracker: ItemBytes,
    ) -> None:
        for part in pending:  # a shared iterator: each part goes to exactly one sender
            source = self._part_source(item, part, tracker)
            await self._call(
                coordinator,
                lambda: source.send(  # noqa: B023
                    lambda: self._remote.put_part(ref, session, offset=part.start, source=source)  # noqa: B023
                ),
                on_rewind=lambda: tracker.add(-source.take_attempt_bytes()),  # noqa: B023
            )
