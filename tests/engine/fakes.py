"""An in-memory Remote with the faults real networks and servers produce, injected on demand.

It behaves like an hc registry would: it checks uploaded bytes against the declared sha256, keeps
what a broken upload part delivered (as an OCI registry does), honours Range/If-Range, and
answers 200 with the whole body when If-Range does not match. Faults are scripted per operation
and path (deterministic), or drawn at a rate from a seeded RNG. Every call, byte and concurrent
request is counted so tests can assert on them.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import random
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from hc.errors import Conflict, IntegrityError, NotFound, RateLimited, RemoteError, TransientError
from hc.protocol.digest import Checksums, MultiHasher
from hc.protocol.ranges import normalize
from hc.transfer.remote import (
    ByteSource,
    Capabilities,
    FileEntry,
    FileLocation,
    RemoteFile,
    SessionState,
    UploadSession,
)


class Fault(enum.Enum):
    RESET = "reset"  # the connection drops mid-body
    HTTP_500 = "500"
    HTTP_502 = "502"
    HTTP_503 = "503"
    RATE_LIMIT = "429"  # with Retry-After
    TRUNCATE = "truncate"  # a download body ends early without an error
    BITFLIP = "bitflip"  # one byte of a download body is flipped
    NOT_FOUND = "404"


_STATUS = {Fault.HTTP_500: 500, Fault.HTTP_502: 502, Fault.HTTP_503: 503}


class Faults:
    """Which fault the next call gets. Scripted faults win; random ones are drawn at ``rate``."""

    def __init__(self, *, seed: int = 0, retry_after: float = 0.01) -> None:
        self._scripted: dict[tuple[str, str | None], deque[Fault | None]] = defaultdict(deque)
        self._random: dict[str, tuple[float, Sequence[Fault]]] = {}
        self._rng = random.Random(seed)
        self.retry_after = retry_after
        self.injected: Counter[Fault] = Counter()

    def script(self, op: str, faults: Iterable[Fault | None], *, path: str | None = None) -> Faults:
        """The next calls of ``op`` (for ``path``, or any path) get these faults, in order."""
        self._scripted[(op, path)].extend(faults)
        return self

    def always(self, op: str, fault: Fault, *, path: str, times: int = 1000) -> Faults:
        return self.script(op, [fault] * times, path=path)

    def at_rate(self, op: str, rate: float, kinds: Sequence[Fault]) -> Faults:
        self._random[op] = (rate, kinds)
        return self

    def next(self, op: str, path: str | None) -> Fault | None:
        for key in ((op, path), (op, None)):
            queue = self._scripted.get(key)
            if queue:
                fault = queue.popleft()
                if fault is not None:
                    self.injected[fault] += 1
                return fault
        if op in self._random:
            rate, kinds = self._random[op]
            if self._rng.random() < rate:
                fault = self._rng.choice(list(kinds))
                self.injected[fault] += 1
                return fault
        return None

    def raise_for(self, fault: Fault | None, what: str) -> None:
        """Faults that fail a request before any body byte moves."""
        if fault in _STATUS:
            raise TransientError(f"{what}: HTTP {_STATUS[fault]}", status=_STATUS[fault])
        if fault is Fault.RATE_LIMIT:
            raise RateLimited(f"{what}: HTTP 429", retry_after=self.retry_after)
        if fault is Fault.NOT_FOUND:
            raise NotFound(f"{what}: HTTP 404")


@dataclass
class _Stored:
    data: bytes
    checksums: Checksums


def _checksums(data: bytes) -> Checksums:
    hasher = MultiHasher()
    hasher.update(data)
    return hasher.result()


@dataclass
class _Session:
    id: str
    key: tuple[str, str, str]
    size: int
    data: bytearray
    received: list[tuple[int, int]] = field(default_factory=list)

    def state(self) -> UploadSession:
        merged = normalize(self.received)
        offset = merged[0].end if merged and merged[0].start == 0 else 0
        return UploadSession(id=self.id, offset=offset, received=tuple((r.start, r.end) for r in merged))


@dataclass(frozen=True)
class _Stream:
    start: int
    total_size: int | None
    etag: str | None
    body: AsyncIterator[bytes]

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.body


class FakeRemote:
    """A registry in memory. ``block`` (an Event) holds every body mid-way until set: tests use it
    to cancel a job at a known point."""

    def __init__(
        self,
        *,
        capabilities: Capabilities | None = None,
        faults: Faults | None = None,
        chunk_size: int = 64 * 1024,
        page_size: int = 50,
        reject_overwrite: bool = False,
    ) -> None:
        self._capabilities = capabilities or Capabilities()
        self.faults = faults or Faults()
        self.files: dict[tuple[str, str, str], _Stored] = {}
        self.sessions: dict[str, _Session] = {}
        self.calls: Counter[str] = Counter()
        self.bytes_served = 0
        self.bytes_received = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.chunk_size = chunk_size
        self.page_size = page_size
        self.reject_overwrite = reject_overwrite
        #: downloads stall once this many bytes were served, uploads once this many were received
        self.block_after_bytes: int | None = None
        self.block_after_received: int | None = None
        self.blocked = anyio.Event()  # set when a body stalls at one of the limits above
        self.release = anyio.Event()  # set to let stalled bodies continue
        #: when set, every data request waits on it before doing anything (holds a "connection")
        self.hold: anyio.Event | None = None
        self._ids = itertools.count(1)

    # --- test helpers -------------------------------------------------------------------------

    def add(self, package: str, version: str, path: str, data: bytes) -> RemoteFile:
        self.files[(package, version, path)] = _Stored(data, _checksums(data))
        return self.entry(package, version, path)

    def entry(self, package: str, version: str, path: str) -> RemoteFile:
        stored = self.files[(package, version, path)]
        c = stored.checksums
        return RemoteFile(
            package=package,
            version=version,
            path=path,
            size=c.size,
            sha256=c.sha256,
            md5=c.md5,
            sha1=c.sha1,
            sha512=c.sha512,
        )

    def data(self, package: str, version: str, path: str) -> bytes:
        return self.files[(package, version, path)].data

    # --- bookkeeping --------------------------------------------------------------------------

    @asynccontextmanager
    async def _request(self, op: str) -> AsyncIterator[None]:
        self.calls[op] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await anyio.lowlevel.checkpoint()
            yield
        finally:
            self.in_flight -= 1

    async def _maybe_block(self, before: int, now: int, limit: int | None) -> None:
        if limit is not None and before < limit <= now:
            self.blocked.set()
            await self.release.wait()

    async def _held(self) -> None:
        if self.hold is not None:
            await self.hold.wait()

    async def _consume(self, source: ByteSource, fault: Fault | None, what: str) -> bytes:
        received = bytearray()
        async for chunk in source.open():
            received += chunk
            before = self.bytes_received
            self.bytes_received += len(chunk)
            await self._maybe_block(before, self.bytes_received, self.block_after_received)
            if fault is Fault.RESET and len(received) >= max(1, source.size // 2):
                raise TransientError(f"{what}: connection reset by peer")
        if len(received) != source.size:
            raise IntegrityError(f"{what}: body of {len(received)} bytes, declared {source.size}")
        return bytes(received)

    # --- the Remote protocol ------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    async def list_files(self, package: str, version: str) -> AsyncIterator[FileEntry]:
        keys = sorted(k for k in self.files if k[0] == package and k[1] == version)
        if not keys:
            raise NotFound(f"version {package}/{version} not found")
        for page_start in range(0, len(keys), self.page_size):
            async with self._request("list_files"):
                self.faults.raise_for(self.faults.next("list_files", None), "list")
                page = keys[page_start : page_start + self.page_size]
            for key in page:
                yield self.entry(*key)

    async def stat(self, location: FileLocation) -> FileEntry | None:
        async with self._request("stat"):
            key = (location.package, location.version, location.path)
            return self.entry(*key) if key in self.files else None

    @asynccontextmanager
    async def open_read(
        self,
        location: FileLocation,
        *,
        offset: int = 0,
        length: int | None = None,
        if_range: str | None = None,
    ) -> AsyncIterator[_Stream]:
        async with self._request("open_read"):
            await self._held()
            fault = self.faults.next("open_read", location.path)
            self.faults.raise_for(fault, f"GET {location.path}")
            stored = self.files.get((location.package, location.version, location.path))
            if stored is None:
                raise NotFound(f"{location.path} not found")
            size = len(stored.data)
            honoured = self._capabilities.ranged_reads and (
                if_range is None or if_range == stored.checksums.sha256
            )
            if honoured:
                start = offset
                end = size if length is None else min(size, offset + length)
            else:
                start, end = 0, size
            yield _Stream(start, size, stored.checksums.sha256, self._body(stored.data, start, end, fault))

    async def read_whole(self, location: FileLocation, *, stall_timeout: float) -> bytes:
        """A batch read of one file (only called when ``batch_read_max_size`` allows): the same
        faults as a GET, counted under ``read_whole``."""
        with anyio.fail_after(stall_timeout):
            async with self.open_read(location) as stream:
                self.calls["read_whole"] += 1
                return b"".join([chunk async for chunk in stream])

    async def _body(self, data: bytes, start: int, end: int, fault: Fault | None) -> AsyncIterator[bytes]:
        body = bytearray(data[start:end])
        if fault is Fault.BITFLIP and body:
            body[len(body) // 2] ^= 0x01
        limit = len(body) // 2 if fault in (Fault.RESET, Fault.TRUNCATE) else len(body)
        for pos in range(0, limit, self.chunk_size):
            chunk = bytes(body[pos : min(pos + self.chunk_size, limit)])
            before = self.bytes_served
            self.bytes_served += len(chunk)
            await self._maybe_block(before, self.bytes_served, self.block_after_bytes)
            await anyio.lowlevel.checkpoint()
            yield chunk
        if fault is Fault.RESET:
            raise TransientError("connection reset by peer")

    async def put_file(
        self, location: FileLocation, source: ByteSource, *, checksums: Checksums, overwrite: bool
    ) -> None:
        async with self._request("put_file"):
            await self._held()
            what = f"PUT {location.path}"
            fault = self.faults.next("put_file", location.path)
            self.faults.raise_for(fault, what)
            data = await self._consume(source, fault, what)
            self._store(location, data, checksums, overwrite)

    async def write_whole(
        self,
        location: FileLocation,
        data: bytes,
        *,
        checksums: Checksums,
        overwrite: bool,
        stall_timeout: float,
    ) -> None:
        """A batch write of one file (only called when ``batch_write_max_size`` allows): the same
        faults as a PUT (a BITFLIP corrupts what arrives), counted under ``write_whole``."""
        async with self._request("write_whole"):
            await self._held()
            what = f"batch write of {location.path}"
            fault = self.faults.next("put_file", location.path)
            self.faults.raise_for(fault, what)
            if fault is Fault.RESET:
                raise TransientError(f"{what}: connection reset by peer")
            received = bytearray(data)
            if fault is Fault.BITFLIP and received:
                received[len(received) // 2] ^= 0x01
            self.bytes_received += len(received)
            self._store(location, bytes(received), checksums, overwrite)

    def _store(self, location: FileLocation, data: bytes, checksums: Checksums, overwrite: bool) -> None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != checksums.sha256:
            raise IntegrityError(
                f"{location.path}: sha256 mismatch (declared {checksums.sha256}, got {actual})"
            )
        key = (location.package, location.version, location.path)
        existing = self.files.get(key)
        if existing is not None and self.reject_overwrite and not overwrite and existing.data != data:
            raise Conflict(f"{location.path} already exists with different content")
        self.files[key] = _Stored(data, _checksums(data))

    async def begin_upload(self, location: FileLocation, *, size: int, checksums: Checksums) -> SessionState:
        async with self._request("begin_upload"):
            self.faults.raise_for(self.faults.next("begin_upload", location.path), "POST session")
            session = _Session(
                id=f"s{next(self._ids)}",
                key=(location.package, location.version, location.path),
                size=size,
                data=bytearray(size),
            )
            self.sessions[session.id] = session
            return session.state()

    def _session(self, session_id: str) -> _Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise NotFound(f"upload session {session_id} not found")
        return session

    async def resume_upload(self, location: FileLocation, session_id: str) -> SessionState:
        async with self._request("resume_upload"):
            self.faults.raise_for(self.faults.next("resume_upload", location.path), "GET session")
            return self._session(session_id).state()

    async def put_part(
        self, location: FileLocation, session: SessionState, *, offset: int, source: ByteSource
    ) -> SessionState:
        async with self._request("put_part"):
            what = f"PATCH {location.path} @{offset}"
            fault = self.faults.next("put_part", location.path)
            self.faults.raise_for(fault, what)
            stored = self._session(session.id)
            if not self._capabilities.parallel_parts and offset != stored.state().offset:
                raise RemoteError(f"{what}: expected offset {stored.state().offset}", status=416)
            received = bytearray()
            try:
                async for chunk in source.open():
                    received += chunk
                    before = self.bytes_received
                    self.bytes_received += len(chunk)
                    await self._maybe_block(before, self.bytes_received, self.block_after_received)
                    if fault is Fault.RESET and len(received) >= max(1, source.size // 2):
                        raise TransientError(f"{what}: connection reset by peer")
            finally:
                # Like an OCI registry, keep whatever arrived before the connection broke.
                if received:
                    stored.data[offset : offset + len(received)] = received
                    stored.received.append((offset, offset + len(received)))
            return stored.state()

    async def commit_upload(
        self, location: FileLocation, session: SessionState, *, checksums: Checksums, overwrite: bool
    ) -> None:
        async with self._request("commit_upload"):
            self.faults.raise_for(self.faults.next("commit_upload", location.path), "PUT commit")
            stored = self._session(session.id)
            state = stored.state()
            if state.offset != stored.size:
                raise RemoteError(
                    f"session {session.id} is incomplete ({state.offset}/{stored.size})", status=416
                )
            self._store(location, bytes(stored.data), checksums, overwrite)
            del self.sessions[session.id]

    async def abort_upload(self, location: FileLocation, session: SessionState) -> None:
        async with self._request("abort_upload"):
            self.sessions.pop(session.id, None)
