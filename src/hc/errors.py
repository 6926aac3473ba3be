"""One error tree for hc. Every error knows its exit code and how a retry loop should treat it.

```
HcError                       exit 1   (fatal unless a subclass says otherwise)
├── UsageError                exit 2   bad flags, malformed input (metadata strings, identifiers, paths)
├── ConfigError               exit 2   missing or invalid configuration (no token, malformed token, bad file)
├── AuthError                 exit 3   401 from a server, or a key the server refuses
│   └── PermissionDenied      exit 3   403: the key is valid but may not touch that resource
├── NotFound                  exit 1   404: unknown registry, package, version or file
├── Conflict                  exit 1   409: the resource already exists or is in use
├── RemoteError               exit 1   any other refusal from a server (4xx with the server's message)
├── TransientError            exit 1   worth retrying: connection reset, timeout, 429, 5xx except 501
│   └── RateLimited                    429 / 503 with Retry-After; carries `retry_after` seconds
├── IntegrityError            exit 1   bytes that do not match their size or digest (retryable: re-fetch)
├── UnsafePathError           exit 2   a path from a server, an archive or the user escapes its root
├── StorageError              exit 1   the embedded registry's store failed (disk, database)
└── Interrupted               exit 130 Ctrl-C or SIGTERM; the job can be resumed
```

Lower layers translate foreign exceptions (aiohttp, sqlite3, OSError) into this tree at their
boundary with ``raise ... from exc``; nothing above ``api/`` or ``server/`` catches them. The CLI
catches ``HcError`` in one place and prints ``error: <message>`` with the class's exit code.
"""

from __future__ import annotations

import enum

__all__ = [
    "AuthError",
    "ConfigError",
    "Conflict",
    "ExitCode",
    "HcError",
    "IntegrityError",
    "Interrupted",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "RemoteError",
    "RetryKind",
    "StorageError",
    "TransientError",
    "UnsafePathError",
    "UsageError",
]


class ExitCode(enum.IntEnum):
    """Process exit codes, documented in README.md."""

    OK = 0
    FAILED = 1  # the command ran but something (or some items) failed
    USAGE = 2  # bad flags, bad input, bad configuration
    AUTH = 3  # authentication or permission refused
    INTERRUPTED = 130  # SIGINT / SIGTERM; a resumable job stays resumable


class RetryKind(enum.Enum):
    """How a retry loop treats an error: give up, retry with backoff, or retry after a given delay."""

    FATAL = "fatal"
    RETRY = "retry"
    RETRY_AFTER = "retry-after"


class HcError(Exception):
    """Root of every error hc raises on purpose. ``str(err)`` is a complete one-line message."""

    exit_code: ExitCode = ExitCode.FAILED
    retry_kind: RetryKind = RetryKind.FATAL
    #: HTTP status this error maps to when the embedded server raises it.
    http_status: int = 500
    #: Error code string used in the Harness error envelope (``{"code": ..., "message": ...}``).
    code: str = "INTERNAL_ERROR"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: the HTTP status seen from (or to be sent by) a server, when there was one
        self.status = status

    def __str__(self) -> str:
        return self.message


class UsageError(HcError):
    """The user asked for something malformed: a flag value, a metadata string, an identifier."""

    exit_code = ExitCode.USAGE
    http_status = 400
    code = "INVALID_REQUEST"


class ConfigError(HcError):
    """Configuration is missing or invalid (no credentials, a malformed token, an unreadable file)."""

    exit_code = ExitCode.USAGE
    http_status = 400
    code = "INVALID_CONFIG"


class AuthError(HcError):
    """The server refused the credentials (HTTP 401)."""

    exit_code = ExitCode.AUTH
    http_status = 401
    code = "UNAUTHORIZED"


class PermissionDenied(AuthError):
    """The credentials are valid but do not grant access to this resource (HTTP 403)."""

    http_status = 403
    code = "FORBIDDEN"


class NotFound(HcError):
    """The registry, package, version or file does not exist (HTTP 404)."""

    http_status = 404
    code = "NOT_FOUND"


class Conflict(HcError):
    """The resource already exists, differs, or is in use (HTTP 409)."""

    http_status = 409
    code = "CONFLICT"


class RemoteError(HcError):
    """A server refused the request for a reason that retrying will not fix."""

    http_status = 400
    code = "BAD_REQUEST"


class TransientError(HcError):
    """A failure that may pass: connection reset, timeout, 429, or a 5xx other than 501."""

    retry_kind = RetryKind.RETRY
    http_status = 503
    code = "UNAVAILABLE"


class RateLimited(TransientError):
    """The server asked us to wait ``retry_after`` seconds (429 or 503 with Retry-After)."""

    retry_kind = RetryKind.RETRY_AFTER
    http_status = 429
    code = "TOO_MANY_REQUESTS"

    def __init__(self, message: str, *, retry_after: float, status: int | None = 429) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class IntegrityError(HcError):
    """Bytes did not match their declared size or digest. Retrying the transfer may fix it."""

    retry_kind = RetryKind.RETRY
    http_status = 400
    code = "CHECKSUM_MISMATCH"


class UnsafePathError(HcError):
    """A path would escape its root (absolute, ``..``, NUL, backslash tricks)."""

    exit_code = ExitCode.USAGE
    http_status = 400
    code = "INVALID_PATH"


class StorageError(HcError):
    """The embedded registry could not read or write its store."""

    http_status = 500
    code = "STORAGE_ERROR"


class Interrupted(HcError):
    """The user interrupted the command; a journaled job can be resumed by running it again."""

    exit_code = ExitCode.INTERRUPTED
