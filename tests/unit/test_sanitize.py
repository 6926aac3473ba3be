"""Names from servers, listings, headers and users never escape the destination."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hc.errors import UnsafePathError
from hc.transfer.sanitize import safe_join, sanitize_relpath


@pytest.mark.parametrize(
    ("name", "clean"),
    [
        ("a.txt", "a.txt"),
        ("dir/sub/a.txt", "dir/sub/a.txt"),
        ("a//b", "a/b"),
        ("./a/./b", "a/b"),
        ("dir\\file.txt", "dir/file.txt"),  # written on Windows
        ("100%25.txt", "100%25.txt"),  # not decoded: only checked
        ("..foo/bar..", "..foo/bar.."),  # dots inside a name are fine
        ("名前/ファイル.bin", "名前/ファイル.bin"),
        ("a b/#c?.txt", "a b/#c?.txt"),
    ],
)
def test_safe_names_are_kept(name: str, clean: str) -> None:
    assert sanitize_relpath(name) == clean


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "./",
        "/",
        "/etc/passwd",
        "..",
        "../x",
        "a/../../x",
        "a/..",
        "..\\..\\windows",
        "\\\\server\\share\\x",
        "C:\\Windows\\x",
        "c:x",
        "%2e%2e/x",
        "%2E%2E%2Fx",
        "a/%2e%2e",
        "%252e%252e/x",  # double-encoded
        "a%2fb",  # an encoded separator
        "a%5c..",
        "%43:/x",  # encoded drive letter
        "a\x00b",
        "a\nb",
        "a\x7fb",
        "x" * 256,
        "a/" + "y" * 300,
    ],
)
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(UnsafePathError):
        sanitize_relpath(name)


def test_safe_join_places_names_under_the_root(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "a/b.txt") == tmp_path.resolve() / "a" / "b.txt"


def test_safe_join_refuses_a_symlink_leading_out(tmp_path: Path) -> None:
    root = tmp_path / "dest"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="outside"):
        safe_join(root, "link/evil.txt")


def test_safe_join_follows_a_symlink_that_stays_inside(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    assert safe_join(tmp_path, "alias/x") == tmp_path.resolve() / "alias" / "x"


# Names built from the pieces attacks are made of, so the search reaches the interesting cases.
names = st.lists(
    st.sampled_from([*"ab./\\%2eE5cCfF:\x00 ~", "..", "%2e", "%2F", "%5C", "%25", "C:"]),
    max_size=20,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(names)
def test_property_whatever_is_accepted_stays_inside(name: str) -> None:
    root = Path(os.path.realpath("/tmp")) / "hc-sanitize-root"
    try:
        clean = sanitize_relpath(name)
    except UnsafePathError:
        return
    assert not clean.startswith("/")
    assert "\x00" not in clean and "\\" not in clean
    assert all(part not in ("", ".", "..") for part in clean.split("/"))
    assert sanitize_relpath(clean) == clean  # idempotent
    joined = os.path.normpath(os.path.join(root, clean))
    assert joined.startswith(str(root) + os.sep)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_property_arbitrary_text_never_crashes_or_escapes(name: str) -> None:
    try:
        clean = sanitize_relpath(name)
    except UnsafePathError:
        return
    assert ".." not in clean.split("/")
    assert not os.path.isabs(clean)
