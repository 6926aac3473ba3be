"""``hc artifact copy`` with globs, on one server and across two real servers."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._artifact_support import LiveRegistry, live_registry
from .conftest import HcRunner

FILES = {"a.txt": b"alpha\n", "dir/b.bin": os.urandom(300 * 1024), "dir/deep/c.bin": os.urandom(70_000)}


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[LiveRegistry, LiveRegistry]]:
    with live_registry(tmp_path / "src-store") as src, live_registry(tmp_path / "dst-store") as dst:
        yield src, dst


def _seed(hc: HcRunner, reg: LiveRegistry, tmp: Path) -> None:
    assert hc(*reg.args(), "registry", "create", "src", "--package-type", "GENERIC").exit_code == 0
    tree = tmp / "tree"
    for rel, data in FILES.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(data)
    for package in ("app", "tool"):
        for version in ("1.0", "2.0"):
            run = hc(
                *reg.args(),
                "-q",
                "artifact",
                "push",
                "generic",
                "src",
                str(tree / "a.txt"),
                str(tree / "dir"),
                "-n",
                package,
                "--version",
                version,
            )
            assert run.exit_code == 0, run
    run = hc(
        *reg.args(),
        "artifact",
        "metadata",
        "set",
        "--registry",
        "src",
        "--package",
        "app",
        "--metadata",
        "owner:me",
    )
    assert run.exit_code == 0, run
    run = hc(
        *reg.args(),
        "artifact",
        "metadata",
        "set",
        "--registry",
        "src",
        "--package",
        "app",
        "--version",
        "1.0",
        "--metadata",
        "stage:prod",
    )
    assert run.exit_code == 0, run


def _files(hc: HcRunner, reg: LiveRegistry, registry: str, package: str, version: str) -> dict[str, str]:
    run = hc(
        *reg.args(),
        "--format",
        "json",
        "artifact",
        "list",
        "--registry",
        registry,
        "--package",
        package,
        "--version",
        version,
    )
    assert run.exit_code == 0, run
    return {item["path"]: item["sha256"] for item in json.loads(run.stdout)}


def _expected() -> dict[str, str]:
    return {
        "a.txt": hashlib.sha256(FILES["a.txt"]).hexdigest(),
        **{f"dir/{k[4:]}": hashlib.sha256(v).hexdigest() for k, v in FILES.items() if k.startswith("dir/")},
    }


def test_cross_server_copy_streams_verifies_and_carries_metadata(
    hc: HcRunner, two_servers: tuple[LiveRegistry, LiveRegistry], tmp_path: Path
) -> None:
    src, dst = two_servers
    _seed(hc, src, tmp_path)
    to = ("--to-api-url", dst.url)
    env = {"HC_TO_API_KEY": dst.token}
    # the destination registry must exist, or be created on request
    missing = hc(*src.args(), "artifact", "copy", "src/a*/*", "dest", *to, env=env)
    assert missing.exit_code == 1 and "--create-registry" in missing.stderr

    dry = hc(
        *src.args(), "artifact", "copy", "src/a*/*", "dest", *to, "--create-registry", "--dry-run", env=env
    )
    assert dry.exit_code == 0, dry
    assert sorted(dry.stdout.splitlines()) == ["would copy to dest: app/1.0", "would copy to dest: app/2.0"]

    results = tmp_path / "copy.jsonl"
    run = hc(
        *src.args(),
        "artifact",
        "copy",
        "src/a*/*",
        "dest",
        *to,
        "--create-registry",
        "--results",
        str(results),
        env=env,
    )
    assert run.exit_code == 0, run
    for version in ("1.0", "2.0"):
        assert _files(hc, dst, "dest", "app", version) == _expected()
    records = {json.loads(line)["target"]: json.loads(line) for line in results.read_text().splitlines()}
    assert set(records) == {"app/1.0", "app/2.0"}
    assert all(r["files_copied"] == 3 and r["status"] == "done" for r in records.values())
    # package and version metadata came along
    meta = hc(
        *dst.args(),
        "--format",
        "json",
        "artifact",
        "metadata",
        "get",
        "--registry",
        "dest",
        "--package",
        "app",
        "--version",
        "1.0",
    )
    assert ("stage", "prod") in {(m["key"], m["value"]) for m in json.loads(meta.stdout)}
    meta = hc(
        *dst.args(),
        "--format",
        "json",
        "artifact",
        "metadata",
        "get",
        "--registry",
        "dest",
        "--package",
        "app",
    )
    assert ("owner", "me") in {(m["key"], m["value"]) for m in json.loads(meta.stdout)}
    # only what matched the glob went over
    tool = hc(*dst.args(), "artifact", "list", "--registry", "dest", "--package", "tool", "--version", "1.0")
    assert tool.exit_code == 1 and "not found" in tool.stderr

    # a second run moves nothing: every file is already identical
    puts = dst.uploads()
    again = hc(*src.args(), "--format", "json", "artifact", "copy", "src/app/*", "dest", *to, env=env)
    assert again.exit_code == 0, again
    assert dst.uploads() == puts
    assert json.loads(again.stdout)["files"]["skipped"] == 6


def test_same_server_glob_copy_is_server_side(
    hc: HcRunner, two_servers: tuple[LiveRegistry, LiveRegistry], tmp_path: Path
) -> None:
    src, _ = two_servers
    _seed(hc, src, tmp_path)
    puts_before = src.uploads()
    run = hc(*src.args(), "artifact", "copy", "src/*/1.0", "copies", "--create-registry", "--shard", "0/1")
    assert run.exit_code == 0, run
    assert src.uploads() == puts_before  # no bytes through the client
    for package in ("app", "tool"):
        assert _files(hc, src, "copies", package, "1.0") == _expected()
    # the Go form still works, with its message
    legacy = hc(*src.args(), "artifact", "copy", "src/tool/2.0", "copies")
    assert legacy.exit_code == 0, legacy
    assert "Successfully Copied package from  src/tool/2.0 to copies" in legacy.stdout


def test_copy_of_bytes_that_miss_the_source_listing_stores_nothing(
    hc: HcRunner, two_servers: tuple[LiveRegistry, LiveRegistry], tmp_path: Path
) -> None:
    """The source's blob rots on its disk (same size, other bytes) while its listing keeps the old
    sha256. The destination is an hc registry, so the copy streams without hashing and leans on
    the destination's own check: the rotten file must be refused, named, and never stored."""
    src, dst = two_servers
    _seed(hc, src, tmp_path)
    rotten = hashlib.sha256(FILES["dir/b.bin"]).hexdigest()
    (blob,) = (tmp_path / "src-store").rglob(rotten)
    with blob.open("r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    env = {"HC_TO_API_KEY": dst.token}
    run = hc(
        *src.args(),
        "artifact",
        "copy",
        "src/app/1.0",
        "dest",
        "--to-api-url",
        dst.url,
        "--create-registry",
        env=env,
    )
    assert run.exit_code == 1, run
    assert "dir/b.bin: the bytes read from the source do not match its listed sha256" in run.stderr, run
    assert "Traceback" not in run.stderr
    copied = _files(hc, dst, "dest", "app", "1.0")
    assert "dir/b.bin" not in copied
    assert copied == {k: v for k, v in _expected().items() if k != "dir/b.bin"}
