"""Bulk selectors: glob matching, validation, the --from file and the single-target decision."""

from __future__ import annotations

from pathlib import Path

import pytest

from hc.cli._bulk_select import Selection, Target, matches, parse_where, read_targets_file
from hc.errors import UsageError


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("*", "anything", True),
        ("a*", "app", True),
        ("a*", "lib", False),
        ("1.?", "1.1", True),
        ("1.?", "1.10", False),
        ("@scope/*", "@scope/pkg", True),
        ("App", "app", False),  # case-sensitive, as registry names are
    ],
)
def test_matches(pattern: str, name: str, expected: bool) -> None:
    assert matches(pattern, name) is expected


@pytest.mark.parametrize(
    "selection",
    [
        Selection(),
        Selection(package=""),
        Selection(package="a[b]"),
        Selection(package="a", version="1", all_versions=True),
        Selection(package="a", from_file=Path("x")),
    ],
)
def test_invalid_selections(selection: Selection) -> None:
    with pytest.raises(UsageError):
        selection.validate()


def test_levels_and_keys() -> None:
    assert not Selection(package="a*").versions
    assert Selection(package="a*", all_versions=True).versions
    assert Target("pkg", "1.0").key == "pkg/1.0" and Target("pkg").key == "pkg"
    assert [(p.key, p.value) for p in parse_where(["team:core", "tier:gold,x:y"])] == [
        ("team", "core"),
        ("tier", "gold"),
        ("x", "y"),
    ]


async def test_targets_file(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"package": "a", "version": "1"}\n\n{"package": "b"}\n')
    assert [t async for t in read_targets_file(path)] == [Target("a", "1"), Target("b")]
    path.write_text('{"package": "a"}\n{"version": "1"}\n')
    with pytest.raises(UsageError, match=":2:"):
        [t async for t in read_targets_file(path)]
