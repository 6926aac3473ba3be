"""The Remote protocol: everything the engine needs from a registry, and nothing about HTTP.

``hc.api`` implements it over the Harness generic-file API; tests implement it in memory with
injected faults. The boundary is *structural*: the import contracts keep ``hc.api`` from importing
``hc.transfer``, so every value that crosses it is described by a read-only Protocol
(``FileLocation``, ``FileEntry``, ``SessionState``, ``RemoteCapabilities``, ``ReadStream``,
``ByteSource``; the two file ones, with the file dataclasses, live in ``hc.protocol.files``, which
both sides may import). The frozen dataclasses here (``FileRef``, ``RemoteFile``, ``UploadSession``,
``Capabilities``) satisfy those protocols and are what the engine and the fakes build; an
implementation may return its own types as long as they have the same attributes.

Wire mapping the api layer is expected to follow:

- ``list_files``  → paginated v3 ``/files?registry&package&version`` (size + md5/sha1/sha256/sha512 per
  file), streamed page by page; ``path`` is relative to the version, ``/``-separated, no leading ``/``.
  A package or version that does not exist yields nothing.
- ``stat``        → ``HEAD …/files/{package}/{version}/{path}``; ``None`` on 404.
- ``open_read``   → ``GET`` with ``Range: bytes=a-b`` and ``If-Range: "<etag>"`` (ETag = sha256).
- ``put_file``    → one streamed ``PUT`` with ``X-Checksum-*`` headers (one attempt; the engine retries).
- sessions        → an advertised extension (OCI-distribution style): begin → parts at offsets with
  ``Content-Range`` → commit by ``sha256:<hex>``; ``abort`` deletes the session. A server that
  advertises ``digest_at_commit`` also takes a begin without the sha256 (``checksums=None``): the
  engine then hashes the file while its parts go up, and only the commit carries the digest.

Every method makes **one attempt** and raises an ``hc.errors.HcError`` (``TransientError``,
``RateLimited``, ``IntegrityError``, ``NotFound`` …) on failure: retry policy lives in
``hc.transfer.pacer``, not in the Remote.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from hc.protocol.digest import ALGORITHMS, Checksums
from hc.protocol.files import FileEntry, FileLocation, FileRecord, FileRef

__all__ = [
    "ByteSource",
    "Capabilities",
    "CopyItem",
    "CopyPair",
    "FileEntry",
    "FileLocation",
    "FileRef",
    "FileRegion",
    "ReadStream",
    "Remote",
    "RemoteCapabilities",
    "RemoteFile",
    "SessionState",
    "UploadSession",
]


# --- values crossing the boundary, as read-only protocols -------------------------------------


class CopyPair(Protocol):
    """One file of a copy: the source's listing entry (size and digests, trusted as the reference)
    and where it goes on the destination."""

    @property
    def source(self) -> FileEntry: ...
    @property
    def destination(self) -> FileLocation: ...


class SessionState(Protocol):
    """What the server holds of one resumable upload.

    ``offset`` is the contiguous prefix acknowledged (OCI semantics: the next part must start there
    unless the server accepts parallel parts). ``received`` lists half-open ``(start, end)`` ranges
    held, for servers that accept parts out of order; empty means ``[(0, offset)]``.
    """

    @property
    def id(self) -> str: ...
    @property
    def offset(self) -> int: ...
    @property
    def received(self) -> Sequence[tuple[int, int]]: ...


class RemoteCapabilities(Protocol):
    """Optional features a server advertises; a plain Harness server has none of the extensions."""

    @property
    def upload_sessions(self) -> bool: ...
    @property
    def parallel_parts(self) -> bool: ...
    @property
    def ranged_reads(self) -> bool: ...
    @property
    def min_part_size(self) -> int: ...
    @property
    def max_part_size(self) -> int | None: ...
    @property
    def digest_at_commit(self) -> bool:
        """``begin_upload`` may be called without checksums: the commit's sha256 alone is checked."""
        ...

    @property
    def checksum_algorithms(self) -> Sequence[str]:
        """The digests an upload must carry (``X-Checksum-*``). Harness wants all four, as the Go CLI
        sends; an hc registry computes md5/sha1/sha512 itself and needs only sha256, which saves the
        client most of its hashing CPU."""
        ...

    @property
    def batch_read_max_size(self) -> int:
        """Files up to this size may be read with ``read_whole``, which an hc registry answers many
        to a request (``hc.protocol.batchread``); 0: one ``open_read`` per file."""
        ...

    @property
    def batch_write_max_size(self) -> int:
        """Files up to this size may be uploaded with ``write_whole``, which an hc registry takes
        many to a request (``hc.protocol.batchwrite``); 0: one ``put_file`` per file."""
        ...

    @property
    def verifies_checksums(self) -> bool:
        """An upload whose bytes do not match the digests it declares is refused with nothing
        stored (an hc registry; Harness does not say). A copy to such a server need not hash the
        stream itself: the declared digests are the source's, so the destination's check is the
        end-to-end one."""
        ...


class ReadStream(Protocol):
    """An open download body. Iterating yields the bytes in order, in chunks of any size.

    ``start`` is the file offset of the first byte this body carries: the requested offset when the
    server honoured ``Range`` (206), ``0`` when it sent the whole file instead (200, e.g. because
    ``If-Range`` did not match). ``total_size`` is the full file size when known.
    """

    @property
    def start(self) -> int: ...
    @property
    def total_size(self) -> int | None: ...
    @property
    def etag(self) -> str | None: ...
    def __aiter__(self) -> AsyncIterator[bytes]: ...


class ByteSource(Protocol):
    """A re-openable body: every ``open()`` returns a fresh iterator over the same ``size`` bytes,
    so a request can be replayed (a retry, a redirect) without holding the bytes in memory.

    A source read from a file may also say ``sends_regions`` and offer ``open_regions()``: the same
    bytes as ``FileRegion``s of an open file, which an HTTP remote sends with ``sendfile`` (the
    bytes never pass through Python). A source without them is sent from ``open()``."""

    @property
    def size(self) -> int: ...
    def open(self) -> AsyncIterator[bytes]: ...


@dataclass(frozen=True, slots=True)
class FileRegion:
    """``count`` bytes of the open file ``fd`` from ``offset``. The descriptor stays open until the
    source is asked for the next region (or the iteration ends)."""

    fd: int
    offset: int
    count: int

    def __len__(self) -> int:
        return self.count


class Remote(Protocol):
    """A registry the engine can list, read from and write to. One attempt per call."""

    @property
    def capabilities(self) -> RemoteCapabilities: ...

    def list_files(self, package: str, version: str) -> AsyncIterator[FileEntry]:
        """Every file of one version, streamed page by page (never the whole listing in memory)."""
        ...

    async def stat(self, location: FileLocation) -> FileEntry | None:
        """Size and digests of one file, ``None`` when it does not exist."""
        ...

    def open_read(
        self,
        location: FileLocation,
        *,
        offset: int = 0,
        length: int | None = None,
        if_range: str | None = None,
    ) -> AbstractAsyncContextManager[ReadStream]:
        """Open the bytes ``[offset, offset+length)`` (to the end when ``length`` is None).

        ``if_range`` is the entity tag the caller last saw (hc servers use the sha256 hex): when the
        file changed, the server answers with the whole new file and ``start == 0``.
        """
        ...

    async def read_whole(self, location: FileLocation, *, stall_timeout: float) -> bytes:
        """All of a small file (``capabilities.batch_read_max_size``), unverified: what the server
        sent for it, which the caller checks against the listing. TransientError when the request
        carrying it receives nothing for ``stall_timeout`` seconds."""
        ...

    async def write_whole(
        self,
        location: FileLocation,
        data: bytes,
        *,
        checksums: Checksums,
        overwrite: bool,
        stall_timeout: float,
    ) -> None:
        """Upload a small file held in memory (``capabilities.batch_write_max_size``), with the
        outcome a ``put_file`` of it would have had."""
        ...

    async def put_file(
        self, location: FileLocation, source: ByteSource, *, checksums: Checksums, overwrite: bool
    ) -> None:
        """Upload a whole file in one request; ``checksums`` are of the whole file."""
        ...

    async def begin_upload(
        self, location: FileLocation, *, size: int, checksums: Checksums | None
    ) -> SessionState:
        """Open a resumable upload session (only when ``capabilities.upload_sessions``).
        ``checksums`` None declares no digest (only when ``capabilities.digest_at_commit``)."""
        ...

    async def resume_upload(self, location: FileLocation, session_id: str) -> SessionState:
        """The server's view of an existing session; raises NotFound once it expired or was committed."""
        ...

    async def put_part(
        self, location: FileLocation, session: SessionState, *, offset: int, source: ByteSource
    ) -> SessionState:
        """Send ``source.size`` bytes to be stored at ``offset`` (``Content-Range``)."""
        ...

    async def commit_upload(
        self, location: FileLocation, session: SessionState, *, checksums: Checksums, overwrite: bool
    ) -> None:
        """Finish the upload; the server checks the assembled bytes against ``checksums.sha256``
        and raises IntegrityError when they differ."""
        ...

    async def abort_upload(self, location: FileLocation, session: SessionState) -> None:
        """Discard a session and whatever it received."""
        ...


# --- concrete values the engine and the fakes build -------------------------------------------


#: The engine's own file entries (from ``stat`` fallbacks and the fakes) have no fields beyond the
#: shared shape, so they are that shape; the name stays for the callers that build them.
RemoteFile = FileRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyItem:
    """What ``TransferManager.copy`` takes per file (any object with the same two attributes will do).

    ``source`` is the entry as the *source* listing gave it: its sha256 (or md5) is what the bytes
    are checked against on the way through and what the destination must compute.
    """

    source: FileEntry
    destination: FileRef

    @classmethod
    def same_place(cls, entry: FileEntry) -> CopyItem:
        """Copy to the same package/version/path on the destination."""
        return cls(
            source=entry, destination=FileRef(package=entry.package, version=entry.version, path=entry.path)
        )

    def __str__(self) -> str:
        return str(self.destination)


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadSession:
    id: str
    offset: int = 0
    received: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    upload_sessions: bool = False
    parallel_parts: bool = False
    ranged_reads: bool = True
    min_part_size: int = 0
    max_part_size: int | None = None
    digest_at_commit: bool = False
    checksum_algorithms: tuple[str, ...] = ALGORITHMS
    verifies_checksums: bool = False
    batch_read_max_size: int = 0
    batch_write_max_size: int = 0
