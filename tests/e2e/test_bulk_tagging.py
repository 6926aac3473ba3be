"""``hc artifact metadata set|delete`` with selectors, against the real registry over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._artifact_support import LiveRegistry, live_registry
from .conftest import HcRunner, Sandbox

PACKAGES = ("app", "api", "lib")
VERSIONS = ("1.0", "1.1", "2.0")


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRegistry]:
    data_dir = tmp_path_factory.mktemp("tag-store")
    with live_registry(data_dir) as registry:
        _populate(registry, tmp_path_factory.mktemp("tag-files"))
        yield registry


def _populate(registry: LiveRegistry, tmp: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "HC_"))}
    env["HOME"] = str(tmp)
    base = [sys.executable, "-m", "hc", "-q", *registry.args()]
    subprocess.run([*base, "registry", "create", "tags", "--package-type", "GENERIC"], env=env, check=True)
    (tmp / "f.txt").write_text("x")
    # one push per package: versions differ, so push the same file under each version name
    for package in PACKAGES:
        for version in VERSIONS:
            subprocess.run(
                [
                    *base,
                    "artifact",
                    "push",
                    "generic",
                    "tags",
                    str(tmp / "f.txt"),
                    "-n",
                    package,
                    "--version",
                    version,
                ],
                env=env,
                check=True,
                capture_output=True,
            )


def _meta(
    hc: HcRunner, registry: LiveRegistry, package: str, version: str | None = None
) -> set[tuple[str, str]]:
    args = ["--package", package] + (["--version", version] if version else [])
    run = hc(*registry.args(), "--format", "json", "artifact", "metadata", "get", "--registry", "tags", *args)
    assert run.exit_code == 0, run
    return {(item["key"], item["value"]) for item in json.loads(run.stdout or "[]")}


def _results(path: Path) -> dict[str, dict[str, object]]:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by_target = {str(r["target"]): r for r in records}
    assert len(by_target) == len(records)  # one line per target
    return by_target


def test_dry_run_lists_exactly_what_would_change_and_changes_nothing(
    hc: HcRunner, populated: LiveRegistry, tmp_path: Path
) -> None:
    reg = populated
    run = hc(
        *reg.args(),
        "artifact",
        "metadata",
        "set",
        "--registry",
        "tags",
        "--package",
        "a*",
        "--version",
        "1.?",
        "--metadata",
        "dry:run",
        "--dry-run",
    )
    assert run.exit_code == 0, run
    assert sorted(run.stdout.splitlines()) == [
        f"would set dry:run on {p}/{v}" for p in ("api", "app") for v in ("1.0", "1.1")
    ]
    assert ("dry", "run") not in _meta(hc, reg, "app", "1.0")


def test_glob_set_then_where_delete_with_results(
    hc: HcRunner, populated: LiveRegistry, tmp_path: Path
) -> None:
    reg = populated
    results = tmp_path / "r.jsonl"
    run = hc(
        *reg.args(),
        "artifact",
        "metadata",
        "set",
        "--registry",
        "tags",
        "--package",
        "*",
        "--all-versions",
        "--metadata",
        "team:core,tier:gold",
        "--results",
        str(results),
        "--concurrency",
        "4",
    )
    assert run.exit_code == 0, run
    got = _results(results)
    assert set(got) == {f"{p}/{v}" for p in PACKAGES for v in VERSIONS}
    assert {r["status"] for r in got.values()} == {"done"}
    assert {("team", "core"), ("tier", "gold")} <= _meta(hc, reg, "lib", "2.0")
    assert "9 changed" in run.stderr

    # --where on the key being deleted: the listing must not shift under the job
    run = hc(
        *reg.args(),
        "artifact",
        "metadata",
        "delete",
        "--registry",
        "tags",
        "--package",
        "*",
        "--all-versions",
        "--where",
        "team:core",
        "--metadata",
        "team:core",
    )
    assert run.exit_code == 0, run
    for p in PACKAGES:
        for v in VERSIONS:
            meta = _meta(hc, reg, p, v)
            assert ("team", "core") not in meta and ("tier", "gold") in meta

    # a server-side --where filter: only versions with tier:gold AND version 2.0
    run = hc(
        *reg.args(),
        "artifact",
        "metadata",
        "set",
        "--registry",
        "tags",
        "--package",
        "*",
        "--version",
        "2.0",
        "--where",
        "tier:gold",
        "--metadata",
        "release:yes",
        "--dry-run",
    )
    assert sorted(run.stdout.splitlines()) == [f"would set release:yes on {p}/2.0" for p in sorted(PACKAGES)]


def test_package_level_targets_and_from_file_with_a_failure_then_resume(
    hc: HcRunner, populated: LiveRegistry, tmp_path: Path
) -> None:
    reg = populated
    run = hc(
        *reg.args(),
        "artifact",
        "metadata",
        "set",
        "--registry",
        "tags",
        "--package",
        "l*",
        "--metadata",
        "kind:library",
    )
    assert run.exit_code == 0, run
    assert ("kind", "library") in _meta(hc, reg, "lib")
    assert ("kind", "library") not in _meta(hc, reg, "lib", "1.0")

    targets = tmp_path / "targets.jsonl"
    targets.write_text(
        '{"package": "app", "version": "1.0"}\n{"package": "nope", "version": "9"}\n\n{"package": "api"}\n'
    )
    results = tmp_path / "r.jsonl"
    args = (
        *reg.args(),
        "artifact",
        "metadata",
        "set",
        "--registry",
        "tags",
        "--from",
        str(targets),
        "--metadata",
        "from:file",
        "--results",
        str(results),
    )
    first = hc(*args)
    assert first.exit_code == 1, first
    got = _results(results)
    assert got["nope/9"]["status"] == "failed" and got["app/1.0"]["status"] == "done"
    assert ("from", "file") in _meta(hc, reg, "api")
    # the journal remembers what finished: the re-run redoes only the failure
    second = hc(*args)
    assert second.exit_code == 1
    again = _results(results)
    assert again["app/1.0"]["action"] == "done-before" and again["api"]["action"] == "done-before"
    assert again["nope/9"]["status"] == "failed"


def test_single_target_form_is_unchanged(hc: HcRunner, populated: LiveRegistry) -> None:
    reg = populated
    run = hc(
        *reg.args(),
        "artifact",
        "metadata",
        "set",
        "--registry",
        "tags",
        "--package",
        "app",
        "--version",
        "2.0",
        "--metadata",
        "one:off",
    )
    assert run.exit_code == 0, run
    assert run.stdout.strip() == "Set 1 metadata pair on version app/2.0 in registry 'tags'"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--package", "a*", "--shard", "4/4"), "0-based"),
        (("--package", "a*", "--version", "1", "--all-versions"), "give one"),
        (("--package", "a[b]", "--all-versions"), "wildcards"),
        (("--from", "x.jsonl", "--package", "a"), "--from"),
        (("--package", "a*", "--where", "novalue"), "key:value"),
    ],
)
def test_bad_selectors_exit_2(
    hc: HcRunner, populated: LiveRegistry, extra: tuple[str, ...], message: str
) -> None:
    run = hc(
        *populated.args(), "artifact", "metadata", "set", "--registry", "tags", *extra, "--metadata", "a:b"
    )
    assert run.exit_code == 2, run
    assert message in run.stderr


def test_four_shards_in_separate_processes_cover_the_single_run_exactly(
    populated: LiveRegistry, sandbox: Sandbox, tmp_path: Path
) -> None:
    reg = populated
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "HC_"))}
    env.update(sandbox.env)
    base = [
        sys.executable,
        "-m",
        "hc",
        "-q",
        *reg.args(),
        "artifact",
        "metadata",
        "set",
        "--registry",
        "tags",
        "--package",
        "*",
        "--all-versions",
        "--metadata",
        "shard:test",
    ]
    single = tmp_path / "single.jsonl"
    subprocess.run([*base, "--dry-run", "--results", str(single)], env=env, check=True, capture_output=True)
    procs = [
        subprocess.Popen([*base, "--shard", f"{k}/4", "--results", str(tmp_path / f"s{k}.jsonl")], env=env)
        for k in range(4)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    shards = [set(_results(tmp_path / f"s{k}.jsonl")) for k in range(4)]
    union = set().union(*shards)
    assert sum(len(s) for s in shards) == len(union)  # no overlap
    assert union == set(_results(single)) and len(union) == len(PACKAGES) * len(VERSIONS)  # no gap
