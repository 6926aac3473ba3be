"""Check every path that came from a server, a listing, a header or a user before it touches the disk.

Two steps: ``sanitize_relpath`` is a pure check of the *name* (relative, no ``..``, no NUL or
control characters, no drive letters or UNC prefixes, no ``%2e%2e`` that a later layer might
decode), and ``safe_join`` places it under a root and resolves it, so a symlink planted inside the
destination cannot carry the write outside.

Backslashes are treated as separators, as Windows would: ``..\\..\\x`` is then caught as the
traversal it is, and a listing written on Windows (``dir\\file``) lands in a directory. A name is
not percent-decoded (``100%25.txt`` stays as it is); each segment is only *checked* in its decoded
forms, because some layer on the way might decode it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final
from urllib.parse import unquote

from hc.errors import UnsafePathError

__all__ = ["safe_join", "sanitize_relpath"]

_MAX_PATH_CHARS: Final = 4096
_MAX_SEGMENT_BYTES: Final = 255
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE_RE: Final = re.compile(r"^[A-Za-z]:")
_DECODE_ROUNDS: Final = 4  # %252e%252e → %2e%2e → ..; more rounds than any real stack applies


def _decoded_forms(segment: str) -> list[str]:
    forms = [segment]
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote(forms[-1], errors="replace")
        if decoded == forms[-1]:
            break
        forms.append(decoded)
    return forms


def _check_segment(segment: str, original: str, *, first: bool) -> None:
    for form in _decoded_forms(segment):
        if form in (".", "..") or "/" in form or "\\" in form or "\x00" in form:
            raise UnsafePathError(f"unsafe path {original!r}: segment {segment!r} escapes its directory")
        if first and _DRIVE_RE.match(form):
            raise UnsafePathError(f"unsafe path {original!r}: drive letters are not allowed")
    if len(segment.encode("utf-8", "surrogatepass")) > _MAX_SEGMENT_BYTES:
        raise UnsafePathError(f"unsafe path {original!r}: a name is longer than {_MAX_SEGMENT_BYTES} bytes")


def sanitize_relpath(name: str) -> str:
    """Return ``name`` as a clean relative POSIX path, or raise UnsafePathError.

    Empty and ``.`` segments are dropped (``a//./b`` → ``a/b``); anything that could leave the
    root, or that a filesystem would interpret specially, is refused.
    """
    if not isinstance(name, str) or not name:
        raise UnsafePathError("unsafe path: empty name")
    if len(name) > _MAX_PATH_CHARS:
        raise UnsafePathError(f"unsafe path: longer than {_MAX_PATH_CHARS} characters")
    if _CONTROL_RE.search(name):
        raise UnsafePathError(f"unsafe path {name!r}: contains a NUL or control character")
    text = name.replace("\\", "/")
    if text.startswith("/"):
        raise UnsafePathError(f"unsafe path {name!r}: absolute paths are not allowed")
    segments = [segment for segment in text.split("/") if segment not in ("", ".")]
    if not segments:
        raise UnsafePathError(f"unsafe path {name!r}: names no file")
    for index, segment in enumerate(segments):
        _check_segment(segment, name, first=index == 0)
    return "/".join(segments)


def safe_join(root: Path, name: str) -> Path:
    """``root / sanitize_relpath(name)``, after checking that it still resolves inside ``root``
    (following any symlinks that already exist under it)."""
    base = root.resolve()
    relpath = sanitize_relpath(name)
    target = base.joinpath(*relpath.split("/"))
    resolved = target.resolve()
    if resolved != base and not resolved.is_relative_to(base):
        raise UnsafePathError(f"unsafe path {name!r}: resolves outside {str(base)!r}")
    if resolved == base:
        raise UnsafePathError(f"unsafe path {name!r}: names the destination directory itself")
    return target
