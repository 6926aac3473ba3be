"""``hc artifact list/get/delete/metadata/copy/create`` end to end, against the embedded default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import HcRunner, lines


@pytest.fixture
def seeded(hc: HcRunner, tmp_path: Path) -> Path:
    """Registry ``gen`` with packages ``app`` (versions 1.0 and 2.0) and ``application`` (1.0)."""
    assert hc("-q", "registry", "create", "gen", "--package-type", "GENERIC").exit_code == 0
    assert hc("-q", "registry", "create", "other", "--package-type", "GENERIC").exit_code == 0
    files = tmp_path / "files"
    files.mkdir()
    (files / "a.txt").write_bytes(b"a" * 1500)
    (files / "b.txt").write_bytes(b"b")
    for package, version in (("app", "1.0"), ("app", "2.0"), ("application", "1.0")):
        pushed = hc(
            "-q", "art", "push", "generic", "gen", str(files), "--name", package, "--version", version
        )
        assert pushed.exit_code == 0, pushed
    return files


def _json(hc: HcRunner, *args: str) -> list[dict[str, object]]:
    result = hc(*args, "--format", "json")
    assert result.exit_code == 0, result
    loaded = json.loads(result.stdout)
    assert isinstance(loaded, list)
    return loaded


def test_list_artifacts_versions_and_files(hc: HcRunner, seeded: Path) -> None:
    rows = _json(hc, "artifact", "list")
    assert sorted((r["name"], r["version"], r["registryIdentifier"]) for r in rows) == [
        ("app", "1.0", "gen"),
        ("app", "2.0", "gen"),
        ("application", "1.0", "gen"),
    ]
    assert _json(hc, "artifact", "list", "--registry", "other") == []
    table = hc("artifact", "list", "--registry", "gen")
    assert lines(table.stdout)[0].split() == [
        "Artifact", "Version", "Artifact", "Key", "Package", "Type", "Registry", "Download", "Count",
    ]  # fmt: skip

    versions = _json(hc, "artifact", "list", "--registry", "gen", "--package", "app")
    assert sorted(v["name"] for v in versions) == ["1.0", "2.0"]
    assert {v["fileCount"] for v in versions} == {2}

    files = _json(hc, "artifact", "list", "--registry", "gen", "--package", "app", "--version", "2.0")
    assert [(f["path"], f["size"]) for f in sorted(files, key=lambda f: str(f["path"]))] == [
        ("files/a.txt", 1500),
        ("files/b.txt", 1),
    ]
    assert all(isinstance(f["sha256"], str) and len(f["sha256"]) == 64 for f in files)

    # one page, with the Go CLI's footer
    page = hc("artifact", "list", "--page", "0", "--page-size", "2")
    assert page.exit_code == 0, page
    assert len(lines(page.stdout)) == 2 + 2 + 1
    assert lines(page.stdout)[-1] == "Page 0 of 2 (Total: 3)"
    last = hc("artifact", "list", "--page", "1", "--page-size", "2", "--format", "json")
    assert len(json.loads(last.stdout)) == 1

    missing = hc("artifact", "list", "--registry", "gen", "--package", "nope")
    assert (missing.exit_code, lines(missing.stderr)[-1]) == (
        1,
        "error: artifact 'nope' not found in registry 'gen'",
    )
    assert hc("artifact", "list", "--package", "app").exit_code == 2
    assert hc("artifact", "list", "--registry", "gen", "--version", "1.0").exit_code == 2


def test_get_matches_the_exact_name_only(hc: HcRunner, seeded: Path) -> None:
    rows = _json(hc, "artifact", "get", "app")
    assert sorted((r["name"], r["version"]) for r in rows) == [("app", "1.0"), ("app", "2.0")]
    assert _json(hc, "artifact", "get", "app", "--registry", "gen") == rows
    missing = hc("artifact", "get", "ap")
    assert (missing.exit_code, lines(missing.stderr)[-1]) == (1, "error: artifact 'ap' not found")


def test_delete_shows_a_dry_run_and_deletes_only_when_confirmed(hc: HcRunner, seeded: Path) -> None:
    refused = hc("artifact", "delete", "app*", "--registry", "gen")
    assert refused.exit_code == 2, refused
    assert lines(refused.stdout)[:7] == [
        "2 packages match and would be deleted (dry run)",
        "Registry        : gen",
        "Version pattern :",
        "Dry-run         : true",
        "Force           : false",
        "Total impacted  : 2 (success: 2, failed: 0)",
        "Impacted package/Version",
    ]
    assert sorted(line.strip() for line in lines(refused.stdout)[7:]) == ["app", "application"]
    assert "pass --yes" in refused.stderr
    assert len(_json(hc, "artifact", "list")) == 3  # nothing deleted

    only_dry = hc("artifact", "delete", "app", "--registry", "gen", "--version", "1.?", "--dry-run")
    assert only_dry.exit_code == 0, only_dry
    assert len(_json(hc, "artifact", "list")) == 3

    versions = hc("artifact", "delete", "app", "--registry", "gen", "--version", "1.?", "--yes")
    assert versions.exit_code == 0, versions
    assert lines(versions.stdout)[-2:] == [
        "Deleted        : 1 / 1 (failed: 0)",
        "✅ Bulk delete completed successfully",
    ]
    assert sorted((r["name"], r["version"]) for r in _json(hc, "artifact", "list")) == [
        ("app", "2.0"),
        ("application", "1.0"),
    ]

    nothing = hc("artifact", "delete", "zzz*", "--registry", "gen", "--yes")
    assert nothing.exit_code == 0, nothing
    assert "No package/Version found to be deleted matching given pattern" in nothing.stdout

    bad_pattern = hc("artifact", "delete", "app[12]", "--registry", "gen", "--yes")
    assert bad_pattern.exit_code == 2
    assert "only the wildcards * and ? are supported" in bad_pattern.stderr


def test_metadata_on_a_package_and_on_a_version(hc: HcRunner, seeded: Path) -> None:
    base = ("artifact", "metadata")
    target = ("--registry", "gen", "--package", "app")
    assert hc(*base, "set", *target, "--metadata", "team:core,tier:gold").exit_code == 0
    assert hc(*base, "set", *target, "--version", "1.0", "--metadata", "qa:passed").exit_code == 0

    on_package = _json(hc, *base, "get", *target)
    assert sorted((m["key"], m["value"]) for m in on_package) == [("team", "core"), ("tier", "gold")]
    on_version = _json(hc, *base, "get", *target, "--version", "1.0")
    assert [(m["key"], m["value"]) for m in on_version] == [("qa", "passed")]
    assert _json(hc, *base, "get", *target, "--version", "2.0") == []
    assert hc(*base, "get", *target, "--version", "2.0").stdout.strip() == "No metadata found"

    deleted = hc(*base, "delete", *target, "--metadata", "tier:gold")
    assert deleted.exit_code == 0, deleted
    assert deleted.stdout.strip() == "Deleted 1 metadata pair from package 'app' in registry 'gen'"
    assert [(m["key"], m["value"]) for m in _json(hc, *base, "get", *target)] == [("team", "core")]
    assert hc(*base, "delete", *target, "--version", "1.0", "--metadata", "qa:passed").exit_code == 0
    assert _json(hc, *base, "get", *target, "--version", "1.0") == []

    bad = hc(*base, "set", *target, "--metadata", "novalue")
    assert bad.exit_code == 2 and "expected key:value" in bad.stderr
    bad_key = hc(*base, "get", *target, "--artifact-key", "broken")
    assert bad_key.exit_code == 2 and "expected key=value" in bad_key.stderr
    missing = hc(*base, "get", "--registry", "gen", "--package", "nope")
    assert missing.exit_code == 1


def test_copy_a_version_to_another_registry(hc: HcRunner, seeded: Path, tmp_path: Path) -> None:
    copied = hc("artifact", "copy", "gen/app/2.0", "other")
    assert copied.exit_code == 0, copied
    assert copied.stdout.strip() == "✅ Successfully Copied package from  gen/app/2.0 to other"
    files = _json(hc, "artifact", "list", "--registry", "other", "--package", "app", "--version", "2.0")
    assert sorted(f["path"] for f in files) == ["files/a.txt", "files/b.txt"]
    out = tmp_path / "out"
    assert hc("-q", "art", "pull", "generic", "other", "app/2.0", str(out)).exit_code == 0
    assert (out / "files" / "a.txt").read_bytes() == b"a" * 1500

    for bad in ("gen/app", "gen//2.0", "/app/2.0", "gen/app/"):
        result = hc("artifact", "copy", bad, "other")
        assert result.exit_code == 2, (bad, result)
    missing = hc("artifact", "copy", "gen/app/9.9", "other")
    assert missing.exit_code == 1


def test_create_says_artifacts_are_pushed(hc: HcRunner) -> None:
    result = hc("artifact", "create")
    assert result.exit_code == 2
    assert lines(result.stderr) == [
        "error: artifacts are created by pushing them to a registry. Use 'hc artifact push' command"
    ]


def test_delete_asks_on_a_terminal(hc: HcRunner, seeded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hc.cli.artifact as artifact_cli

    monkeypatch.setattr(artifact_cli, "prompt_allowed", lambda: True)
    declined = hc("artifact", "delete", "application", "--registry", "gen", input="n\n")
    assert declined.exit_code == 1, declined
    assert "Above Packages will be soft deleted. Do you want to proceed? [y/N]" in declined.stderr
    assert len(_json(hc, "artifact", "list")) == 3

    forced = hc("artifact", "delete", "application", "--registry", "gen", "--force", input="y\ny\n")
    assert forced.exit_code == 0, forced
    assert "Are you sure you want to proceed with force delete ?" in forced.stderr
    assert sorted(str(r["name"]) for r in _json(hc, "artifact", "list")) == ["app", "app"]
