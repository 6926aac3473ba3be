"""Pure rules of ``hc artifact``: argument parsing, names of pulled files, summaries, delete report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hc.cli._artifact_transfer import PullSpec, parse_pull_spec, pull_file_name
from hc.cli._transfer import read_retry_set, summary_line
from hc.cli.artifact import (
    CopySource,
    delete_lines,
    format_timestamp,
    parse_artifact_key,
    parse_copy_source,
    validate_pattern,
)
from hc.errors import UnsafePathError, UsageError
from hc.protocol.models import BulkDeleteResult
from hc.transfer import Summary


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("pkg", PullSpec("pkg")),
        ("pkg/1.0", PullSpec("pkg", "1.0")),
        ("pkg/1.0/a.txt", PullSpec("pkg", "1.0", "a.txt")),
        ("pkg/1.0/dir/sub/a.txt", PullSpec("pkg", "1.0", "dir/sub/a.txt")),
    ],
)
def test_pull_spec_splits_like_go(text: str, spec: PullSpec) -> None:
    assert parse_pull_spec(text) == spec
    assert str(spec) == text


@pytest.mark.parametrize("text", ["", "/1.0", "pkg/", "pkg//a", "pkg/1.0/", "pkg/../a", "../1/a"])
def test_bad_pull_specs(text: str) -> None:
    with pytest.raises(UsageError):
        parse_pull_spec(text)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("reg/pkg/1.0", CopySource("reg", "pkg", "1.0")),
        ("reg/@scope/name/1.0", CopySource("reg", "@scope/name", "1.0")),
        ("reg/a/b/c/v", CopySource("reg", "a/b/c", "v")),
    ],
)
def test_copy_source_splits_at_the_first_and_last_slash(text: str, parts: CopySource) -> None:
    assert parse_copy_source(text) == parts


@pytest.mark.parametrize("text", ["reg", "reg/pkg", "/pkg/1", "reg//1", "reg/pkg/", ""])
def test_bad_copy_sources(text: str) -> None:
    with pytest.raises(UsageError):
        parse_copy_source(text)


def test_artifact_keys() -> None:
    assert parse_artifact_key(None) == {}
    assert parse_artifact_key(" arch = amd64 , os=linux,") == {"arch": "amd64", "os": "linux"}
    assert parse_artifact_key("url=https://x/?a=b") == {"url": "https://x/?a=b"}
    for bad in ("arch", "=v", "k=", "a=1,a=2", ","):
        with pytest.raises(UsageError):
            parse_artifact_key(bad)


@pytest.mark.parametrize("pattern", ["app*", "a?p", "exact", "*"])
def test_wildcards_star_and_question_mark_are_allowed(pattern: str) -> None:
    assert validate_pattern(pattern, what="package") == pattern


@pytest.mark.parametrize("pattern", ["a[bc]", "{a,b}", "x]"])
def test_other_wildcards_are_refused(pattern: str) -> None:
    with pytest.raises(UsageError, match=r"only the wildcards \* and \? are supported"):
        validate_pattern(pattern, what="package")


@pytest.mark.parametrize(
    ("offered", "path", "name"),
    [
        (None, "dir/a.txt", "a.txt"),
        ("report.pdf", "dir/a.txt", "report.pdf"),
        ("../../etc/passwd", "a.txt", "passwd"),
        ("..\\..\\win.ini", "a.txt", "win.ini"),
        ("..", "dir/a.txt", "a.txt"),
        ("%2e%2e", "dir/a.txt", "a.txt"),
        ("bad\x00name", "dir/a.txt", "a.txt"),
    ],
)
def test_the_name_of_a_single_pulled_file_is_a_safe_base_name(
    offered: str | None, path: str, name: str
) -> None:
    warnings: list[str] = []
    assert pull_file_name(offered, path, warn=warnings.append) == name
    assert bool(warnings) == (offered is not None and name != offered.replace("\\", "/").rsplit("/", 1)[-1])


def test_an_unsafe_requested_name_is_an_error() -> None:
    with pytest.raises(UnsafePathError):
        pull_file_name(None, "dir/..", warn=lambda _: None)


def _summary(**values: float) -> Summary:
    base = {
        "succeeded": 0,
        "skipped": 0,
        "failed": 0,
        "cancelled": 0,
        "planned": 0,
        "bytes": 0,
        "seconds": 0.0,
    }
    return Summary(**{**base, **values})  # type: ignore[arg-type]


def test_summary_lines() -> None:
    done = _summary(succeeded=998, skipped=2, bytes=4 * 1024 * 1024, seconds=2.0)
    assert summary_line("push", done) == (
        "push: 998 succeeded, 2 skipped, 0 failed; 4.0 MiB in 2.00s (2.0 MiB/s, 500 files/s)"
    )
    assert (
        summary_line("pull", _summary(skipped=3, seconds=0.1))
        == "pull: 0 succeeded, 3 skipped, 0 failed; 0 B in 0.10s"
    )
    cut = _summary(succeeded=1, cancelled=2, bytes=10, seconds=1.0)
    assert summary_line("push", cut, interrupted=True).startswith(
        "push (interrupted): 1 succeeded, 0 skipped, 0 failed, 2 cancelled; 10 B in 1.00s"
    )
    assert summary_line("push", _summary(planned=4, skipped=1), dry_run=True) == (
        "push (dry run): 4 to transfer, 1 already identical, 0 failed; nothing was changed"
    )


def test_retry_set_reads_failed_and_cancelled_paths(tmp_path: Path) -> None:
    results = tmp_path / "r.jsonl"
    rows = [
        {"path": "a", "status": "done"},
        {"path": "b", "status": "failed"},
        {"path": "c", "status": "cancelled"},
        {"path": "d", "status": "skipped"},
    ]
    results.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert read_retry_set(results) == {"b", "c"}
    results.write_text("not json\n")
    with pytest.raises(UsageError, match=r"r\.jsonl:1"):
        read_retry_set(results)
    with pytest.raises(UsageError, match="cannot read"):
        read_retry_set(tmp_path / "missing.jsonl")


def test_delete_report_follows_the_go_cli() -> None:
    result = BulkDeleteResult(
        dry_run=True,
        registry="gen",
        pattern="app*",
        version_pattern="1.*",
        total=1002,
        success=1002,
        failed=0,
        success_packages=["app@1.0", "app@1.1"],
        message="1002 versions match",
    )
    assert delete_lines(result) == [
        "1002 versions match",
        "Registry        : gen",
        "Version pattern : 1.*",
        "Dry-run         : true",
        "Force           : false",
        "Total impacted  : 1002 (success: 1002, failed: 0)",
        "Impacted package/Version",
        "  app@1.0",
        "  app@1.1",
        "... and 1000 more Versions, will be impacted (not listed above)",
    ]
    nothing = BulkDeleteResult(registry="gen", pattern="zz*")
    assert delete_lines(nothing)[-1] == "No package/Version found to be deleted matching given pattern"


def test_timestamps_are_utc_dates() -> None:
    assert format_timestamp(0) == "1970-01-01 00:00:00"
    assert format_timestamp("1700000000000") == "2023-11-14 22:13:20"
    assert format_timestamp(None) == "-"
    assert format_timestamp("yesterday") == "yesterday"
