"""Batch writes: hc's extension for uploading many small files in one request.

The mirror of batch reads (``hc.protocol.batchread``): a push of thousands of 4 KiB files spends
its CPU, client and registry alike, on the request per file. A registry that advertises batch
writes stores up to ``batchWriteMaxFiles`` files (``batchWriteMaxBytes`` of body in all) from one
``POST``, each exactly as a ``PUT …/files/{path}`` of it would be: verified against its sha256,
the same re-upload rule (201 new, 200 identical, 409 different unless overwriting), durable
before it is answered. Harness has no such endpoint: a client keeps one PUT per file there.

Discovery: ``GET /gateway/har/api/v3/system/info`` → ``data.hc`` holds
``{"batchWriteMaxFiles": 256, "batchWriteMaxBytes": 8388608, "batchWriteMaxFileSize": 1048576}``;
all present and positive, or no batch writes. A file larger than ``batchWriteMaxFileSize`` gets
its own **413** result (send it by PUT).

``POST /pkg/{account}/{registry}/batch-write``
    Same API key and registry rules as ``PUT …/files/{path}``; ``?overwrite=true`` or
    ``X-Hc-Overwrite: true`` applies to every file. ``X-Checksum-Sha256`` (of the whole body),
    when sent and not matching, answers **400** ``CHECKSUM_MISMATCH`` (damaged on the way: send it
    again). ``Content-Type: application/vnd.hc.batch-write``; the body is one record per file, a
    header line (UTF-8 JSON, ``\\n``-terminated) and exactly ``size`` bytes::

        {"file": "<package>/<version>/<path>", "size": 4096, "sha256": "<hex>"}\\n<4096 bytes>

    (``<filepath>`` as in the files endpoint's path, unescaped; the path alone in a RAW registry).
    A malformed record, more than ``batchWriteMaxFiles`` files or a body larger than
    ``batchWriteMaxBytes`` answers **400** / **413** for the whole request, storing nothing.

    **200** ``{"status": "SUCCESS", "data": {"results": [...]}}``: one result per file, in
    request order: ``{"file", "status"}`` plus ``sha256`` for 200/201, or ``code`` and ``message``
    (the error body a PUT of that file would have had: 400 ``CHECKSUM_MISMATCH``, 409, ...).
    Each file succeeds or fails on its own.

This module is pure: limits, record headers, results, for both sides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from hc.errors import TransientError, UsageError

from .batchread import positive_limits

__all__ = [
    "BATCH_WRITE_CONTENT_TYPE",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FILES",
    "DEFAULT_MAX_FILE_SIZE",
    "BatchWriteLimits",
    "WriteRecord",
    "WriteResult",
]

BATCH_WRITE_CONTENT_TYPE: Final = "application/vnd.hc.batch-write"
DEFAULT_MAX_FILES: Final = 256
DEFAULT_MAX_BYTES: Final = 8 << 20
DEFAULT_MAX_FILE_SIZE: Final = 1 << 20

_KEY_MAX_FILES: Final = "batchWriteMaxFiles"
_KEY_MAX_BYTES: Final = "batchWriteMaxBytes"
_KEY_MAX_FILE_SIZE: Final = "batchWriteMaxFileSize"


@dataclass(frozen=True, slots=True)
class BatchWriteLimits:
    """What a server's ``data.hc`` block promises; ``max_files`` 0 means no batch writes."""

    max_files: int = 0
    max_bytes: int = 0
    max_file_size: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            _KEY_MAX_FILES: self.max_files,
            _KEY_MAX_BYTES: self.max_bytes,
            _KEY_MAX_FILE_SIZE: self.max_file_size,
        }

    @classmethod
    def from_json(cls, block: Mapping[str, Any] | None) -> BatchWriteLimits:
        limits = positive_limits(block, _KEY_MAX_FILES, _KEY_MAX_BYTES, _KEY_MAX_FILE_SIZE)
        if limits is None:
            return cls()
        files, size, file_size = limits
        return cls(max_files=files, max_bytes=size, max_file_size=file_size)


@dataclass(frozen=True, slots=True)
class WriteRecord:
    """One file's header line in a batch write."""

    file: str
    size: int
    sha256: str

    def encode(self) -> bytes:
        fields = {"file": self.file, "size": self.size, "sha256": self.sha256}
        return json.dumps(fields, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> WriteRecord:
        """UsageError (400 for the whole request) for anything but a well-formed header line."""
        try:
            fields = json.loads(line)
        except ValueError:
            fields = None
        if not isinstance(fields, Mapping):
            raise UsageError("batch write: a record header is not a JSON object")
        file, size, sha256 = fields.get("file"), fields.get("size"), fields.get("sha256")
        if not isinstance(file, str) or type(size) is not int or size < 0 or not isinstance(sha256, str):
            raise UsageError("batch write: a record header needs a file, a size ≥ 0 and a sha256")
        return cls(file, size, sha256)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """One file's outcome: ``status`` as a PUT of it would have answered."""

    file: str
    status: int
    sha256: str = ""
    code: str = ""
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        if 200 <= self.status < 300:
            return {"file": self.file, "status": self.status, "sha256": self.sha256}
        return {"file": self.file, "status": self.status, "code": self.code, "message": self.message}

    @classmethod
    def from_json(cls, value: Any) -> WriteResult:
        """TransientError for a result that cannot be read (the answer was damaged)."""
        if not isinstance(value, Mapping):
            raise TransientError("batch write: a result is not a JSON object")
        file, status = value.get("file"), value.get("status")
        if not isinstance(file, str) or type(status) is not int:
            raise TransientError("batch write: a result lacks its file or status")
        text = {k: value.get(k) for k in ("sha256", "code", "message")}
        return cls(file, status, **{k: v if isinstance(v, str) else "" for k, v in text.items()})
