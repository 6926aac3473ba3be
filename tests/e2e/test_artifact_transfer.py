"""``hc artifact push generic`` / ``pull generic`` end to end, against the real registry.

Most tests use the embedded default (no configuration, HOME and HC_HOME in tmp_path); those that
count requests or need a wrong key run the registry in a background thread and point hc at it
with --api-url/--token.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hc.cli.render import human_size

from ._artifact_support import LiveRegistry, live_registry, make_tree
from .conftest import HcRunner, Sandbox, lines


@pytest.fixture
def registry(hc: HcRunner) -> str:
    created = hc("-q", "registry", "create", "gen", "--package-type", "GENERIC")
    assert created.exit_code == 0, created
    return "gen"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveRegistry]:
    with live_registry(tmp_path / "live-data") as server:
        yield server


def _tree(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    src = tmp_path / "src"
    files = make_tree(src)
    return src, files


def no_part_files(root: Path) -> bool:
    return not [p for p in root.rglob("*.part")]


def _results(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_push_a_tree_then_pull_it_back_byte_for_byte(
    hc: HcRunner, registry: str, tmp_path: Path, sandbox: Sandbox
) -> None:
    src, files = _tree(tmp_path)
    results = tmp_path / "push.jsonl"
    pushed = hc(
        "artifact", "push", "generic", registry, str(src), "--name", "pkg", "--version", "1.0.0",
        "--include-hidden", "--results", str(results),
    )  # fmt: skip
    assert pushed.exit_code == 0, pushed
    assert "push: 7 succeeded, 0 skipped, 0 failed" in pushed.stderr
    # hidden files come along with --include-hidden; every path keeps the directory's name
    expected = {f"src/{rel}": data for rel, data in files.items()}
    expected["src/.hidden"] = b"secret\n"
    expected["src/.dotdir/inside.txt"] = b"inside\n"
    records = {r["path"]: r for r in _results(results)}
    assert set(records) == set(expected)
    for path, data in expected.items():
        record = records[path]
        assert (record["status"], record["size"], record["error"]) == ("done", len(data), None)
        assert record["sha256"] == hashlib.sha256(data).hexdigest()

    # the listing shows every file with its size and all four digests
    listed = hc("artifact", "list", "--registry", registry, "--package", "pkg", "--version", "1.0.0",
                "--format", "json")  # fmt: skip
    assert listed.exit_code == 0, listed
    entries = {e["path"]: e for e in json.loads(listed.stdout)}
    assert set(entries) == set(expected)
    for path, data in expected.items():
        entry = entries[path]
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["md5"] == hashlib.md5(data).hexdigest()
        assert entry["sha1"] == hashlib.sha1(data).hexdigest()
        assert entry["sha512"] == hashlib.sha512(data).hexdigest()
    table = hc("artifact", "list", "--registry", registry, "--package", "pkg", "--version", "1.0.0")
    big = next(line for line in lines(table.stdout) if line.startswith("src/big.bin "))
    assert big.split()[1:3] == ["3.0", "MiB"]  # human sizes, never 3.1e+06

    # pull the whole version: identical bytes, nothing left half-written
    out = tmp_path / "out"
    pulled = hc("art", "pull", "generic", registry, "pkg/1.0.0", str(out))
    assert pulled.exit_code == 0, pulled
    assert "pull: 7 succeeded" in pulled.stderr
    got = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == expected
    assert no_part_files(out)

    # pulling again finds everything in place
    again = hc("art", "pull", "generic", registry, "pkg/1.0.0", str(out))
    assert again.exit_code == 0, again
    assert "pull: 0 succeeded, 7 skipped, 0 failed" in again.stderr

    # a second version, then the whole package: one folder per version
    hc("-q", "art", "push", "generic", registry, str(src / "a.txt"), "--name", "pkg", "--version", "2.0")
    everything = tmp_path / "all"
    whole = hc("art", "pull", "generic", registry, "pkg", str(everything))
    assert whole.exit_code == 0, whole
    got = {p.relative_to(everything).as_posix() for p in everything.rglob("*") if p.is_file()}
    assert got == {f"1.0.0/{path}" for path in expected} | {"2.0/a.txt"}
    # no journal is left behind by jobs that completed
    assert not list((sandbox.hc_home / "jobs").glob("*.db"))


def test_push_skips_hidden_files_and_maps_files_to_their_base_name(
    hc: HcRunner, registry: str, tmp_path: Path
) -> None:
    src, files = _tree(tmp_path)
    pushed = hc("art", "push", "generic", registry, str(src), str(src / "a.txt"), "--name", "p")
    assert pushed.exit_code == 0, pushed
    listed = hc("art", "list", "--registry", registry, "--package", "p", "--version", "1.0.0",
                "--format", "json")  # fmt: skip
    paths = {e["path"] for e in json.loads(listed.stdout)}
    # the default version is 1.0.0; a lone file goes by its base name
    assert paths == {f"src/{rel}" for rel in files} | {"a.txt"}


def test_a_second_push_sends_nothing_and_overwrite_sends_everything(
    hc: HcRunner, live: LiveRegistry, tmp_path: Path
) -> None:
    src, files = _tree(tmp_path)
    assert hc(*live.args(), "-q", "registry", "create", "gen", "--package-type", "GENERIC").exit_code == 0
    first = hc(*live.args(), "art", "push", "generic", "gen", str(src), "--name", "p", "--version", "1")
    assert first.exit_code == 0, first
    assert live.uploads() == len(files)

    second = hc(*live.args(), "art", "push", "generic", "gen", str(src), "--name", "p", "--version", "1")
    assert second.exit_code == 0, second
    assert live.uploads() == len(files)  # not one more upload
    assert f"push: 0 succeeded, {len(files)} skipped, 0 failed" in second.stderr

    forced = hc(*live.args(), "art", "push", "generic", "gen", str(src), "--name", "p", "--version", "1",
                "--overwrite", "--format", "json")  # fmt: skip
    assert forced.exit_code == 0, forced
    assert live.uploads() == 2 * len(files)
    summary = json.loads(forced.stdout)
    assert summary["succeeded"] == len(files)
    assert summary["bytes"] == sum(len(d) for d in files.values())
    assert (summary["command"], summary["registry"], summary["package"], summary["version"]) == (
        "push",
        "gen",
        "p",
        "1",
    )


def test_pull_of_one_file_into_a_directory_or_onto_a_file(
    hc: HcRunner, registry: str, tmp_path: Path
) -> None:
    src, files = _tree(tmp_path)
    assert (
        hc("-q", "art", "push", "generic", registry, str(src), "--name", "p", "--version", "1").exit_code == 0
    )

    new_dir = tmp_path / "new" / "dir"
    one = hc("art", "pull", "generic", registry, "p/1/src/nested/deeper/b.txt", str(new_dir))
    assert one.exit_code == 0, one
    assert (new_dir / "b.txt").read_bytes() == files["nested/deeper/b.txt"]
    assert lines(one.stdout) == [f"Saved to {new_dir / 'b.txt'} ({len(files['nested/deeper/b.txt'])} bytes)"]

    existing_dir = tmp_path / "existing"
    existing_dir.mkdir()
    name_with_space = hc(
        "art", "pull", "generic", registry, "p/1/src/nested/c with space.txt", str(existing_dir)
    )
    assert name_with_space.exit_code == 0, name_with_space
    assert (existing_dir / "c with space.txt").read_bytes() == b"charlie\n"

    target = tmp_path / "target.bin"
    target.write_bytes(b"old content")
    onto = hc("art", "pull", "generic", registry, "p/1/src/big.bin", str(target))
    assert onto.exit_code == 0, onto
    assert target.read_bytes() == files["big.bin"]

    missing = hc("art", "pull", "generic", registry, "p/1/src/nope.txt", str(tmp_path / "x"))
    assert missing.exit_code == 1
    assert lines(missing.stderr)[-1] == "error: file 'src/nope.txt' not found in p/1 of registry 'gen'"
    assert hc("art", "pull", "generic", registry, "p/9", str(tmp_path / "y")).exit_code == 1
    assert hc("art", "pull", "generic", registry, "nope", str(tmp_path / "z")).exit_code == 1


def test_dry_run_prints_the_plan_and_changes_nothing(
    hc: HcRunner, registry: str, tmp_path: Path, sandbox: Sandbox
) -> None:
    src, files = _tree(tmp_path)
    planned = hc("art", "push", "generic", registry, str(src), "--name", "p", "--dry-run")
    assert planned.exit_code == 0, planned
    plan = sorted(lines(planned.stdout))
    assert plan == sorted(f"upload    src/{rel}  ({human_size(len(data))})" for rel, data in files.items())
    assert "nothing was changed" in planned.stderr
    listed = hc("art", "list", "--registry", registry, "--format", "json")
    assert json.loads(listed.stdout) == []
    assert not (sandbox.hc_home / "jobs").exists()

    hc("-q", "art", "push", "generic", registry, str(src / "a.txt"), "--name", "p")
    out = tmp_path / "out"
    pulled = hc("art", "pull", "generic", registry, "p/1.0.0", str(out), "--dry-run")
    assert pulled.exit_code == 0, pulled
    assert lines(pulled.stdout) == ["download  a.txt  (6 B)"]
    assert not out.exists()


def test_failed_items_exit_1_and_retry_failed_redoes_only_them(
    hc: HcRunner, live: LiveRegistry, tmp_path: Path
) -> None:
    remote = live.args()
    assert hc(*remote, "-q", "registry", "create", "gen", "--package-type", "GENERIC").exit_code == 0
    src, files = _tree(tmp_path)
    # the registry already holds other bytes at one of the paths: that file conflicts (409)
    other = tmp_path / "other" / "src"
    other.mkdir(parents=True)
    (other / "a.txt").write_bytes(b"different\n")
    assert hc(*remote, "-q", "art", "push", "generic", "gen", str(other), "--name", "p").exit_code == 0
    uploads_before = live.uploads()

    results = tmp_path / "results.jsonl"
    pushed = hc(*remote, "art", "push", "generic", "gen", str(src), "--name", "p", "--results", str(results))
    assert pushed.exit_code == 1, pushed
    failed = [r for r in _results(results) if r["status"] == "failed"]
    assert [r["path"] for r in failed] == ["src/a.txt"]
    assert "409" in str(failed[0]["error"])
    assert f"error: src/a.txt: {failed[0]['error']}" in pushed.stderr
    assert lines(pushed.stderr)[-1] == (
        f"error: 1 of {len(files)} items failed (retry them with --retry-failed {results})"
    )
    assert live.uploads() == uploads_before + len(files)

    retried = hc(*remote, "art", "push", "generic", "gen", str(src), "--name", "p",
                 "--retry-failed", str(results), "--overwrite")  # fmt: skip
    assert retried.exit_code == 0, retried
    assert live.uploads() == uploads_before + len(files) + 1  # only the failed file went again
    out = tmp_path / "out"
    assert hc(*remote, "-q", "art", "pull", "generic", "gen", "p/1.0.0/src/a.txt", str(out)).exit_code == 0
    assert (out / "a.txt").read_bytes() == files["a.txt"]


def test_push_to_a_registry_that_is_not_generic_fails_every_item(hc: HcRunner, tmp_path: Path) -> None:
    assert hc("-q", "registry", "create", "dock", "--package-type", "DOCKER").exit_code == 0
    src, files = _tree(tmp_path)
    results = tmp_path / "r.jsonl"
    pushed = hc("art", "push", "generic", "dock", str(src), "--name", "p", "--results", str(results))
    assert pushed.exit_code == 1, pushed
    assert {r["status"] for r in _results(results)} == {"failed"}
    assert len(_results(results)) == len(files)
    assert f"push: 0 succeeded, 0 skipped, {len(files)} failed" in pushed.stderr


def test_a_wrong_key_exits_3(hc: HcRunner, live: LiveRegistry, tmp_path: Path) -> None:
    src = tmp_path / "f.txt"
    src.write_text("x")
    bad = f"pat.{live.account}.nokey.nosecret"
    pushed = hc(*live.args(token=bad), "art", "push", "generic", "gen", str(src), "--name", "p")
    assert pushed.exit_code == 3, pushed
    assert live.count("PUT") == 0
    pulled = hc(*live.args(token=bad), "art", "pull", "generic", "gen", "p/1", str(tmp_path / "out"))
    assert pulled.exit_code == 3, pulled


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["push", "generic", "gen", "{missing}", "--name", "p"], "no such file or directory"),
        (["push", "generic", "gen", "{src}/*.nomatch", "--name", "p"], "no files match"),
        (["push", "generic", "Bad_Registry", "{src}", "--name", "p"], "invalid registry identifier"),
        (["push", "generic", "gen", "{src}", "--name", "a/b"], "'/' is not allowed"),
        (["push", "generic", "gen", "{src}", "--name", "p", "--version", ".."], "invalid version name"),
        (["push", "generic", "gen", "{src}"], "Missing option '-n' / '--name'"),
        (["push", "generic", "gen", "{src}", "--name", "p", "--concurrency", "0"], "--concurrency"),
        (["pull", "generic", "gen", "p//f", "{out}"], "invalid artifact 'p//f'"),
        (["pull", "generic", "gen", "p/1", "{src}/a.txt"], "exists and is not a directory"),
        (["push", "generic", "gen", "{src}", "--name", "p", "--retry-failed", "{src}/a.txt"],
         "not a results line"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2(
    hc: HcRunner, registry: str, tmp_path: Path, args: list[str], message: str
) -> None:
    src, _ = _tree(tmp_path)
    values = {"src": str(src), "missing": str(tmp_path / "missing"), "out": str(tmp_path / "out")}
    result = hc("artifact", *[a.format(**values) for a in args])
    assert result.exit_code == 2, result
    assert message in result.stderr


def test_an_unknown_registry_is_one_clear_error(hc: HcRunner, tmp_path: Path) -> None:
    src = tmp_path / "f.txt"
    src.write_text("x")
    pushed = hc("art", "push", "generic", "nope", str(src), "--name", "p")
    assert (pushed.exit_code, lines(pushed.stderr)[-1]) == (1, "error: registry 'nope' not found")


def test_small_files_come_in_batches_each_still_verified(
    hc: HcRunner, live: LiveRegistry, tmp_path: Path
) -> None:
    """An hc registry answers many small files to a request (hc.protocol.batchread): a pull of 60
    small files needs a handful of requests, not 60 GETs, and a file whose stored bytes rotted is
    still caught by its own sha256 and never written."""
    src = tmp_path / "src"
    files = {f"d{i % 3}/f{i:02d}.bin": hashlib.sha256(str(i).encode()).digest() * (i + 1) for i in range(60)}
    files["rotten.bin"] = bytes(range(256)) * 400  # 100 KiB: kept as a blob file, not in the database
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    assert hc(*live.args(), "-q", "registry", "create", "gen", "--package-type", "GENERIC").exit_code == 0
    pushed = hc(
        *live.args(), "-q", "artifact", "push", "generic", "gen", str(src), "--name", "p", "--version", "1"
    )
    assert pushed.exit_code == 0, pushed

    out = tmp_path / "out"
    gets, posts = live.count("GET"), live.count("POST")
    pulled = hc(*live.args(), "artifact", "pull", "generic", "gen", "p/1", str(out))
    assert pulled.exit_code == 0, pulled
    got = {p.relative_to(out / "src").as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == files
    assert live.count("GET") == gets  # not one file by GET
    assert 1 <= live.count("POST") - posts <= 8
    plain = hc(
        *live.args(), "-q", "artifact", "pull", "generic", "gen", "p/1", str(tmp_path / "plain"), "--no-batch"
    )
    assert plain.exit_code == 0, plain
    assert live.count("GET") - gets >= len(files)  # --no-batch: a GET per file

    (blob,) = (tmp_path / "live-data").rglob(hashlib.sha256(files["rotten.bin"]).hexdigest())
    with blob.open("r+b") as f:
        f.seek(5000)
        f.write(b"\x00\x01\x02")
    again = tmp_path / "again"
    pulled = hc(*live.args(), "artifact", "pull", "generic", "gen", "p/1", str(again))
    assert pulled.exit_code == 1, pulled
    assert "rotten.bin" in pulled.stderr and "sha256 mismatch" in pulled.stderr, pulled.stderr
    assert not (again / "src" / "rotten.bin").exists()
    assert len([p for p in again.rglob("*") if p.is_file()]) == 60
    assert no_part_files(again)


def test_small_files_go_up_in_batches_each_under_the_re_upload_rule(
    hc: HcRunner, live: LiveRegistry, tmp_path: Path
) -> None:
    """An hc registry takes many small files to a request (hc.protocol.batchwrite): a push of 80
    small files sends no PUT at all, and each file still gets its own verdict (a changed file is
    refused with 409 unless --overwrite, the others are identical)."""
    src = tmp_path / "src"
    files = {f"d{i % 4}/f{i:02d}.bin": hashlib.sha256(str(i).encode()).digest() * (i + 1) for i in range(80)}
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    assert hc(*live.args(), "-q", "registry", "create", "gen", "--package-type", "GENERIC").exit_code == 0
    push = (*live.args(), "artifact", "push", "generic", "gen", str(src), "--name", "p", "--version", "1")
    posts = live.count("POST")
    first = hc(*push)
    assert first.exit_code == 0, first
    assert live.count("PUT") == 0
    assert 1 <= live.count("POST") - posts <= 10
    out = tmp_path / "out"
    assert hc(*live.args(), "-q", "artifact", "pull", "generic", "gen", "p/1", str(out)).exit_code == 0
    assert {
        p.relative_to(out / "src").as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()
    } == files

    (src / "d1" / "f01.bin").write_bytes(b"changed")
    refused = hc(*push)
    assert refused.exit_code == 1, refused
    assert "d1/f01.bin" in refused.stderr and "409" in refused.stderr, refused.stderr
    replaced = hc(*push, "--overwrite")
    assert replaced.exit_code == 0, replaced
    again = tmp_path / "again"
    assert hc(*live.args(), "-q", "artifact", "pull", "generic", "gen", "p/1", str(again)).exit_code == 0
    assert (again / "src" / "d1" / "f01.bin").read_bytes() == b"changed"
    assert live.count("PUT") == 0
    # --no-batch: one PUT per file, as the Go CLI sends them
    plain = hc(*live.args(), "artifact", "push", "generic", "gen", str(src), "--name", "p", "--version", "2",
               "--no-batch")  # fmt: skip
    assert plain.exit_code == 0, plain
    assert live.count("PUT") == len(files)
