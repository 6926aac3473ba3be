"""Engine plan arithmetic: split ranges, part sizes, resume plans (the shared range primitives are
tested in test_ranges.py)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hc.protocol.ranges import ByteRange
from hc.transfer.plan import (
    clamp_part_size,
    plan_download,
    remaining_download,
    remaining_upload,
    split_even,
)

MiB = 1024 * 1024


def ranges(*pairs: tuple[int, int]) -> list[ByteRange]:
    return [ByteRange(a, b) for a, b in pairs]


@pytest.mark.parametrize(
    ("size", "count", "align", "min_length", "expected"),
    [
        (100, 4, 1, 1, [(0, 25), (25, 50), (50, 75), (75, 100)]),
        (10, 3, 1, 1, [(0, 4), (4, 8), (8, 10)]),
        (100, 4, 16, 1, [(0, 32), (32, 64), (64, 96), (96, 100)]),  # boundaries on the alignment
        (100, 4, 1, 40, [(0, 50), (50, 100)]),  # never ranges shorter than min_length
        (5, 4, 1, 40, [(0, 5)]),
        (0, 4, 1, 1, []),
    ],
)
def test_split_even(
    size: int, count: int, align: int, min_length: int, expected: list[tuple[int, int]]
) -> None:
    assert split_even(size, count, align=align, min_length=min_length) == ranges(*expected)


@given(st.integers(0, 10**12), st.integers(1, 64), st.sampled_from([1, 4096, MiB]))
def test_split_even_covers_the_file_exactly(size: int, count: int, align: int) -> None:
    parts = split_even(size, count, align=align)
    assert len(parts) <= count
    assert sum(p.length for p in parts) == size
    for left, right in itertools.pairwise(parts):
        assert left.end == right.start
        assert left.end % align == 0


@pytest.mark.parametrize(
    ("size", "split", "threshold", "expected_count"),
    [
        (0, 4, 0, 0),  # an empty file needs no request
        (10 * MiB, 4, 64 * MiB, 1),  # below the threshold: one stream
        (100 * MiB, 4, 64 * MiB, 4),
        (100 * MiB, 1, 64 * MiB, 1),
    ],
)
def test_plan_download(size: int, split: int, threshold: int, expected_count: int) -> None:
    plan = plan_download(size, split=split, split_threshold=threshold, align=MiB)
    assert len(plan) == expected_count
    assert sum(p.length for p in plan) == size


@pytest.mark.parametrize(
    ("size", "part", "kwargs", "expected"),
    [
        (100, 16, {}, 16),
        (100, 16, {"min_part": 32}, 32),
        (100, 16, {"max_part": 8}, 8),
        (10_000 * 16 + 1, 16, {"max_parts": 10_000}, 17),  # grows so the file fits in max_parts
        (100, 0, {}, 1),
    ],
)
def test_clamp_part_size(size: int, part: int, kwargs: dict[str, int], expected: int) -> None:
    assert clamp_part_size(size, part, **kwargs) == expected


def test_remaining_upload_resumes_at_the_servers_offset() -> None:
    # A sequential server acknowledged 10 bytes: the first part starts exactly there.
    assert remaining_upload(40, 16, [(0, 10)]) == ranges((10, 26), (26, 40))


def test_remaining_upload_fills_holes_of_a_parallel_server() -> None:
    assert remaining_upload(64, 16, [(0, 16), (32, 48)]) == ranges((16, 32), (48, 64))


def test_remaining_upload_is_empty_when_the_server_has_everything() -> None:
    assert remaining_upload(64, 16, [(0, 64)]) == []


def test_remaining_download_skips_verified_bytes() -> None:
    plan = ranges((0, 100), (100, 200), (200, 250))
    assert remaining_download(plan, {0: 100, 1: 30}) == [(1, ByteRange(130, 200)), (2, ByteRange(200, 250))]


def test_remaining_download_ignores_nonsense_progress() -> None:
    plan = ranges((0, 100))
    assert remaining_download(plan, {0: 500}) == []
    assert remaining_download(plan, {0: -5}) == [(0, ByteRange(0, 100))]
