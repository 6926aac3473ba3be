"""Plan arithmetic: parts, split ranges, resume plans, Range / Content-Range strings."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hc.transfer.plan import (
    ByteRange,
    ContentRange,
    clamp_part_size,
    contiguous_prefix,
    format_content_range,
    normalize,
    parse_content_range,
    plan_download,
    remaining_download,
    remaining_upload,
    split_even,
    split_fixed,
    subtract,
)

MiB = 1024 * 1024


def ranges(*pairs: tuple[int, int]) -> list[ByteRange]:
    return [ByteRange(a, b) for a, b in pairs]


@pytest.mark.parametrize(
    ("size", "part", "expected"),
    [
        (0, 4, []),
        (3, 4, [(0, 3)]),
        (4, 4, [(0, 4)]),
        (10, 4, [(0, 4), (4, 8), (8, 10)]),
    ],
)
def test_split_fixed(size: int, part: int, expected: list[tuple[int, int]]) -> None:
    assert split_fixed(size, part) == ranges(*expected)


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


def test_normalize_merges_overlapping_and_touching_ranges() -> None:
    assert normalize([(10, 20), (0, 5), (5, 8), (15, 30), (40, 40)]) == ranges((0, 8), (10, 30))


@pytest.mark.parametrize(
    ("have", "expected"),
    [([], 0), ([(0, 10)], 10), ([(0, 10), (10, 20)], 20), ([(5, 10)], 0), ([(0, 4), (6, 9)], 4)],
)
def test_contiguous_prefix(have: list[tuple[int, int]], expected: int) -> None:
    assert contiguous_prefix(have) == expected


@pytest.mark.parametrize(
    ("have", "expected"),
    [
        ([], [(0, 100)]),
        ([(0, 100)], []),
        ([(0, 30)], [(30, 100)]),
        ([(20, 30), (50, 60)], [(0, 20), (30, 50), (60, 100)]),
        ([(90, 200)], [(0, 90)]),
    ],
)
def test_subtract(have: list[tuple[int, int]], expected: list[tuple[int, int]]) -> None:
    assert subtract(ByteRange(0, 100), have) == ranges(*expected)


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


@pytest.mark.parametrize(
    ("part", "header"),
    [((0, 1), "bytes=0-0"), ((0, 100), "bytes=0-99"), ((100, 200), "bytes=100-199")],
)
def test_range_header_is_inclusive(part: tuple[int, int], header: str) -> None:
    assert ByteRange(*part).header() == header


def test_empty_range_has_no_header() -> None:
    with pytest.raises(ValueError):
        ByteRange(5, 5).header()


def test_invalid_range_is_refused() -> None:
    with pytest.raises(ValueError):
        ByteRange(10, 5)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes 0-99/1000", ContentRange(ByteRange(0, 100), 1000)),
        ("bytes 100-199/*", ContentRange(ByteRange(100, 200), None)),
        ("Bytes  5-5/6", ContentRange(ByteRange(5, 6), 6)),
    ],
)
def test_parse_content_range(value: str, expected: ContentRange) -> None:
    assert parse_content_range(value) == expected


@pytest.mark.parametrize(
    "value", ["bytes */1000", "bytes 10-5/100", "bytes 0-100/100", "items 0-1/2", "", "bytes 0-/10"]
)
def test_parse_content_range_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        parse_content_range(value)


@given(st.integers(0, 10**12), st.integers(1, 10**9), st.integers(0, 10**6))
def test_content_range_round_trips(start: int, length: int, extra: int) -> None:
    part = ByteRange(start, start + length)
    total = part.end + extra
    assert parse_content_range(format_content_range(part, total)) == ContentRange(part, total)
