"""The local walk: Go-compatible remote paths, hidden files, symlinks, loops, special files, globs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hc.errors import UsageError
from hc.transfer.walk import LocalItem, SkippedEntry, validate_sources, walk, walk_async


def relpaths(sources: list[str], **kwargs: object) -> list[str]:
    return [item.relpath for item in walk(sources, **kwargs)]  # type: ignore[arg-type]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    for rel in ["a.txt", "b/c.txt", "b/d/e.txt", "b-x.txt", ".hidden", ".git/config", "b/.secret"]:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
    return root


def test_a_file_maps_to_its_basename(project: Path) -> None:
    assert relpaths([str(project / "b" / "c.txt")]) == ["c.txt"]


def test_a_directory_maps_under_its_own_name_in_string_order(project: Path) -> None:
    # "b-x.txt" sorts before "b/…" as strings; the walk yields exactly that order.
    assert relpaths([str(project)]) == ["proj/a.txt", "proj/b-x.txt", "proj/b/c.txt", "proj/b/d/e.txt"]
    assert relpaths([str(project) + "/"]) == relpaths([str(project)])


def test_dot_maps_to_plain_relative_paths(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    assert relpaths(["."]) == ["a.txt", "b-x.txt", "b/c.txt", "b/d/e.txt"]
    assert relpaths([str(project / "b") + "/."]) == ["c.txt", "d/e.txt"]


def test_dotdot_uses_the_real_directory_name(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project / "b")
    assert relpaths([".."])[0] == "proj/a.txt"


def test_hidden_entries_only_with_include_hidden(project: Path) -> None:
    assert ".hidden" not in " ".join(relpaths([str(project)]))
    with_hidden = relpaths([str(project)], include_hidden=True)
    assert {"proj/.hidden", "proj/.git/config", "proj/b/.secret"} <= set(with_hidden)


def test_symlinks_inside_the_tree_are_followed_outside_skipped(project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("no")
    (project / "out-link").symlink_to(outside, target_is_directory=True)
    (project / "out-file").symlink_to(outside / "secret.txt")
    (project / "in-link.txt").symlink_to(project / "a.txt")
    (project / "dangling").symlink_to(project / "missing")
    skipped: list[SkippedEntry] = []
    found = [i.relpath for i in walk([str(project)], on_skip=skipped.append)]
    assert "proj/in-link.txt" in found
    assert not any("secret" in f for f in found)
    reasons = {s.path.name: s.reason for s in skipped}
    assert reasons["out-link"] == reasons["out-file"] == "symlink leads outside the tree"
    assert reasons["dangling"] == "broken symlink"


def test_symlink_loops_are_detected(project: Path) -> None:
    (project / "b" / "d" / "up").symlink_to(project / "b", target_is_directory=True)
    (project / "b" / "self").symlink_to(project / "b", target_is_directory=True)
    skipped: list[SkippedEntry] = []
    found = relpaths([str(project)], on_skip=skipped.append)
    assert found == ["proj/a.txt", "proj/b-x.txt", "proj/b/c.txt", "proj/b/d/e.txt"]
    assert sorted(s.reason for s in skipped) == ["symlink loop", "symlink loop"]


def test_a_sibling_directory_link_is_walked_under_its_own_name(project: Path) -> None:
    (project / "alias").symlink_to(project / "b" / "d", target_is_directory=True)
    assert "proj/alias/e.txt" in relpaths([str(project)])


def test_pipes_are_skipped(project: Path) -> None:
    os.mkfifo(project / "pipe")
    skipped: list[SkippedEntry] = []
    found = relpaths([str(project)], on_skip=skipped.append)
    assert "proj/pipe" not in found
    assert [s.reason for s in skipped] == ["not a regular file (device, pipe or socket)"]


def test_items_carry_the_stat_identity(project: Path) -> None:
    (item,) = walk([str(project / "a.txt")])
    st = (project / "a.txt").stat()
    assert (item.size, item.mtime_ns, item.inode) == (st.st_size, st.st_mtime_ns, st.st_ino)


def test_globs_expand_and_missing_paths_are_usage_errors(project: Path) -> None:
    assert relpaths([str(project / "b" / "*.txt")]) == ["c.txt"]
    assert relpaths([str(project / "b*")]) == ["b-x.txt", "b/c.txt", "b/d/e.txt"]
    with pytest.raises(UsageError, match="no such file"):
        validate_sources([str(project / "nope")])
    with pytest.raises(UsageError, match="no files match"):
        validate_sources([str(project / "*.zip")])
    validate_sources([str(project), str(project / "*.txt")])


def test_a_deep_tree_does_not_recurse(tmp_path: Path) -> None:
    path = tmp_path / "deep"
    for _ in range(300):  # deeper than any sane recursion would like
        path = path / "d"
    path.mkdir(parents=True)
    (path / "leaf").write_text("x")
    (found,) = relpaths([str(tmp_path / "deep")])
    assert found.count("/") == 301


async def test_walk_async_matches_walk_and_reports_skips_on_the_loop(project: Path) -> None:
    os.mkfifo(project / "pipe")
    skipped: list[SkippedEntry] = []
    found = [item.relpath async for item in walk_async([str(project)], on_skip=skipped.append, batch_size=2)]
    assert found == relpaths([str(project)])
    assert len(skipped) == 1


@pytest.mark.parametrize("arg", [".", "./", "./b", "b/", "b/.", "b//d", "../proj/b", "ABSOLUTE", "//"])
def test_items_name_their_files_as_pathlib_would(
    project: Path, monkeypatch: pytest.MonkeyPatch, arg: str
) -> None:
    # The walk builds each file's path as a string (no Path per file): it must equal what
    # ``Path`` shows, and its absolute form what ``Path.absolute()`` gives (the hash cache's key,
    # which earlier versions wrote from that), or a re-push would re-hash every file once.
    monkeypatch.chdir(project)
    if arg == "ABSOLUTE":
        arg = str(project / "b")
    if arg == "//":
        arg = "//" + str(project / "b").lstrip("/")  # POSIX keeps a leading "//"; so must the walk
    items = list(walk([arg]))
    assert items
    for item in items:
        assert item.location == str(Path(item.location)), item.location
        assert item.absolute == str(Path(item.location).absolute())
        assert Path(item.absolute).read_text() == item.path.read_text()
        assert item.path.is_file()
        # the file it names is the one whose remote path it carries
        assert item.absolute.endswith(item.relpath.split("/", 1)[-1])


def test_from_stat_normalises_its_path_as_the_walk_does(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    item = LocalItem.from_stat("./b//c.txt", "c.txt", os.stat("b/c.txt"))
    assert (item.location, item.absolute) == ("b/c.txt", str(project / "b" / "c.txt"))
    assert [i.location for i in walk(["./b//c.txt"])] == ["b/c.txt"]
