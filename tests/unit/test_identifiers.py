"""Identifier and path rules shared by client and server (pure)."""

from __future__ import annotations

import pytest

from hc.errors import UnsafePathError, UsageError
from hc.protocol.identifiers import (
    split_space_ref,
    validate_package_name,
    validate_registry_identifier,
    validate_relative_path,
    validate_scope_identifier,
    validate_version_name,
)


@pytest.mark.parametrize("good", ["a", "gen", "my-registry", "docker_dev.v2", "a" * 128, "r0"])
def test_valid_registry_identifiers(good: str) -> None:
    assert validate_registry_identifier(good) == good


@pytest.mark.parametrize("bad", ["", "1abc", "_x", "-x", ".x", "Upper", "a b", "a/b", "a" * 129, "é", "a:b"])
def test_invalid_registry_identifiers(bad: str) -> None:
    with pytest.raises(UsageError, match="registry identifier"):
        validate_registry_identifier(bad)


@pytest.mark.parametrize("good", ["local", "px7xd_BFRCi-pfWPYXVjvw", "default", "_org"])
def test_valid_scope_identifiers(good: str) -> None:
    assert validate_scope_identifier(good) == good


@pytest.mark.parametrize("bad", ["", "a.b", "a/b", "a b", "-lead", "x" * 129])
def test_invalid_scope_identifiers(bad: str) -> None:
    with pytest.raises(UsageError):
        validate_scope_identifier(bad)


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("acct", ("acct", None, None)),
        ("acct/org", ("acct", "org", None)),
        ("acct/org/proj", ("acct", "org", "proj")),
        ("/acct/org/", ("acct", "org", None)),
    ],
)
def test_split_space_ref(ref: str, expected: tuple[str, str | None, str | None]) -> None:
    assert split_space_ref(ref) == expected


@pytest.mark.parametrize("bad", ["", "a/b/c/d", "a.b"])
def test_bad_space_refs(bad: str) -> None:
    with pytest.raises(UsageError):
        split_space_ref(bad)


@pytest.mark.parametrize("good", ["tool", "@scope/name", "com.example:lib", "1.0.0+build.5"])
def test_valid_package_names(good: str) -> None:
    assert validate_package_name(good) == good


@pytest.mark.parametrize(
    "bad", ["", ".", "..", "a/../b", "a//b", "a\\b", "a\x00b", "x" * 256, "  ", " lead", "trail ", "a/ b"]
)
def test_invalid_package_names(bad: str) -> None:
    with pytest.raises(UsageError):
        validate_package_name(bad)


@pytest.mark.parametrize("bad", ["1/2", "..", "", "v\n1", " ", "1.0 ", "\t1"])
def test_invalid_version_names(bad: str) -> None:
    with pytest.raises(UsageError):
        validate_version_name(bad)


@pytest.mark.parametrize("good", ["a", "dir/file.txt", "a b/c#d?.txt", ".hidden/x", "x..y"])
def test_safe_relative_paths(good: str) -> None:
    assert validate_relative_path(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "/etc/passwd",
        "../x",
        "a/../../x",
        "a/./b",
        "a//b",
        "a/",
        "C:/x",
        "a\\b",
        "a\x00b",
        "a\nb",
        "x" * 5000,
    ],
)
def test_unsafe_relative_paths(bad: str) -> None:
    with pytest.raises(UnsafePathError):
        validate_relative_path(bad)
