"""Include/exclude globs (gobwas/glob semantics, '/' separator) and the date filter, as tables."""

from __future__ import annotations

import pytest

from hc.errors import ConfigError
from hc.migration.config import DateFilter, DateMatch
from hc.migration.patterns import PathFilter, compile_glob, date_verdict


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*.txt", "a.txt", True),
        ("*.txt", "dir/a.txt", False),
        ("**.txt", "dir/a.txt", True),
        ("**/*.txt", "a.txt", True),
        ("**/*.txt", "x/y/a.txt", True),
        ("pkg/**", "pkg/1.0/a/b.bin", True),
        ("pkg/**", "pkg2/1.0/a", False),
        ("pkg/*/a.bin", "pkg/1.0/a.bin", True),
        ("pkg/*/a.bin", "pkg/1.0/x/a.bin", False),
        ("/pkg/*", "pkg/x", True),
        ("file?.txt", "file1.txt", True),
        ("file?.txt", "file/.txt", False),
        ("file[12].txt", "file2.txt", True),
        ("file[!12].txt", "file3.txt", True),
        ("file[!12].txt", "file1.txt", False),
        ("a+b(c).txt", "a+b(c).txt", True),
    ],
)
def test_globs(pattern: str, path: str, matches: bool) -> None:
    assert (compile_glob(pattern).match(path) is not None) is matches


def test_an_unclosed_class_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="without a closing"):
        compile_glob("file[12.txt")


def test_include_first_then_exclude() -> None:
    both = PathFilter.from_patterns(["app/**"], ["**/*.tmp"])
    assert both.keeps("app/1.0/a.jar")
    assert not both.keeps("app/1.0/a.tmp")
    assert not both.keeps("other/1.0/a.jar")
    assert PathFilter.from_patterns([], []).keeps("anything/at/all")
    assert not PathFilter.from_patterns([], ["**"]).keeps("x")


CUT = 1_000.0


@pytest.mark.parametrize(
    ("match", "created_after", "downloaded_after", "created", "downloaded", "known", "keep"),
    [
        (DateMatch.ANY, CUT, None, 1_000.0, None, False, True),  # on the cutoff counts
        (DateMatch.ANY, CUT, None, 999.0, None, False, False),
        (DateMatch.ANY, CUT, None, None, None, False, False),  # no time: not in the window
        (DateMatch.ANY, CUT, CUT, 10.0, 2_000.0, True, True),
        (DateMatch.ALL, CUT, CUT, 10.0, 2_000.0, True, False),
        (DateMatch.ALL, CUT, CUT, 2_000.0, 2_000.0, True, True),
        (DateMatch.ALL, CUT, CUT, 2_000.0, None, False, True),  # unknown downloads: left out
        (DateMatch.ANY, None, CUT, 10.0, None, False, True),  # nothing left to decide: keep
    ],
)
def test_date_filter(
    match: DateMatch,
    created_after: float | None,
    downloaded_after: float | None,
    created: float | None,
    downloaded: float | None,
    known: bool,
    keep: bool,
) -> None:
    flt = DateFilter(match=match, created_after=created_after, downloaded_after=downloaded_after)
    verdict = date_verdict(flt, created=created, downloaded=downloaded, downloads_known=known)
    assert verdict.keep is keep
    assert verdict.downloads_unknown is (downloaded_after is not None and not known)


def test_no_filter_keeps_everything() -> None:
    assert date_verdict(None, created=None, downloaded=None, downloads_known=False).keep
