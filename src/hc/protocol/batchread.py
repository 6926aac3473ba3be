"""Batch reads: hc's extension for downloading many small files in one request.

A pull of thousands of 4 KiB files spends most of its time (client and server CPU alike) on the
request per file, not on the bytes. A registry that advertises batch reads answers one ``POST``
naming up to ``batchReadMaxFiles`` files with all their bodies, one after the other. Harness has no
such endpoint: against it (or an hc registry without the key) a client keeps one GET per file.

Discovery: ``GET /gateway/har/api/v3/system/info`` → ``data.hc`` holds
``{"batchReadMaxFiles": 256, "batchReadMaxFileSize": 1048576, ...}``; both keys present and
positive, or no batch reads.

``POST /pkg/{account}/{registry}/batch-read``
    Same API key and registry rules as ``GET …/files/{path}``. Body ``{"files": [<filepath>, …]}``:
    each ``<filepath>`` exactly what follows ``/files/`` in that GET, unescaped
    (``<package>/<version>/<path>`` in a GENERIC registry, the path alone in a RAW one), at most
    ``batchReadMaxFiles`` of them. A malformed body or too many files answers **400** for the whole
    request; ``X-Checksum-Sha256`` (of the body), when sent and not matching, answers **400**
    ``CHECKSUM_MISMATCH`` (the request was damaged on the way: ask again).

    **200**, ``Content-Type: application/vnd.hc.batch-read``: one record per requested file, in
    request order. A record is a header line (UTF-8 JSON, ``\\n``-terminated) followed, for
    ``status`` 200 only, by exactly ``size`` bytes::

        {"file": <filepath>, "status": 200, "size": 4096, "sha256": "<hex>"}\\n<4096 bytes>
        {"file": <filepath>, "status": 404, "message": "…"}\\n
        {"file": <filepath>, "status": 413, "message": "…"}\\n  (larger than batchReadMaxFileSize)

    Each header echoes the file as the server read it: a record for another file than asked means
    the exchange was damaged, as does a malformed header; both fail (transiently) every file not
    yet received. A record's own failure (400 for a bad path, 404, 413) is that file's alone.

This module is pure: the capability keys, the request body and the record headers, for both sides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from hc.errors import TransientError, UsageError

__all__ = [
    "BATCH_READ_CONTENT_TYPE",
    "DEFAULT_MAX_FILES",
    "DEFAULT_MAX_FILE_SIZE",
    "BatchReadLimits",
    "RecordHeader",
    "encode_request",
    "parse_request",
    "positive_limits",
]

BATCH_READ_CONTENT_TYPE: Final = "application/vnd.hc.batch-read"
DEFAULT_MAX_FILES: Final = 256
DEFAULT_MAX_FILE_SIZE: Final = 1 << 20
#: A header line is a path (≤ a few KiB) and a few numbers: anything longer is a broken stream.
MAX_HEADER_LINE: Final = 64 * 1024

_KEY_MAX_FILES: Final = "batchReadMaxFiles"
_KEY_MAX_FILE_SIZE: Final = "batchReadMaxFileSize"


@dataclass(frozen=True, slots=True)
class BatchReadLimits:
    """What a server's ``data.hc`` block promises; ``max_files`` 0 means no batch reads."""

    max_files: int = 0
    max_file_size: int = 0

    def to_json(self) -> dict[str, int]:
        return {_KEY_MAX_FILES: self.max_files, _KEY_MAX_FILE_SIZE: self.max_file_size}

    @classmethod
    def from_json(cls, block: Mapping[str, Any] | None) -> BatchReadLimits:
        limits = positive_limits(block, _KEY_MAX_FILES, _KEY_MAX_FILE_SIZE)
        return cls() if limits is None else cls(max_files=limits[0], max_file_size=limits[1])


def positive_limits(block: Mapping[str, Any] | None, *keys: str) -> list[int] | None:
    """The values of ``keys`` in a ``data.hc`` block, or None unless every one is a positive int
    (a server that promises half a feature does not have it)."""
    if not isinstance(block, Mapping):
        return None
    values = [block.get(key) for key in keys]
    numbers = [v for v in values if type(v) is int and v > 0]
    return numbers if len(numbers) == len(keys) else None


def encode_request(filepaths: Sequence[str]) -> bytes:
    return json.dumps({"files": list(filepaths)}, separators=(",", ":")).encode()


def parse_request(body: Any, *, max_files: int) -> list[str]:
    """The requested file paths; UsageError (400) when the body is not ``{"files": [str, …]}`` with
    between 1 and ``max_files`` entries."""
    files = body.get("files") if isinstance(body, Mapping) else None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise UsageError('a batch read needs a JSON body {"files": ["<package>/<version>/<path>", ...]}')
    if not files:
        raise UsageError("a batch read needs at least one file")
    if len(files) > max_files:
        raise UsageError(f"a batch read takes at most {max_files} files, not {len(files)}")
    return files


@dataclass(frozen=True, slots=True)
class RecordHeader:
    """One record's header line: the file as requested, its status, and for 200 its size and sha256."""

    file: str
    status: int
    size: int = 0
    sha256: str = ""
    message: str = ""

    def encode(self) -> bytes:
        if self.status == 200:
            fields: dict[str, Any] = {
                "file": self.file,
                "status": 200,
                "size": self.size,
                "sha256": self.sha256,
            }
        else:
            fields = {"file": self.file, "status": self.status, "message": self.message}
        return json.dumps(fields, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> RecordHeader:
        """TransientError for anything but a well-formed header line: the stream cannot be trusted
        (damaged on the way, most likely), and asking again may well succeed."""
        try:
            fields = json.loads(line)
        except ValueError:
            fields = None
        if not isinstance(fields, Mapping):
            raise TransientError("batch read: a record header is not a JSON object")
        file, status = fields.get("file"), fields.get("status")
        if not isinstance(file, str) or type(status) is not int:
            raise TransientError("batch read: a record header lacks its file or status")
        if status != 200:
            message = fields.get("message")
            return cls(file, status, message=message if isinstance(message, str) else "")
        size, sha256 = fields.get("size"), fields.get("sha256")
        if type(size) is not int or size < 0 or not isinstance(sha256, str):
            raise TransientError(f"batch read: the record of {file!r} has no valid size or sha256")
        return cls(file, 200, size=size, sha256=sha256)
