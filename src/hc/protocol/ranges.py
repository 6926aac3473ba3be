"""Byte ranges: ``Range`` requests, ``Content-Range`` answers, and the part plans built on them.

One module for both sides: the server answers ``Range: bytes=…`` with 206/416, the client resumes a
download with ``Range`` and later plans chunked uploads (``Content-Range: bytes a-b/*``, the form OCI
upload sessions use). Only single ranges are served: a multi-range request is answered with the
whole representation (RFC 9110 lets a server ignore Range), because no hc client asks for several.

Ranges here are half-open (``start`` inclusive, ``end`` exclusive) so lengths are ``end - start``;
the wire forms are inclusive and are converted at the edges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from hc.errors import UsageError

__all__ = [
    "ByteRange",
    "RangeNotSatisfiable",
    "content_range",
    "parse_content_range",
    "parse_range_header",
    "plan_parts",
    "unsatisfied_content_range",
]

_RANGE_RE: Final = re.compile(r"^\s*bytes\s*=\s*(?P<first>\d*)\s*-\s*(?P<last>\d*)\s*$", re.IGNORECASE)
_CONTENT_RANGE_RE: Final = re.compile(
    r"^\s*bytes\s+(?:(?P<first>\d+)-(?P<last>\d+)|\*)\s*/\s*(?P<total>\d+|\*)\s*$", re.IGNORECASE
)


class RangeNotSatisfiable(UsageError):
    """The requested range lies wholly outside the representation (HTTP 416)."""

    http_status = 416
    code = "RANGE_NOT_SATISFIABLE"


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Half-open byte range ``[start, end)``."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"invalid byte range [{self.start}, {self.end})")

    @property
    def length(self) -> int:
        return self.end - self.start

    def header(self) -> str:
        """The ``Range`` request header value asking for exactly this range."""
        return f"bytes={self.start}-{self.end - 1}"


def parse_range_header(value: str, size: int) -> ByteRange | None:
    """Resolve a ``Range`` header against a representation of ``size`` bytes.

    Returns None when the header should be ignored (not a single ``bytes`` range: the caller sends
    the whole body with 200), the resolved range otherwise. Raises RangeNotSatisfiable when a
    well-formed range selects no byte (first byte beyond the end, or a zero-length suffix).
    """
    match = _RANGE_RE.match(value)
    if match is None:
        return None
    first, last = match["first"], match["last"]
    if first == "" and last == "":
        return None
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(f"range {value!r} not satisfiable for {size} bytes")
        return ByteRange(max(0, size - suffix), size)
    start = int(first)
    if last != "" and int(last) < start:
        return None  # syntactically invalid: RFC 9110 says ignore the header
    if start >= size:
        raise RangeNotSatisfiable(f"range {value!r} not satisfiable for {size} bytes")
    end = size if last == "" else min(int(last) + 1, size)
    return ByteRange(start, end)


def content_range(rng: ByteRange, total: int | None) -> str:
    """``Content-Range`` for a 206 answer or a chunk upload (``total=None`` gives ``/*``)."""
    if rng.length == 0:
        raise ValueError("an empty range has no Content-Range form")
    return f"bytes {rng.start}-{rng.end - 1}/{'*' if total is None else total}"


def unsatisfied_content_range(total: int) -> str:
    """``Content-Range`` for a 416 answer."""
    return f"bytes */{total}"


def parse_content_range(value: str) -> tuple[ByteRange | None, int | None]:
    """Parse ``bytes a-b/total``, ``bytes a-b/*`` or ``bytes */total`` into (range, total)."""
    match = _CONTENT_RANGE_RE.match(value)
    if match is None:
        raise UsageError(f"malformed Content-Range {value!r}")
    total = None if match["total"] == "*" else int(match["total"])
    if match["first"] is None:
        return None, total
    first, last = int(match["first"]), int(match["last"])
    if last < first or (total is not None and last >= total):
        raise UsageError(f"malformed Content-Range {value!r}")
    return ByteRange(first, last + 1), total


def plan_parts(size: int, part_size: int) -> list[ByteRange]:
    """Split ``size`` bytes into consecutive ranges of ``part_size`` (the last may be shorter).

    An empty file has one empty part so that it is still uploaded (and committed) once.
    """
    if part_size <= 0:
        raise ValueError("part_size must be positive")
    if size == 0:
        return [ByteRange(0, 0)]
    return [ByteRange(start, min(start + part_size, size)) for start in range(0, size, part_size)]
