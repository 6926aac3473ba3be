"""Byte ranges: ``Range`` requests, ``Content-Range`` answers, range arithmetic and part plans.

One module for every side: the server answers ``Range: bytes=…`` with 206/416 and tracks the parts an
upload session received, the client resumes a download with ``Range`` and sends chunked uploads
(``Content-Range: bytes a-b/*``, the form OCI upload sessions use), and the transfer engine plans
what is left to send or fetch with the same arithmetic (merge, contiguous prefix, subtract, split).

Only single ranges are served: a multi-range request is answered with the whole representation
(RFC 9110 lets a server ignore Range), because no hc client asks for several.

Ranges here are half-open (``start`` inclusive, ``end`` exclusive) so lengths are ``end - start``;
the wire forms are inclusive and are converted at the edges.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from hc.errors import UsageError

__all__ = [
    "ByteRange",
    "Range",
    "RangeNotSatisfiable",
    "content_range",
    "contiguous_prefix",
    "normalize",
    "parse_content_range",
    "parse_range_header",
    "plan_parts",
    "split_fixed",
    "subtract",
    "unsatisfied_content_range",
]

#: A half-open byte range as a plain ``(start, end)`` pair: the form upload sessions report and store.
Range = tuple[int, int]

_RANGE_RE: Final = re.compile(r"^\s*bytes\s*=\s*(?P<first>\d*)\s*-\s*(?P<last>\d*)\s*$", re.IGNORECASE)
_CONTENT_RANGE_RE: Final = re.compile(
    r"^\s*bytes\s+(?:(?P<first>\d+)-(?P<last>\d+)|\*)\s*/\s*(?P<total>\d+|\*)\s*$", re.IGNORECASE
)


class RangeNotSatisfiable(UsageError):
    """The requested range lies wholly outside the representation (HTTP 416)."""

    http_status = 416
    code = "RANGE_NOT_SATISFIABLE"


@dataclass(frozen=True, slots=True, order=True)
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
        """The ``Range`` request header value asking for exactly this range (inclusive end)."""
        if self.length == 0:
            raise ValueError("an empty range has no Range header")
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


# ------------------------------------------------------------------------------- range arithmetic


def normalize(ranges: Iterable[Range]) -> list[ByteRange]:
    """Sort and merge overlapping or touching intervals; drop empty ones."""
    merged: list[ByteRange] = []
    for start, end in sorted((int(s), int(e)) for s, e in ranges if e > s):
        if merged and start <= merged[-1].end:
            if end > merged[-1].end:
                merged[-1] = ByteRange(merged[-1].start, end)
        else:
            merged.append(ByteRange(start, end))
    return merged


def contiguous_prefix(ranges: Iterable[Range]) -> int:
    """How many bytes from offset 0 are covered without a hole (0 if none)."""
    merged = normalize(ranges)
    return merged[0].end if merged and merged[0].start == 0 else 0


def subtract(whole: ByteRange, have: Iterable[Range]) -> list[ByteRange]:
    """The parts of ``whole`` not covered by ``have``, in order."""
    holes: list[ByteRange] = []
    cursor = whole.start
    for got in normalize(have):
        if got.end <= cursor:
            continue
        if got.start >= whole.end:
            break
        if got.start > cursor:
            holes.append(ByteRange(cursor, got.start))
        cursor = max(cursor, got.end)
    if cursor < whole.end:
        holes.append(ByteRange(cursor, whole.end))
    return holes


def split_fixed(end: int, part_size: int, *, start: int = 0) -> list[ByteRange]:
    """Cut ``[start, end)`` (by default a whole ``end``-byte file) into consecutive parts of
    ``part_size``, the last one shorter; an empty span has no part."""
    if part_size <= 0:
        raise ValueError("part size must be positive")
    return [ByteRange(offset, min(offset + part_size, end)) for offset in range(start, end, part_size)]


def plan_parts(size: int, part_size: int) -> list[ByteRange]:
    """Split ``size`` bytes into consecutive ranges of ``part_size`` (the last may be shorter).

    An empty file has one empty part so that it is still uploaded (and committed) once.
    """
    return split_fixed(size, part_size) or [ByteRange(0, 0)]
