"""Property tests for the parsers that stand between hc and hostile text, adding what
tests/unit does not already pin (round trips, idempotence, agreement between client and server,
and "never raises anything but the documented error" on arbitrary input).

Already in tests/unit: the sanitiser keeps accepted names inside the root and never crashes
(test_sanitize.py), metadata text → pairs → text round trip and arbitrary text → pairs or
UsageError (test_metadata_parse.py), the engine's part plans and its Content-Range round trip
(test_plan.py).
"""

from __future__ import annotations

import itertools
import string

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hc.api._http import server_message
from hc.api.files import content_disposition_filename
from hc.cli._artifact_transfer import pull_file_name
from hc.cli.render import format_cell
from hc.errors import UnsafePathError, UsageError
from hc.protocol.digest import format_digest, parse_digest
from hc.protocol.headers import parse_retry_after
from hc.protocol.identifiers import validate_relative_path
from hc.protocol.metadata import parse_metadata
from hc.protocol.ranges import (
    ByteRange,
    RangeNotSatisfiable,
    content_range,
    parse_content_range,
    parse_range_header,
    plan_parts,
)
from hc.server.routes.v2 import parse_metadata_items
from hc.transfer.sanitize import sanitize_relpath

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Path-ish text: the characters that matter for traversal, plus some ordinary and odd ones.
_PATH_ALPHABET = st.sampled_from([*"ab./\\%2eE:C0\x00\n ", "..", "%2e", "%2f", "%5c", "é", "文"])
path_text = st.lists(_PATH_ALPHABET, max_size=24).map("".join)


# -- the path sanitiser ---------------------------------------------------------------------------


@FAST
@given(st.one_of(path_text, st.text(max_size=40)))
def test_sanitize_is_idempotent(name: str) -> None:
    try:
        clean = sanitize_relpath(name)
    except UnsafePathError:
        return
    assert sanitize_relpath(clean) == clean
    assert "\\" not in clean and not clean.startswith("/") and "//" not in clean


@FAST
@given(st.one_of(path_text, st.text(max_size=40)))
@example("%2e%2e")
@example("a/b c/d.txt")
def test_a_path_the_server_stores_is_pulled_under_that_name_or_refused(path: str) -> None:
    """Never silently renamed on the way down: two different stored paths cannot collide on disk."""
    try:
        stored = validate_relative_path(path)
    except UnsafePathError:
        return
    try:
        local = sanitize_relpath(stored)
    except UnsafePathError:
        return
    assert local == stored


@FAST
@given(st.one_of(st.none(), st.text(max_size=80), path_text.map(lambda p: f'attachment; filename="{p}"')))
@example('attachment; filename="../../x"')
@example("attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd")
def test_a_name_offered_by_a_server_becomes_one_safe_segment(header: str | None) -> None:
    offered = content_disposition_filename(header)
    name = pull_file_name(offered, "dir/file.txt", warn=lambda _: None)
    assert "/" not in name and "\\" not in name and name not in ("", ".", "..")
    assert sanitize_relpath(name) == name


# -- metadata -------------------------------------------------------------------------------------

_key_chars = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters=",:")
_value_chars = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters=",")


@FAST
@given(
    st.lists(
        st.tuples(
            st.text(_key_chars, min_size=1, max_size=130), st.text(_value_chars, min_size=1, max_size=260)
        ),
        min_size=1,
        max_size=55,
    )
)
def test_what_the_client_accepts_the_server_accepts(raw: list[tuple[str, str]]) -> None:
    text = ",".join(f"{k}:{v}" for k, v in raw)
    try:
        pairs = parse_metadata(text)
    except UsageError:
        return
    assert parse_metadata_items([p.to_json() for p in pairs]) == [(p.key, p.value) for p in pairs]
    # and parsing is idempotent through its own rendering
    assert parse_metadata(",".join(f"{p.key}:{p.value}" for p in pairs)) == pairs


# -- byte ranges ----------------------------------------------------------------------------------


@st.composite
def range_in(draw: st.DrawFn) -> tuple[ByteRange, int]:
    size = draw(st.integers(1, 10**13))
    start = draw(st.integers(0, size - 1))
    end = draw(st.integers(start + 1, size))
    return ByteRange(start, end), size


@FAST
@given(range_in())
def test_a_range_request_asks_for_exactly_its_range(case: tuple[ByteRange, int]) -> None:
    rng, size = case
    assert parse_range_header(rng.header(), size) == rng


@FAST
@given(range_in(), st.booleans())
def test_content_range_round_trips(case: tuple[ByteRange, int], known_total: bool) -> None:
    rng, size = case
    total = size if known_total else None
    assert parse_content_range(content_range(rng, total)) == (rng, total)


@FAST
@given(
    st.one_of(
        st.text(max_size=40),
        st.builds(
            lambda a, b, sep: f"bytes={a}{sep}{b}",
            st.one_of(st.just(""), st.integers(0, 10**15).map(str), st.text("0123456789٣-", max_size=5)),
            st.one_of(st.just(""), st.integers(0, 10**15).map(str)),
            st.sampled_from(["-", " - ", "--", ",", "-0-"]),
        ),
    ),
    st.integers(0, 10**12),
)
def test_any_range_header_resolves_inside_the_file_or_is_refused(header: str, size: int) -> None:
    try:
        rng = parse_range_header(header, size)
    except RangeNotSatisfiable:
        return
    if rng is not None:
        assert 0 <= rng.start < rng.end <= size


@FAST
@given(st.text(max_size=40))
def test_any_content_range_parses_consistently_or_is_refused(value: str) -> None:
    try:
        rng, total = parse_content_range(value)
    except UsageError:
        return
    if rng is not None and total is not None:
        assert rng.end <= total


@FAST
@given(st.integers(1, 10**10), st.integers(0, 10_000), st.integers(0, 10**10))
def test_part_plans_cover_the_file_exactly_once(part: int, whole_parts: int, extra: int) -> None:
    size = part * whole_parts + extra % part  # at most ~10 000 parts, so the plan fits in memory
    parts = plan_parts(size, part)
    assert parts[0].start == 0 and parts[-1].end == size
    assert all(a.end == b.start for a, b in itertools.pairwise(parts))
    assert all(p.length <= part for p in parts)


# -- digests ----------------------------------------------------------------------------------------

_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}


@FAST
@given(st.sampled_from(sorted(_LENGTHS)), st.data())
def test_digest_round_trip(algorithm: str, data: st.DataObject) -> None:
    hex_value = data.draw(
        st.text("0123456789abcdefABCDEF", min_size=_LENGTHS[algorithm], max_size=_LENGTHS[algorithm])
    )
    assert parse_digest(format_digest(hex_value, algorithm)) == (algorithm, hex_value.lower())


@FAST
@given(
    st.one_of(
        st.text(max_size=140),
        st.builds(lambda a, h: f"{a}:{h}", st.text(max_size=8), st.text(string.hexdigits, max_size=130)),
    )
)
def test_any_digest_text_parses_or_is_a_usage_error(text: str) -> None:
    try:
        algorithm, hex_value = parse_digest(text)
    except UsageError:
        return
    assert len(hex_value) == _LENGTHS[algorithm] and set(hex_value) <= set("0123456789abcdef")


# -- what a server says -------------------------------------------------------------------------------


@FAST
@given(st.one_of(st.text(max_size=40), st.integers(0, 10**6).map(str)))
@example("²")
@example("①")
@example("1" * 400)
def test_any_retry_after_reads_as_a_delay_or_nothing(value: str) -> None:
    delay = parse_retry_after(value)
    assert delay is None or delay >= 0


@FAST
@given(st.integers(0, 10**6))
def test_retry_after_in_seconds_is_those_seconds(seconds: int) -> None:
    assert parse_retry_after(str(seconds)) == float(seconds)


@FAST
@given(st.binary(max_size=400))
@example(b'{"message": "\\u001b[2J\\u001b[31mred"}')
@example(b"line one\r\nline two")
def test_a_server_message_is_one_short_printable_line(body: bytes) -> None:
    message = server_message(body)
    if message is not None:
        assert message.isprintable() and len(message) <= 300


@FAST
@given(st.one_of(st.text(max_size=300), st.integers(), st.floats(), st.none(), st.lists(st.text(max_size=5))))
def test_a_table_cell_is_one_printable_line(value: object) -> None:
    cell = format_cell(value)
    assert "\n" not in cell and "\r" not in cell and "\x1b" not in cell
