"""Resumable upload sessions: hc's extension of the generic-file API (OCI-distribution-like).

A plain ``PUT …/files/{path}`` must be sent again from byte 0 when it breaks. A registry that
advertises sessions lets a client open one, send the file in parts (in any order, several at a
time), ask what arrived, and commit by digest; a part acknowledged before a crash (of the client
or of the server) is never sent again.

Discovery: ``GET /gateway/har/api/v3/system/info`` → ``data.hc`` holds (``UploadCapabilities``)::

    {"uploadSessions": true, "parallelParts": true, "minPartSize": 1048576,
     "maxPartSize": 1073741824, "sessionTtlSeconds": 86400, "digestAtCommit": true, ...}

``digestAtCommit``: a ``POST`` may leave ``sha256`` empty and let the commit's ``digest`` alone
decide. A client can then open the session and send parts while it is still hashing the file, instead
of reading the whole file once before the first byte moves. A server without the key requires the
sha256 at ``POST`` (400 otherwise), so a client leaves it out only toward a server that says so.

A server without these keys (Harness itself) has no sessions: the client falls back to single PUTs.

Wire protocol (every request carries the same API key as the other ``/pkg`` routes: none → 401, a
key of another account → 403; bodies are ``{"status": "SUCCESS", "data": …}`` on success and the
usual ``{"code", "message"}`` error body otherwise):

``POST /pkg/{account}/{registry}/uploads``
    Body ``{"package", "version", "path", "size", "sha256", "overwrite"?}`` (``BeginUpload``); for a
    RAW registry ``package``/``version`` are ignored (its files live in ``default/default``).
    The registry must be GENERIC or RAW, the path valid as for ``PUT …/files/…``, ``size`` ≥ 0,
    ``sha256`` 64 hex characters, or empty (or absent) when the server advertises
    ``digestAtCommit``: not declared, the commit's ``digest`` decides (and no ``unchanged`` answer
    is possible, since the server cannot know the bytes yet).

    - **201**, ``Location: /pkg/{account}/{registry}/uploads/{id}``, data = the session state
      (``UploadState``: ``{"id", "size", "offset": 0, "received": [], "expiresAt"}``).
    - **200** with ``data.outcome == "unchanged"`` (and ``sha256``, ``size``, no ``id``) when the
      file already exists with these very bytes: nothing needs sending, the upload is done.

``PATCH /pkg/{account}/{registry}/uploads/{id}``
    Header ``Content-Range: bytes <first>-<last>/<size>`` (inclusive; ``/*`` is accepted for the
    total) and exactly ``last - first + 1`` body bytes, at most ``maxPartSize``.

    - **202** with the session state: ``received`` is the merged list of half-open ``[start, end)``
      ranges the server holds, ``offset`` the end of the contiguous prefix from byte 0.
    - **400** when the body is shorter or longer than the range, the range is malformed or goes
      past ``size``: nothing of that part is recorded. **404** for an unknown, committed, aborted
      or expired session. **413** for a part larger than ``maxPartSize``.

    Parts may arrive out of order and concurrently. Re-sending bytes already held is harmless: the
    server keeps the bytes it has and drops the duplicates (the first copy of a range wins, so a
    verified prefix can never change under the server's feet).

``GET /pkg/{account}/{registry}/uploads/{id}``
    **200** with the session state (what a client resumes from); **404** once committed, aborted
    or expired.

``PUT /pkg/{account}/{registry}/uploads/{id}?digest=sha256:<hex>[&overwrite=true]``
    Commit. Every byte of ``[0, size)`` must have been received (**400** otherwise; the session
    stays). The assembled bytes are hashed (sha256, md5, sha1, sha512) and the sha256 compared with
    ``digest`` and with the one declared at ``POST``, when one was: a mismatch answers **400**
    ``CHECKSUM_MISMATCH`` and discards the session. Otherwise the file is recorded exactly like a
    ``PUT …/files/{path}`` would: **201** for a new path, **200** when identical bytes were already
    there (``outcome: "unchanged"``) or replaced with ``overwrite``, **409** when different bytes
    are there and neither the ``POST`` nor the commit asked to overwrite. The body is the one of
    that ``PUT`` (``registry``, ``package``, ``version``, ``path``, ``size``, the four digests,
    ``outcome``). After a successful commit the session is gone.

``DELETE /pkg/{account}/{registry}/uploads/{id}``
    **204**; the session and its bytes are removed (**404** when there is none).

Sessions are durable (a server restart keeps them and what they received) and expire
``sessionTtlSeconds`` after their last activity. An empty file (``size`` 0) is committed straight
after ``POST``, with no ``PATCH``.

This module is pure: the JSON shapes and the Content-Range forms that both the server and the client
(``hc.api``) need, plus a ``(start, end)``-pair view of the range arithmetic of ``hc.protocol.ranges``
(sessions report, store and compare received ranges as plain pairs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from hc.errors import RemoteError, UsageError

from .ranges import (
    ByteRange,
    Range,
    content_range,
    contiguous_prefix,
    normalize,
    parse_content_range,
    subtract,
)

__all__ = [
    "DEFAULT_MAX_PART_SIZE",
    "DEFAULT_MIN_PART_SIZE",
    "DEFAULT_SESSION_TTL_SECONDS",
    "BeginUpload",
    "Range",
    "UploadCapabilities",
    "UploadState",
    "commit_query",
    "contiguous_offset",
    "merge_ranges",
    "missing_ranges",
    "parse_commit_digest",
    "parse_part_content_range",
    "part_content_range",
    "subtract_ranges",
]

DEFAULT_MIN_PART_SIZE: Final = 1 << 20
DEFAULT_MAX_PART_SIZE: Final = 1 << 30
DEFAULT_SESSION_TTL_SECONDS: Final = 24 * 3600

_SHA256_RE: Final = re.compile(r"^[0-9a-f]{64}$")

# Keys of the ``data.hc`` block of system/info.
_KEY_SESSIONS: Final = "uploadSessions"
_KEY_PARALLEL: Final = "parallelParts"
_KEY_MIN: Final = "minPartSize"
_KEY_MAX: Final = "maxPartSize"
_KEY_TTL: Final = "sessionTtlSeconds"
_KEY_DIGEST_AT_COMMIT: Final = "digestAtCommit"


# ------------------------------------------------------------------------------- range arithmetic


def merge_ranges(ranges: Iterable[Range]) -> tuple[Range, ...]:
    """Sort and merge half-open ranges; adjacent or overlapping ones become one, empty ones vanish."""
    return tuple((rng.start, rng.end) for rng in normalize(ranges))


#: End of the prefix ``[0, n)`` covered by the received ranges, 0 if none.
contiguous_offset = contiguous_prefix


def subtract_ranges(rng: Range, taken: Iterable[Range]) -> list[Range]:
    """The parts of ``rng`` not covered by any of ``taken``, in order."""
    start, end = rng
    if end <= start:
        return []
    return [(hole.start, hole.end) for hole in subtract(ByteRange(start, end), taken)]


def missing_ranges(size: int, received: Sequence[Range]) -> list[Range]:
    """What ``[0, size)`` still lacks."""
    return subtract_ranges((0, size), received) if size > 0 else []


# ---------------------------------------------------------------------------------- Content-Range


def part_content_range(start: int, end: int, total: int) -> str:
    """``Content-Range`` of a part holding ``[start, end)`` of a ``total``-byte file."""
    if not 0 <= start < end <= total:
        raise ValueError(f"invalid part [{start}, {end}) of {total} bytes")
    return content_range(ByteRange(start, end), total)


def parse_part_content_range(value: str | None, size: int) -> ByteRange:
    """The half-open range a part carries, checked against the session's ``size``.

    Raises UsageError (HTTP 400) when the header is missing, malformed, names another total, or
    reaches past the end of the file.
    """
    if not value:
        raise UsageError("a part needs a Content-Range header: bytes <first>-<last>/<size>")
    rng, total = parse_content_range(value)
    if rng is None:
        raise UsageError(f"Content-Range {value!r} names no bytes")
    if total is not None and total != size:
        raise UsageError(f"Content-Range {value!r} says the file has {total} bytes; the session has {size}")
    if rng.end > size:
        raise UsageError(f"Content-Range {value!r} reaches past the end of the {size}-byte file")
    return rng


# ------------------------------------------------------------------------------------ JSON shapes


def _int(data: Mapping[str, Any], key: str, error: type[Exception]) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise error(f"field {key!r} must be a non-negative integer")
    return value


def _ranges(value: Any, error: type[Exception]) -> tuple[Range, ...]:
    if not isinstance(value, list):
        raise error("field 'received' must be a list of [start, end] pairs")
    out = []
    for item in value:
        if (
            not isinstance(item, list | tuple)
            or len(item) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in item)
            or not 0 <= item[0] <= item[1]
        ):
            raise error("field 'received' must be a list of [start, end] pairs")
        out.append((int(item[0]), int(item[1])))
    return merge_ranges(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadState:
    """What the server holds of one session (satisfies ``hc.transfer.remote.SessionState``)."""

    id: str
    size: int
    received: tuple[Range, ...] = ()
    #: epoch milliseconds after which the session is gone unless used again
    expires_at: int | None = None

    @property
    def offset(self) -> int:
        return contiguous_offset(self.received)

    @property
    def complete(self) -> bool:
        return not missing_ranges(self.size, self.received)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "size": self.size,
            "offset": self.offset,
            "received": [[s, e] for s, e in self.received],
        }
        if self.expires_at is not None:
            body["expiresAt"] = self.expires_at
        return body

    @classmethod
    def from_json(cls, data: Any) -> UploadState:
        """Parse a server's answer; RemoteError when it is not a session state."""
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str) or not data["id"]:
            raise RemoteError("the server's upload session answer has no id")
        expires = data.get("expiresAt")
        return cls(
            id=data["id"],
            size=_int(data, "size", RemoteError),
            received=_ranges(data.get("received", []), RemoteError),
            expires_at=expires if isinstance(expires, int) and not isinstance(expires, bool) else None,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BeginUpload:
    """The body of ``POST …/uploads``."""

    package: str
    version: str
    path: str
    size: int
    #: "" when not declared (``digestAtCommit``): the commit's digest decides
    sha256: str
    #: None: not said (the commit's ``overwrite`` decides)
    overwrite: bool | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "package": self.package,
            "version": self.version,
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
        }
        if self.overwrite is not None:
            body["overwrite"] = self.overwrite
        return body

    @classmethod
    def from_json(cls, data: Any, *, digest_at_commit: bool = False) -> BeginUpload:
        """Parse and check a request body; UsageError (HTTP 400) on anything malformed.
        ``digest_at_commit``: the server accepts an empty (undeclared) sha256."""
        if not isinstance(data, Mapping):
            raise UsageError("the request body must be a JSON object")
        strings = {}
        for key in ("package", "version", "path", "sha256"):
            value = data.get(key, "")
            if not isinstance(value, str):
                raise UsageError(f"field {key!r} must be a string")
            strings[key] = value
        if not strings["path"]:
            raise UsageError("missing required field 'path'")
        sha256 = strings["sha256"].strip().lower()
        if not _SHA256_RE.match(sha256) and not (digest_at_commit and not sha256):
            raise UsageError("field 'sha256' must be 64 hex characters")
        overwrite = data.get("overwrite")
        if overwrite is not None and not isinstance(overwrite, bool):
            raise UsageError("field 'overwrite' must be true or false")
        return cls(
            package=strings["package"],
            version=strings["version"],
            path=strings["path"],
            size=_int(data, "size", UsageError),
            sha256=sha256,
            overwrite=overwrite,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadCapabilities:
    """The session keys of system/info's ``data.hc`` block."""

    upload_sessions: bool = False
    parallel_parts: bool = False
    min_part_size: int = 0
    max_part_size: int | None = None
    session_ttl_seconds: int | None = None
    #: a session may be opened without its sha256; the commit's digest decides
    digest_at_commit: bool = False

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {_KEY_SESSIONS: self.upload_sessions, _KEY_PARALLEL: self.parallel_parts}
        body[_KEY_MIN] = self.min_part_size
        if self.max_part_size is not None:
            body[_KEY_MAX] = self.max_part_size
        if self.session_ttl_seconds is not None:
            body[_KEY_TTL] = self.session_ttl_seconds
        if self.digest_at_commit:
            body[_KEY_DIGEST_AT_COMMIT] = True
        return body

    @classmethod
    def from_json(cls, block: Any) -> UploadCapabilities:
        """Read the ``hc`` block leniently: anything missing or odd means "not offered"."""
        if not isinstance(block, Mapping) or block.get(_KEY_SESSIONS) is not True:
            return cls()

        def positive(key: str) -> int | None:
            value = block.get(key)
            ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
            return value if ok else None

        return cls(
            upload_sessions=True,
            parallel_parts=block.get(_KEY_PARALLEL) is True,
            min_part_size=positive(_KEY_MIN) or 0,
            max_part_size=positive(_KEY_MAX),
            session_ttl_seconds=positive(_KEY_TTL),
            digest_at_commit=block.get(_KEY_DIGEST_AT_COMMIT) is True,
        )


def commit_query(sha256: str, *, overwrite: bool) -> dict[str, str]:
    """Query parameters of the commit ``PUT``."""
    query = {"digest": f"sha256:{sha256}"}
    if overwrite:
        query["overwrite"] = "true"
    return query


def parse_commit_digest(value: str | None) -> str:
    """The sha256 hex of a commit's ``digest`` parameter; UsageError when missing or not sha256."""
    if not value:
        raise UsageError("a commit needs ?digest=sha256:<hex>")
    algorithm, _, hex_value = value.strip().lower().partition(":")
    if algorithm != "sha256" or not _SHA256_RE.match(hex_value):
        raise UsageError(f"malformed digest {value!r}: expected sha256:<64 hex characters>")
    return hex_value
