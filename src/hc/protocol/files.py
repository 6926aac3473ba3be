"""The one shape of a stored file as a listing (or a HEAD) describes it, shared by every layer.

The Harness API client (``hc.api.files.GenericFile``), the WebDAV reader (``hc.api.webdav.DavFile``),
the engine (``hc.transfer.RemoteFile``) and the migration plan (``hc.migration.plan.SourceEntry``)
all describe a file the same way; they subclass ``FileRecord`` and add only what their source
knows besides (a listing time, an ETag, a download name). ``FileRef`` is the location alone (a
copy's destination).

What a function *accepts* stays structural: ``FileLocation`` and ``FileEntry`` are read-only
Protocols (re-exported by ``hc.transfer``), so the engine takes any object with these attributes
(``PlanItem``'s entries, the test fakes', a Remote's own types), not only these dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["FileEntry", "FileLocation", "FileRecord", "FileRef", "HasDigests"]


class FileLocation(Protocol):
    """Where a generic file lives: ``/pkg/{acct}/{reg}/files/{package}/{version}/{path}``."""

    @property
    def package(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def path(self) -> str: ...


class HasDigests(Protocol):
    """Anything with a size and optional hex digests: a listing entry, local Checksums
    (what ``hc.transfer.march`` compares)."""

    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str | None: ...
    @property
    def md5(self) -> str | None: ...


class FileEntry(FileLocation, HasDigests, Protocol):
    """A file as a listing (or HEAD) describes it. Digests are lower-case hex, ``None`` when unknown."""

    @property
    def sha1(self) -> str | None: ...
    @property
    def sha512(self) -> str | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class FileRef:
    """Where a file is: package, version and the ``/``-separated path inside the version."""

    package: str
    version: str
    path: str

    def __str__(self) -> str:
        return f"{self.package}/{self.version}/{self.path}"


@dataclass(frozen=True, slots=True, kw_only=True)
class FileRecord(FileRef):
    """Where a file is, its size, and the digests its source gave.

    Digests are lower-case hex, ``None`` when the source did not give them.
    """

    size: int
    sha256: str | None = None
    md5: str | None = None
    sha1: str | None = None
    sha512: str | None = None
