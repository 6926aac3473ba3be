"""Names the registry accepts: scopes, registry identifiers, package and version names, file paths.

Both sides check them: the client fails fast with a one-line UsageError before sending anything, and
the server refuses the same input with a 400, so a name that works against the embedded registry
also works against Harness.

- Registry identifiers follow Harness's documented rule ("must start with a letter and can include
  lowercase alphanumerics, ``_``, ``.`` and ``-``"), up to 128 characters. They are unique per
  account, whatever the org/project, because the package URL ``/pkg/{account}/{registry}`` names no
  org or project.
- Account, org and project identifiers are Harness entity identifiers (letters, digits, ``_``, and
  ``-`` as in real account ids). An account never contains ``.`` because tokens
  ``pat.<account>.<keyid>.<secret>`` carry it between dots.
- Package and version names are free-form (npm scopes, Maven coordinates, ``1.0.0+build``) but must be
  safe as one path segment: no ``/`` in a version, no control characters, not ``.``/``..``.
- File paths are relative, ``/``-separated, and can never escape their root: every check an archive
  extractor would do (absolute, ``..``, NUL, backslash, drive letters, empty segments).
"""

from __future__ import annotations

import re
from typing import Final

from hc.errors import UnsafePathError, UsageError

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_PATH_LENGTH",
    "is_utf8_text",
    "is_valid_registry_identifier",
    "split_space_ref",
    "validate_package_name",
    "validate_registry_identifier",
    "validate_relative_path",
    "validate_scope_identifier",
    "validate_version_name",
]

MAX_NAME_LENGTH: Final = 255
MAX_PATH_LENGTH: Final = 4096

_REGISTRY_RE: Final = re.compile(r"^[a-z][a-z0-9_.-]{0,127}$")
_SCOPE_RE: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$")
# Control characters (C0, DEL, C1) never belong in a name or path.
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DRIVE_RE: Final = re.compile(r"^[A-Za-z]:")


def is_utf8_text(text: str) -> bool:
    """Whether ``text`` can travel as UTF-8 (JSON, URLs, SQLite text). Bytes that are not UTF-8
    (a file name, an argument) reach Python as lone surrogates (PEP 383), and JSON may escape one
    (``"\\udcff"``): such a string fails deep in an HTTP client or a database instead."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_valid_registry_identifier(identifier: str) -> bool:
    return _REGISTRY_RE.fullmatch(identifier) is not None


def validate_registry_identifier(identifier: str) -> str:
    """Return ``identifier`` if it is a valid registry identifier, else raise UsageError."""
    if not is_valid_registry_identifier(identifier):
        raise UsageError(
            f"invalid registry identifier {identifier!r}: it must start with a lowercase letter and "
            "contain only lowercase letters, digits, '_', '.' and '-' (at most 128 characters)"
        )
    return identifier


def validate_scope_identifier(value: str, *, kind: str = "account") -> str:
    """Validate an account, org or project identifier."""
    if _SCOPE_RE.fullmatch(value) is None:
        raise UsageError(
            f"invalid {kind} identifier {value!r}: use letters, digits, '_' and '-' (at most 128 characters)"
        )
    return value


def split_space_ref(ref: str) -> tuple[str, str | None, str | None]:
    """Split ``account[/org[/project]]`` into its parts (each validated). Empty parts are ignored."""
    parts = [p for p in ref.strip("/").split("/") if p]
    if not parts or len(parts) > 3:
        raise UsageError(f"invalid space reference {ref!r}: expected account[/org[/project]]")
    account = validate_scope_identifier(parts[0], kind="account")
    org = validate_scope_identifier(parts[1], kind="org") if len(parts) > 1 else None
    project = validate_scope_identifier(parts[2], kind="project") if len(parts) > 2 else None
    return account, org, project


def _check_name(value: str, *, kind: str, allow_slash: bool) -> str:
    if not value or len(value) > MAX_NAME_LENGTH:
        raise UsageError(f"invalid {kind} name {value!r}: it must be 1 to {MAX_NAME_LENGTH} characters")
    if _CONTROL_RE.search(value) or "\\" in value:
        raise UsageError(f"invalid {kind} name {value!r}: control characters and '\\' are not allowed")
    segments = value.split("/") if allow_slash else [value]
    if not allow_slash and "/" in value:
        raise UsageError(f"invalid {kind} name {value!r}: '/' is not allowed")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise UsageError(f"invalid {kind} name {value!r}: empty, '.' or '..' segments are not allowed")
        if segment != segment.strip():
            # "  " or "1.0 ": a quoting slip, never a name anyone means (and one nobody can type back)
            raise UsageError(f"invalid {kind} name {value!r}: blank, or starts or ends with a space")
    return value


def validate_package_name(name: str) -> str:
    """A package name: one or more safe segments (npm ``@scope/name`` keeps its ``/``)."""
    return _check_name(name, kind="package", allow_slash=True)


def validate_version_name(version: str) -> str:
    """A version name: one safe path segment."""
    return _check_name(version, kind="version", allow_slash=False)


def validate_relative_path(path: str) -> str:
    """Return ``path`` if it is a safe relative ``/``-separated path, else raise UnsafePathError.

    Refuses absolute paths, ``..`` and ``.`` segments, empty segments (``a//b``, trailing ``/``),
    backslashes, NUL and other control characters, and Windows drive prefixes.
    """
    if not path or len(path) > MAX_PATH_LENGTH:
        raise UnsafePathError(f"unsafe path {path!r}: it must be 1 to {MAX_PATH_LENGTH} characters")
    if path.startswith("/") or _DRIVE_RE.match(path):
        raise UnsafePathError(f"unsafe path {path!r}: absolute paths are not allowed")
    if "\\" in path or _CONTROL_RE.search(path):
        raise UnsafePathError(f"unsafe path {path!r}: backslashes and control characters are not allowed")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise UnsafePathError(f"unsafe path {path!r}: empty, '.' or '..' segments are not allowed")
    return path
