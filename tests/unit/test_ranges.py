"""Range / Content-Range strings, range arithmetic, part plans (pure; server, client and engine)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hc.errors import UsageError
from hc.protocol.ranges import (
    ByteRange,
    RangeNotSatisfiable,
    content_range,
    contiguous_prefix,
    normalize,
    parse_content_range,
    parse_range_header,
    plan_parts,
    split_fixed,
    subtract,
    unsatisfied_content_range,
)


def ranges(*pairs: tuple[int, int]) -> list[ByteRange]:
    return [ByteRange(a, b) for a, b in pairs]


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, ByteRange(0, 1)),
        ("bytes=2-5", 10, ByteRange(2, 6)),
        ("bytes=2-", 10, ByteRange(2, 10)),
        ("bytes=5-100", 10, ByteRange(5, 10)),  # last byte clamped to the end
        ("bytes=-3", 10, ByteRange(7, 10)),
        ("bytes=-30", 10, ByteRange(0, 10)),  # suffix longer than the file: all of it
        ("BYTES = 1 - 2", 10, ByteRange(1, 3)),
        ("bytes=5-2", 10, None),  # invalid: ignored
        ("bytes=0-1,4-5", 10, None),  # multiple ranges: ignored (whole body)
        ("items=0-1", 10, None),
        ("bytes=-", 10, None),
    ],
)
def test_parse_range_header(header: str, size: int, expected: ByteRange | None) -> None:
    assert parse_range_header(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=10-", 10), ("bytes=10-20", 10), ("bytes=-0", 10), ("bytes=-5", 0)]
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as info:
        parse_range_header(header, size)
    assert info.value.http_status == 416


def test_content_range_forms() -> None:
    assert content_range(ByteRange(0, 10), 100) == "bytes 0-9/100"
    assert content_range(ByteRange(5, 6), None) == "bytes 5-5/*"
    assert unsatisfied_content_range(42) == "bytes */42"
    with pytest.raises(ValueError):
        content_range(ByteRange(4, 4), 10)


@pytest.mark.parametrize(
    ("part", "header"),
    [((0, 1), "bytes=0-0"), ((0, 100), "bytes=0-99"), ((100, 200), "bytes=100-199"), ((3, 8), "bytes=3-7")],
)
def test_range_header_is_inclusive(part: tuple[int, int], header: str) -> None:
    assert ByteRange(*part).header() == header


def test_empty_range_has_no_header() -> None:
    with pytest.raises(ValueError):
        ByteRange(5, 5).header()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes 0-9/100", (ByteRange(0, 10), 100)),
        ("bytes 5-5/*", (ByteRange(5, 6), None)),
        ("bytes */42", (None, 42)),
        ("bytes 0-99/1000", (ByteRange(0, 100), 1000)),
        ("bytes 100-199/*", (ByteRange(100, 200), None)),
        ("Bytes  5-5/6", (ByteRange(5, 6), 6)),
    ],
)
def test_parse_content_range(value: str, expected: tuple[ByteRange | None, int | None]) -> None:
    assert parse_content_range(value) == expected


@pytest.mark.parametrize(
    "value",
    ["bytes 9-0/100", "bytes 0-100/100", "0-9/100", "bytes x-y/z", "items 0-1/2", "", "bytes 0-/10"],
)
def test_malformed_content_range(value: str) -> None:
    with pytest.raises(UsageError):
        parse_content_range(value)


@given(st.integers(0, 10**12), st.integers(1, 10**9), st.integers(0, 10**6))
def test_content_range_round_trips(start: int, length: int, extra: int) -> None:
    part = ByteRange(start, start + length)
    total = part.end + extra
    assert parse_content_range(content_range(part, total)) == (part, total)


def test_byte_range_rejects_negative_or_inverted() -> None:
    with pytest.raises(ValueError):
        ByteRange(-1, 3)
    with pytest.raises(ValueError):
        ByteRange(5, 3)


@pytest.mark.parametrize(
    ("size", "part", "expected"),
    [
        (0, 4, [ByteRange(0, 0)]),
        (4, 4, [ByteRange(0, 4)]),
        (10, 4, [ByteRange(0, 4), ByteRange(4, 8), ByteRange(8, 10)]),
        (3, 10, [ByteRange(0, 3)]),
    ],
)
def test_plan_parts(size: int, part: int, expected: list[ByteRange]) -> None:
    assert plan_parts(size, part) == expected
    assert sum(r.length for r in plan_parts(size, part)) == size


def test_plan_parts_needs_a_positive_size() -> None:
    with pytest.raises(ValueError):
        plan_parts(10, 0)


# ------------------------------------------------------------------------------- range arithmetic


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


def test_split_fixed_cuts_a_span_that_starts_later() -> None:
    assert split_fixed(20, 4, start=10) == ranges((10, 14), (14, 18), (18, 20))


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
