"""Pure engine planning: files → download ranges, upload part sizes, resume plans.

Nothing here awaits or touches a file; the manager computes a plan with these functions and then
carries it out. All ranges are half-open ``[start, end)``. The byte-range primitives themselves
(``ByteRange``, merging, subtracting, fixed-size splitting, Range / Content-Range strings) live in
``hc.protocol.ranges``, shared with the HTTP client and the server; this module only combines them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from hc.protocol.ranges import ByteRange, split_fixed, subtract

__all__ = [
    "clamp_part_size",
    "plan_download",
    "remaining_download",
    "remaining_upload",
    "split_even",
]


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
    size: int,
    *,
    split: int,
    split_threshold: int,
    align: int = 1,
    min_length: int = 1,
    piece: int | None = None,
) -> list[ByteRange]:
    """The ranges to fetch, ``split`` at a time: one when the file is below ``split_threshold`` (or
    split is 1), else ``split`` of them or, with ``piece``, as many ranges of about ``piece`` bytes
    as it takes (never fewer than ``split``). A zero-byte file needs no request at all.

    Pieces fetched in order by ``split`` streams keep the written prefix of the file growing at the
    full download rate, so the digest computed over that prefix finishes with the last piece
    (with ``split`` long ranges the prefix grows at a quarter of the rate and most of the file is
    hashed after the download); each piece costs one more request."""
    if size <= 0:
        return []
    if split <= 1 or size < split_threshold:
        return [ByteRange(0, size)]
    count = split if piece is None or piece <= 0 else max(split, -(-size // piece))
    return split_even(size, count, align=align, min_length=min_length)


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


def remaining_upload(size: int, part_size: int, received: Iterable[tuple[int, int]]) -> list[ByteRange]:
    """The parts still to send for a resumed upload session.

    The server's view (``received``) is the truth: the journal only remembers *which* session to
    resume, and a part the journal thinks it sent but the server lacks is sent again. Holes are cut
    into pieces of at most ``part_size``; for a sequential (OCI) server ``received`` is
    ``[(0, offset)]`` and the first piece starts exactly at its offset.
    """
    parts: list[ByteRange] = []
    for hole in subtract(ByteRange(0, size), received):
        parts.extend(split_fixed(hole.end, part_size, start=hole.start))
    return parts


def remaining_download(
    ranges: Sequence[ByteRange], progress: Mapping[int, int]
) -> list[tuple[int, ByteRange]]:
    """``(index, still-to-fetch)`` for every range of a download plan, given the verified bytes
    written from each range's start (``progress[index]``, from the journal)."""
    todo: list[tuple[int, ByteRange]] = []
    for index, whole in enumerate(ranges):
        # Progress outside [0, length] (a damaged journal) is clamped, never trusted.
        rest = ByteRange(min(whole.start + max(progress.get(index, 0), 0), whole.end), whole.end)
        if rest.length > 0:
            todo.append((index, rest))
    return todo
