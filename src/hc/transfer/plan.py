"""Pure plan arithmetic: files → byte ranges, resume plans, Range / Content-Range strings.

Nothing here awaits or touches a file; the manager computes a plan with these functions and then
carries it out. All ranges are half-open ``[start, end)`` internally; HTTP's inclusive
``bytes=a-b`` appears only in the formatting and parsing helpers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ByteRange",
    "ContentRange",
    "clamp_part_size",
    "contiguous_prefix",
    "format_content_range",
    "normalize",
    "parse_content_range",
    "plan_download",
    "remaining_download",
    "remaining_upload",
    "split_even",
    "split_fixed",
    "subtract",
]


@dataclass(frozen=True, slots=True, order=True)
class ByteRange:
    """The half-open byte interval ``[start, end)`` of a file."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"invalid byte range [{self.start}, {self.end})")

    @property
    def length(self) -> int:
        return self.end - self.start

    def header(self) -> str:
        """The ``Range`` request header value (inclusive end, as HTTP wants it)."""
        if self.length == 0:
            raise ValueError("an empty range has no Range header")
        return f"bytes={self.start}-{self.end - 1}"

    def advanced(self, done: int) -> ByteRange:
        """The part of this range still to do after ``done`` bytes from its start."""
        return ByteRange(min(self.start + max(done, 0), self.end), self.end)


def split_fixed(size: int, part_size: int) -> list[ByteRange]:
    """Cut ``[0, size)`` into consecutive parts of ``part_size`` (the last one shorter)."""
    if part_size <= 0:
        raise ValueError("part size must be positive")
    return [ByteRange(start, min(start + part_size, size)) for start in range(0, size, part_size)]


def split_even(size: int, count: int, *, align: int = 1, min_length: int = 1) -> list[ByteRange]:
    """Cut ``[0, size)`` into at most ``count`` nearly equal ranges whose inner boundaries are
    multiples of ``align`` and whose length is at least ``min_length`` (except a tiny file's)."""
    if count <= 0 or align <= 0 or min_length <= 0:
        raise ValueError("count, align and min_length must be positive")
    if size == 0:
        return []
    count = max(1, min(count, size // min_length))
    step = -(-size // count)  # ceil
    step = -(-step // align) * align  # round up to the alignment
    return [ByteRange(start, min(start + step, size)) for start in range(0, size, step)]


def plan_download(
    size: int, *, split: int, split_threshold: int, align: int = 1, min_length: int = 1
) -> list[ByteRange]:
    """The ranges to fetch in parallel: one when the file is below ``split_threshold`` (or split is 1),
    else up to ``split``. A zero-byte file needs no request at all."""
    if size <= 0:
        return []
    if split <= 1 or size < split_threshold:
        return [ByteRange(0, size)]
    return split_even(size, split, align=align, min_length=min_length)


def clamp_part_size(
    size: int, part_size: int, *, min_part: int = 0, max_part: int | None = None, max_parts: int | None = None
) -> int:
    """The upload part size to use: the configured one, raised so ``size`` fits in ``max_parts``,
    and kept within the server's ``[min_part, max_part]``."""
    chosen = max(part_size, min_part, 1)
    if max_parts is not None and max_parts > 0:
        chosen = max(chosen, -(-size // max_parts))
    if max_part is not None and max_part > 0:
        chosen = min(chosen, max_part)
    return chosen


def normalize(ranges: Iterable[tuple[int, int]]) -> list[ByteRange]:
    """Sort and merge overlapping or touching intervals; drop empty ones."""
    merged: list[ByteRange] = []
    for start, end in sorted((s, e) for s, e in ranges if e > s):
        if merged and start <= merged[-1].end:
            if end > merged[-1].end:
                merged[-1] = ByteRange(merged[-1].start, end)
        else:
            merged.append(ByteRange(start, end))
    return merged


def contiguous_prefix(ranges: Iterable[tuple[int, int]]) -> int:
    """How many bytes from offset 0 are covered without a hole."""
    merged = normalize(ranges)
    return merged[0].end if merged and merged[0].start == 0 else 0


def subtract(whole: ByteRange, have: Iterable[tuple[int, int]]) -> list[ByteRange]:
    """The parts of ``whole`` not covered by ``have``."""
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


def remaining_upload(size: int, part_size: int, received: Iterable[tuple[int, int]]) -> list[ByteRange]:
    """The parts still to send for a resumed upload session.

    The server's view (``received``) is the truth: the journal only remembers *which* session to
    resume, and a part the journal thinks it sent but the server lacks is sent again. Holes are cut
    into pieces of at most ``part_size``; for a sequential (OCI) server ``received`` is
    ``[(0, offset)]`` and the first piece starts exactly at its offset.
    """
    parts: list[ByteRange] = []
    for hole in subtract(ByteRange(0, size), received):
        parts.extend(
            ByteRange(start, min(start + part_size, hole.end))
            for start in range(hole.start, hole.end, part_size)
        )
    return parts


def remaining_download(
    ranges: Sequence[ByteRange], progress: Mapping[int, int]
) -> list[tuple[int, ByteRange]]:
    """``(index, still-to-fetch)`` for every range of a download plan, given the verified bytes
    written from each range's start (``progress[index]``, from the journal)."""
    todo: list[tuple[int, ByteRange]] = []
    for index, whole in enumerate(ranges):
        rest = whole.advanced(progress.get(index, 0))
        if rest.length > 0:
            todo.append((index, rest))
    return todo


@dataclass(frozen=True, slots=True)
class ContentRange:
    """A parsed ``Content-Range: bytes a-b/total`` (``total`` None for ``*``)."""

    range: ByteRange
    total: int | None


_CONTENT_RANGE_RE: Final = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


def parse_content_range(value: str) -> ContentRange:
    """Parse a satisfied ``Content-Range`` header; raises ValueError for anything else
    (including the unsatisfied form ``bytes */size``)."""
    match = _CONTENT_RANGE_RE.match(value)
    if match is None:
        raise ValueError(f"malformed Content-Range {value!r}")
    first, last = int(match[1]), int(match[2])
    total = None if match[3] == "*" else int(match[3])
    if last < first or (total is not None and last >= total):
        raise ValueError(f"inconsistent Content-Range {value!r}")
    return ContentRange(ByteRange(first, last + 1), total)


def format_content_range(part: ByteRange, total: int | None) -> str:
    """``bytes a-b/total`` for a non-empty ``part`` (``*`` when the total is unknown)."""
    if part.length == 0:
        raise ValueError("an empty range has no Content-Range")
    return f"bytes {part.start}-{part.end - 1}/{'*' if total is None else total}"
