"""``hc registry migrate`` end to end: real nginx WebDAV and real hc registries on 127.0.0.1.

nginx (with the dav-ext module) is the real source peer: CI installs it (.ci/run); when it is
missing these tests FAIL with a message saying how to install it, they never skip.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ._artifact_support import LiveRegistry, live_registry
from .conftest import HcRunner, Sandbox

NGINX_HINT = (
    "nginx with the WebDAV dav-ext module is required for the migration tests: "
    "apt-get install nginx libnginx-mod-http-dav-ext"
)
DAV_EXT_MODULE = Path("/usr/lib/nginx/modules/ngx_http_dav_ext_module.so")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Nginx:
    url: str
    root: Path

    def tree(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def _nginx_conf(base: Path, port: int) -> str:
    load = f"load_module {DAV_EXT_MODULE};" if DAV_EXT_MODULE.exists() else ""
    temp = "\n".join(
        f"  {kind}_temp_path {base}/tmp/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{load}
daemon off; master_process on; worker_processes 2;
user root;
pid {base}/nginx.pid;
error_log {base}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off; sendfile on;
{temp}
  server {{
    listen 127.0.0.1:{port};
    root {base}/data;
    client_max_body_size 0;
    location / {{
      dav_methods PUT DELETE MKCOL COPY MOVE;
      dav_ext_methods PROPFIND OPTIONS;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
      autoindex on;
    }}
  }}
}}
"""


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        pytest.fail(NGINX_HINT)
    base = tmp_path_factory.mktemp("nginx")
    for sub in ("data", "tmp"):
        (base / sub).mkdir()
    port = _free_port()
    conf = base / "nginx.conf"
    conf.write_text(_nginx_conf(base, port))
    proc = subprocess.Popen(
        [binary, "-c", str(conf), "-p", str(base)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"nginx did not start: {err.strip()} ({NGINX_HINT})")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("nginx did not listen within 20 s")
                time.sleep(0.05)
        yield Nginx(url=f"http://127.0.0.1:{port}", root=base / "data")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- trees and destinations ------------------------------------------------------------------------


def write_tree(root: Path, *, packages: int, versions: int, files: int, big: int = 0) -> dict[str, bytes]:
    """``<package>/<version>/<path>`` files (some nested), plus ``big`` 2 MiB files in the first
    version. Returns ``package/version/path`` → bytes."""
    made: dict[str, bytes] = {}
    for p in range(packages):
        for v in range(versions):
            for f in range(files):
                rel = f"pkg{p}/1.{v}.0/" + (f"dir{f % 3}/file{f}.txt" if f % 2 else f"file{f}.txt")
                made[rel] = f"{rel}\n".encode() * (1 + f % 7)
    for b in range(big):
        made[f"pkg0/1.0.0/big{b}.bin"] = hashlib.sha256(str(b).encode()).digest() * (64 * 1024)  # 2 MiB
    # Sources are old: a file changed in the second of its copy would (rightly) be copied again.
    an_hour_ago = time.time() - 3600
    for rel, data in made.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (an_hour_ago, an_hour_ago))
    return made


def _get_json(url: str, token: str) -> dict[str, object]:
    request = urllib.request.Request(url, headers={"x-api-key": token})
    with urllib.request.urlopen(request, timeout=30) as response:
        body: dict[str, object] = json.load(response)
        return body


def registry_contents(live: LiveRegistry, registry: str) -> dict[str, tuple[int, str]]:
    """``package/version/path`` → (size, sha256) of every file in ``registry``, from v3 listings."""
    base = f"{live.url}/gateway/har/api/v3"
    scope = f"account_identifier={live.account}"
    regs = _get_json(f"{base}/registries?{scope}&search_term={registry}&size=100", live.token)["items"]
    assert isinstance(regs, list)
    reg_id = next(r["id"] for r in regs if r["name"] == registry)
    found: dict[str, tuple[int, str]] = {}
    page = 0
    while True:
        body = _get_json(f"{base}/versions?{scope}&registry_ids={reg_id}&size=100&page={page}", live.token)
        versions = body["items"]
        assert isinstance(versions, list)
        for version in versions:
            fpage = 0
            while True:
                query = urllib.parse.urlencode(
                    {"registry_id": reg_id, "version_id": version["id"], "size": 1000, "page": fpage}
                )
                files = _get_json(f"{base}/files?{scope}&{query}", live.token)
                items = files["items"]
                assert isinstance(items, list)
                for f in items:
                    key = f"{version['packageName']}/{version['name']}/{str(f['path']).lstrip('/')}"
                    found[key] = (int(f["size"]), str(f["sha256"]))
                if not files.get("hasMore"):
                    break
                fpage += 1
        if not body.get("hasMore"):
            return found
        page += 1


def expected(tree: dict[str, bytes]) -> dict[str, tuple[int, str]]:
    return {rel: (len(data), hashlib.sha256(data).hexdigest()) for rel, data in tree.items()}


@pytest.fixture
def dest(tmp_path: Path, hc: HcRunner) -> Iterator[LiveRegistry]:
    with live_registry(tmp_path / "dest-data") as live:
        created = hc(*live.args(), "registry", "create", "dst", "--package-type", "GENERIC")
        assert created.exit_code == 0, created
        yield live


def write_config(
    path: Path,
    *,
    source_type: str,
    source_url: str,
    source_registry: str,
    dest: LiveRegistry,
    extra_mapping: str = "",
    source_key: str = "",
    concurrency: int = 8,
) -> Path:
    creds = f"\n  credentials:\n    password: {source_key}" if source_key else ""
    path.write_text(
        f"""version: 1.0.0
concurrency: {concurrency}
source:
  type: {source_type}
  endpoint: {source_url}{creds}
destination:
  type: HAR
  endpoint: {dest.url}
  credentials:
    username: admin
    password: ${{DEST_KEY}}
mappings:
  - artifactType: GENERIC
    sourceRegistry: {source_registry}
    destinationRegistry: dst
{extra_mapping}"""
    )
    return path


def results_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- tests -------------------------------------------------------------------------------------------


def test_webdav_tree_arrives_identical_and_a_rerun_is_a_no_op(
    nginx: Nginx, dest: LiveRegistry, hc: HcRunner, tmp_path: Path
) -> None:
    tree = write_tree(nginx.tree("repo1"), packages=3, versions=2, files=50, big=2)
    (nginx.tree("repo1") / "stray.txt").write_text("no version\n")  # unplaceable: warned about
    config = write_config(
        tmp_path / "m.yaml", source_type="WEBDAV", source_url=nginx.url, source_registry="repo1", dest=dest
    )
    results = tmp_path / "results.jsonl"
    env = {"DEST_KEY": dest.token}
    run = hc(
        "registry", "migrate", "-c", str(config), "--results", str(results), "--progress", "none", env=env
    )
    assert run.exit_code == 0, run
    assert "Success : 302" in run.stderr
    assert "Failed  : 0" in run.stderr
    assert "1 file(s) directly under repo1" in run.stderr
    assert registry_contents(dest, "dst") == expected(tree)
    assert {r["status"] for r in results_of(results)} == {"done"}

    uploads_before = dest.uploads()
    again = hc("registry", "migrate", "-c", str(config), "--progress", "none", env=env)
    assert again.exit_code == 0, again
    assert "Skipped : 302" in again.stderr and "Success : 0" in again.stderr
    assert dest.uploads() == uploads_before  # nothing was sent again


def test_dry_run_writes_the_plan_and_plan_applies_it(
    nginx: Nginx, dest: LiveRegistry, hc: HcRunner, tmp_path: Path
) -> None:
    tree = write_tree(nginx.tree("repo2"), packages=2, versions=2, files=10)
    config = write_config(
        tmp_path / "m.yaml",
        source_type="WEBDAV",
        source_url=nginx.url,
        source_registry="/repo2/",
        dest=dest,
        extra_mapping="    excludePatterns: ['**/dir1/**']\n",
    )
    env = {"DEST_KEY": dest.token}
    dry = hc("registry", "migrate", "-c", str(config), "--dry-run", "--progress", "none", env=env)
    assert dry.exit_code == 0, dry
    plan_lines = [json.loads(line) for line in dry.stdout.splitlines()]
    wanted = {k: v for k, v in tree.items() if "/dir1/" not in k}
    assert len(plan_lines) == len(wanted)
    first = plan_lines[0]
    assert first["destination"]["registry"] == "dst" and first["sha256"] is None
    assert first["source"]["url"].startswith(nginx.url + "/repo2/")
    assert "To copy : 32" in dry.stderr
    assert dest.uploads() == 0
    assert registry_contents(dest, "dst") == {}

    plan = tmp_path / "plan.jsonl"
    plan.write_text(dry.stdout)
    # a file added after planning is not part of the plan: --plan applies exactly the plan
    (nginx.tree("repo2") / "pkg0/1.0.0/late.txt").write_text("late\n")
    applied = hc("registry", "migrate", "-c", str(config), "--plan", str(plan), "--progress", "none", env=env)
    assert applied.exit_code == 0, applied
    assert registry_contents(dest, "dst") == expected(wanted)


def test_embedded_to_embedded_on_another_port(
    nginx: Nginx, dest: LiveRegistry, hc: HcRunner, tmp_path: Path
) -> None:
    tree = write_tree(nginx.tree("repo3"), packages=2, versions=3, files=20, big=1)
    env = {"DEST_KEY": dest.token}
    first = write_config(
        tmp_path / "a.yaml", source_type="WEBDAV", source_url=nginx.url, source_registry="repo3", dest=dest
    )
    assert hc("registry", "migrate", "-c", str(first), "--progress", "none", env=env).exit_code == 0
    with live_registry(tmp_path / "second-data") as second:
        assert hc(*second.args(), "registry", "create", "dst", "--package-type", "GENERIC").exit_code == 0
        config = write_config(
            tmp_path / "b.yaml",
            source_type="HAR",
            source_url=dest.url,
            source_registry="dst",
            source_key=dest.token,
            dest=second,
        )
        env2 = {"DEST_KEY": second.token}
        run = hc("registry", "migrate", "-c", str(config), "--progress", "none", env=env2)
        assert run.exit_code == 0, run
        assert registry_contents(second, "dst") == expected(tree)
        again = hc("registry", "migrate", "-c", str(config), "--progress", "none", env=env2)
        assert "Skipped : 121" in again.stderr and again.exit_code == 0, again


def _migrate_process(
    config: Path, sandbox: Sandbox, env: dict[str, str], *extra: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hc", "registry", "migrate", "-c", str(config), "--progress", "none", *extra],
        env={**os.environ, **sandbox.env, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_half_way_then_the_same_command_converges(
    nginx: Nginx, dest: LiveRegistry, sandbox: Sandbox, tmp_path: Path
) -> None:
    tree = write_tree(nginx.tree("repo4"), packages=4, versions=3, files=40)
    config = write_config(
        tmp_path / "m.yaml",
        source_type="WEBDAV",
        source_url=nginx.url,
        source_registry="repo4",
        dest=dest,
        concurrency=2,
    )
    env = {"DEST_KEY": dest.token}
    proc = _migrate_process(config, sandbox, env)
    try:
        deadline = time.monotonic() + 60
        while dest.uploads() < len(tree) // 4:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the migration made no progress"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    partial = registry_contents(dest, "dst")
    assert 0 < len(partial) < len(tree)
    done = _migrate_process(config, sandbox, env)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, (out, err)
    assert f"Skipped : {len(partial)}" in err
    assert registry_contents(dest, "dst") == expected(tree)


def test_four_shards_in_separate_processes_equal_one_run(
    nginx: Nginx, dest: LiveRegistry, sandbox: Sandbox, tmp_path: Path
) -> None:
    tree = write_tree(nginx.tree("repo5"), packages=4, versions=4, files=8)
    config = write_config(
        tmp_path / "m.yaml", source_type="WEBDAV", source_url=nginx.url, source_registry="repo5", dest=dest
    )
    env = {"DEST_KEY": dest.token}
    procs = [_migrate_process(config, sandbox, env, "--shard", f"{k}/4") for k in range(4)]
    outcomes = [p.communicate(timeout=120) for p in procs]
    # Each failing shard's stderr whole: pytest's repr of all outcomes elides the line that matters.
    failed = "\n".join(
        f"shard {k}/4 exited {proc.returncode}:\n{err}"
        for k, (proc, (_, err)) in enumerate(zip(procs, outcomes, strict=True))
        if proc.returncode
    )
    assert [p.returncode for p in procs] == [0, 0, 0, 0], failed
    successes = [int(err.split("Success : ")[1].split()[0]) for _, err in outcomes]
    assert sum(successes) == len(tree) and sum(1 for s in successes if s) >= 2
    assert registry_contents(dest, "dst") == expected(tree)


def test_failed_files_exit_1_and_the_results_name_them(
    nginx: Nginx, dest: LiveRegistry, hc: HcRunner, tmp_path: Path
) -> None:
    tree = write_tree(nginx.tree("repo6"), packages=1, versions=1, files=5)
    # The destination already holds other bytes at one path: without --overwrite it refuses (409).
    other = tmp_path / "file0.txt"
    other.write_text("different bytes\n")
    pushed = hc(*dest.args(), "artifact", "push", "generic", "dst", str(other), "--name", "pkg0",
                "--version", "1.0.0", "--progress", "none")  # fmt: skip
    assert pushed.exit_code == 0, pushed
    config = write_config(
        tmp_path / "m.yaml", source_type="WEBDAV", source_url=nginx.url, source_registry="repo6", dest=dest
    )
    results = tmp_path / "r.jsonl"
    run = hc("registry", "migrate", "-c", str(config), "--results", str(results), "--progress", "none",
             env={"DEST_KEY": dest.token})  # fmt: skip
    assert run.exit_code == 1, run
    failed = [r for r in results_of(results) if r["status"] == "failed"]
    assert [r["path"] for r in failed] == ["pkg0/1.0.0/file0.txt"]
    assert "Failed  : 1" in run.stderr and "Success : 4" in run.stderr
    assert run.stderr.splitlines()[-1].startswith("error: 1 of 5 files failed to migrate")
    # --overwrite replaces it
    fixed = hc("registry", "migrate", "-c", str(config), "--overwrite", "--progress", "none",
               env={"DEST_KEY": dest.token})  # fmt: skip
    assert fixed.exit_code == 0, fixed
    assert registry_contents(dest, "dst") == expected(tree)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("source: {type: WEBDAV, endpoint: http://x}\ndestination: {type: HAR, endpoint: http://y}\n",
         "mappings: at least one mapping is required"),
        ("concurrency: 0\n", "concurrency: must be a whole number"),
        ("source: {type: JFROG, endpoint: http://x}\n", "JFROG sources are not supported yet"),
        ("source: {type: WEBDAV, endpoint: ftp://x}\n", "expected an http:// or https:// URL"),
        ("source: {type: WEBDAV, endpoint: http://x}\ndestination: {type: HAR, endpoint: http://y}\n"
         "mappings: [{artifactType: DOCKER, sourceRegistry: a, destinationRegistry: b}]\n",
         "DOCKER is not supported yet"),
        ("source: {type: WEBDAV, endpoint: http://x}\ndestination: {type: HAR, endpoint: http://y}\n"
         "mappings: [{artifactType: GENERIC, sourceRegistry: a, destinationRegistry: b,"
         " includePattern: [x]}]\n",
         "unknown key 'includePattern'"),
        ("source: [\n", "line"),
    ],
)  # fmt: skip
def test_a_bad_config_is_one_line_and_exit_2(hc: HcRunner, tmp_path: Path, body: str, message: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(body)
    run = hc("registry", "migrate", "-c", str(config))
    assert run.exit_code == 2, run
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], run


def test_a_missing_config_and_a_bad_shard_exit_2(hc: HcRunner, tmp_path: Path) -> None:
    assert hc("registry", "migrate", "-c", str(tmp_path / "none.yaml")).exit_code == 2
    config = tmp_path / "ok.yaml"
    config.write_text(
        "source: {type: WEBDAV, endpoint: http://127.0.0.1:1}\n"
        "destination: {type: HAR, endpoint: http://127.0.0.1:1}\n"
        "mappings: [{artifactType: GENERIC, sourceRegistry: a, destinationRegistry: b}]\n"
    )
    run = hc("registry", "migrate", "-c", str(config), "--shard", "4/4")
    assert run.exit_code == 2 and "0-based" in run.stderr, run


def test_patterns_date_filter_and_a_raw_mapping(
    nginx: Nginx, dest: LiveRegistry, hc: HcRunner, tmp_path: Path
) -> None:
    root = nginx.tree("repo7")
    tree = write_tree(root, packages=2, versions=2, files=6)  # an hour old
    fresh = root / "pkg0/1.1.0/fresh.txt"
    fresh.write_text("new\n")  # modified now: the only file after the cutoff
    cutoff = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600))
    raw_root = nginx.tree("raw7")
    (raw_root / "top.txt").write_text("top\n")
    (raw_root / "a/b/c/deep.bin").parent.mkdir(parents=True)
    (raw_root / "a/b/c/deep.bin").write_bytes(b"\x00" * 1000)
    assert hc(*dest.args(), "registry", "create", "rawdst", "--package-type", "RAW").exit_code == 0
    config = write_config(
        tmp_path / "m.yaml",
        source_type="WEBDAV",
        source_url=nginx.url,
        source_registry="repo7",
        dest=dest,
        extra_mapping=(
            "    includePatterns: ['pkg0/**']\n"
            "    excludePatterns: ['**/dir*/**']\n"
            "  - artifactType: GENERIC\n"
            "    sourceRegistry: repo7\n"
            "    destinationRegistry: dst\n"
            f"    dateFilter: {{match: ANY, createdAfter: '{cutoff}', downloadedAfter: '{cutoff}'}}\n"
            "  - artifactType: RAW\n"
            "    sourceRegistry: raw7\n"
            "    destinationRegistry: rawdst\n"
        ),
    )
    run = hc("registry", "migrate", "-c", str(config), "--progress", "none", env={"DEST_KEY": dest.token})
    assert run.exit_code == 0, run
    assert run.stderr.count("downloadedAfter is ignored") == 1
    kept = {k: v for k, v in tree.items() if k.startswith("pkg0/") and "/dir" not in k}
    kept["pkg0/1.1.0/fresh.txt"] = b"new\n"
    assert registry_contents(dest, "dst") == expected(kept)
    assert registry_contents(dest, "rawdst") == expected(
        {"default/default/top.txt": b"top\n", "default/default/a/b/c/deep.bin": b"\x00" * 1000}
    )
