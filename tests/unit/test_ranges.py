"""Range / Content-Range parsing and part plans (pure)."""

from __future__ import annotations

import pytest

from hc.errors import UsageError
from hc.protocol.ranges import (
    ByteRange,
    RangeNotSatisfiable,
    content_range,
    parse_content_range,
    parse_range_header,
    plan_parts,
    unsatisfied_content_range,
)


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
    assert ByteRange(3, 8).header() == "bytes=3-7"
    with pytest.raises(ValueError):
        content_range(ByteRange(4, 4), 10)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes 0-9/100", (ByteRange(0, 10), 100)),
        ("bytes 5-5/*", (ByteRange(5, 6), None)),
        ("bytes */42", (None, 42)),
    ],
)
def test_parse_content_range(value: str, expected: tuple[ByteRange | None, int | None]) -> None:
    assert parse_content_range(value) == expected


@pytest.mark.parametrize("value", ["bytes 9-0/100", "bytes 0-100/100", "0-9/100", "bytes x-y/z"])
def test_malformed_content_range(value: str) -> None:
    with pytest.raises(UsageError):
        parse_content_range(value)


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
