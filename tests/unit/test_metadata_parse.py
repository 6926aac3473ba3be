"""hc.protocol.metadata: the strict "k:v,k2:v2" parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hc.errors import ExitCode, UsageError
from hc.protocol.metadata import MAX_KEY_LENGTH, MAX_PAIRS, MAX_VALUE_LENGTH, MetadataPair, parse_metadata


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("team:core", [("team", "core")]),
        ("team:core,tier:gold", [("team", "core"), ("tier", "gold")]),
        ("  team : core ,  tier:gold  ", [("team", "core"), ("tier", "gold")]),
        ("url:https://example.com:8443/x", [("url", "https://example.com:8443/x")]),  # first ':' only
        ("a:b,,c:d,", [("a", "b"), ("c", "d")]),  # blank segments are skipped, as in Go
        ("k:v with spaces", [("k", "v with spaces")]),
        ("ключ:значение", [("ключ", "значение")]),
    ],
)
def test_valid(text: str, expected: list[tuple[str, str]]) -> None:
    assert parse_metadata(text) == tuple(MetadataPair(k, v) for k, v in expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no metadata given"),
        (" , ,", "no metadata given"),
        ("team", "invalid metadata pair 'team': expected key:value"),
        ("a:b,nocolon", "invalid metadata pair 'nocolon': expected key:value"),
        (":core", "invalid metadata pair ':core': the key is empty"),
        ("team:", "invalid metadata pair 'team:': the value is empty"),
        ("team:  ", "invalid metadata pair 'team:': the value is empty"),
        ("a:1,b:2,a:3", "invalid metadata pair 'a:3': the key 'a' is given twice"),
        ("a:b\x1b[31m", "control characters are not allowed"),
        ("k" * (MAX_KEY_LENGTH + 1) + ":v", "the key is longer than 128 characters"),
        ("k:" + "v" * (MAX_VALUE_LENGTH + 1), "the value is longer than 256 characters"),
        (",".join(f"k{i}:v" for i in range(MAX_PAIRS + 1)), "too many metadata pairs (51): at most 50"),
    ],
)
def test_invalid(text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_metadata(text)
    assert message in str(info.value)
    assert info.value.exit_code == ExitCode.USAGE
    assert "\n" not in str(info.value)


def test_limits_are_inclusive() -> None:
    pairs = parse_metadata(",".join(f"k{i}:v" for i in range(MAX_PAIRS)))
    assert len(pairs) == MAX_PAIRS
    (pair,) = parse_metadata("k" * MAX_KEY_LENGTH + ":" + "v" * MAX_VALUE_LENGTH)
    assert (len(pair.key), len(pair.value)) == (MAX_KEY_LENGTH, MAX_VALUE_LENGTH)


def test_error_for_a_long_pair_stays_short() -> None:
    with pytest.raises(UsageError) as info:
        parse_metadata("k" * 500 + ":v")
    assert len(str(info.value)) < 150


# -- properties -----------------------------------------------------------------------------------

# Keys and values that survive the syntax: no ',' anywhere, no ':' in keys, no edge whitespace.
_text = (
    st.text(
        alphabet=st.characters(blacklist_characters=",:", blacklist_categories=("Cs", "Cc")),
        min_size=1,
        max_size=40,
    )
    .map(str.strip)
    .filter(bool)
)
_keys = _text
_values = st.builds(lambda a, b: f"{a}:{b}" if b else a, _text, st.one_of(st.just(""), _text))


@given(st.dictionaries(_keys, _values, min_size=1, max_size=MAX_PAIRS))
def test_round_trip(pairs: dict[str, str]) -> None:
    text = ",".join(f"{k}:{v}" for k, v in pairs.items())
    assert parse_metadata(text) == tuple(MetadataPair(k, v) for k, v in pairs.items())


@given(st.text(max_size=300))
def test_any_text_parses_or_raises_usage_error(text: str) -> None:
    try:
        pairs = parse_metadata(text)
    except UsageError as exc:
        assert "\n" not in str(exc)  # one line, whatever the input
        return
    assert 1 <= len(pairs) <= MAX_PAIRS
    keys = [p.key for p in pairs]
    assert len(set(keys)) == len(keys)
    for pair in pairs:
        assert 1 <= len(pair.key) <= MAX_KEY_LENGTH and ":" not in pair.key and "," not in pair.key
        assert 1 <= len(pair.value) <= MAX_VALUE_LENGTH and "," not in pair.value
        assert pair.key == pair.key.strip() and pair.value == pair.value.strip()
        assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in pair.key + pair.value)
