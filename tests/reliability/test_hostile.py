"""Hostile input, one test each: what a user, a local tree or a malicious server can throw at hc.

Already covered elsewhere (and not repeated here): traversal in a listing's paths and version
names and in Content-Disposition (tests/e2e/test_artifact_hostile.py), the server's refusal of
``..`` and ``%2E%2E`` in file paths (tests/server/test_files.py), a token without dots
(tests/e2e/test_cli_errors.py).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from .support import (
    LoopThread,
    Registry,
    Sandbox,
    create_registry,
    expected_listing,
    fsck,
    list_files,
    list_files_or_empty,
    listing_triples,
    make_tree,
    read_tree,
    sha256,
    target,
    wait_until,
)

TOKEN = "pat.acct.key1.hostilesecret"


def _push(sandbox: Sandbox, via: tuple[str, ...], src: str, *extra: str, version: str = "1") -> Any:
    return sandbox.hc(
        *via,
        "artifact",
        "push",
        "generic",
        "gen",
        src,
        "--name",
        "pkg",
        "--version",
        version,
        "--progress",
        "none",
        *extra,
    )


def _pull(sandbox: Sandbox, via: tuple[str, ...], spec: str, dest: Path, *extra: str) -> Any:
    return sandbox.hc(
        *via, "artifact", "pull", "generic", "gen", spec, str(dest), "--progress", "none", *extra
    )


def _no_traceback(run: Any) -> None:
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr, run


@pytest.fixture
def registry(sandbox: Sandbox, loop: LoopThread, tmp_path: Path) -> Registry:
    registry = loop.serve_registry(tmp_path / "store")
    create_registry(sandbox, registry, "gen")
    return registry


# -- names in a pushed tree ------------------------------------------------------------------------

HOSTILE_LOCAL_NAMES = [
    "..\\..\\evil.txt",
    "a\\b.txt",
    "%2e%2e",
    "%2e%2e%2fescape.txt",
    "..%2f..%2fescape.txt",
    "C:evil.txt",
    "new\nline.txt",
    "tab\there.txt",
    "del\x7f.txt",
    " leading-space.txt",
    "trailing-dot.",
    "-dash-first.txt",
]


def test_hostile_local_names_are_stored_as_themselves_or_refused(
    sandbox: Sandbox, registry: Registry, tmp_path: Path
) -> None:
    """Names a local tree may hold (POSIX allows anything but ``/`` and NUL): each file is either
    stored under exactly its own name or refused as a failed item; nothing lands anywhere else,
    and pulling the version back never writes outside the destination."""
    src = tmp_path / "work" / "src"
    src.mkdir(parents=True)
    for name in HOSTILE_LOCAL_NAMES:
        (src / name).write_bytes(name.encode("utf-8", "surrogateescape"))
    (src / "ok.txt").write_bytes(b"ok")
    results = tmp_path / "push.jsonl"
    via = target(registry, registry.token)
    push = _push(sandbox, via, f"{src}/.", "--include-hidden", "--results", str(results))
    _no_traceback(push)
    assert push.code in (0, 1), push
    outcome = {r["path"]: r for r in map(json.loads, results.read_text().splitlines())}
    listed = {item["path"]: item for item in list_files(sandbox, registry, "gen", "pkg", "1")}
    assert set(listed) <= {*HOSTILE_LOCAL_NAMES, "ok.txt"}  # nothing renamed, nothing extra
    for name in [*HOSTILE_LOCAL_NAMES, "ok.txt"]:
        if outcome[name]["status"] == "done":
            assert listed[name]["sha256"] == sha256(name.encode() if name != "ok.txt" else b"ok")
        else:
            assert outcome[name]["status"] == "failed" and outcome[name]["error"], outcome[name]
            assert name not in listed
    assert outcome["ok.txt"]["status"] == "done"

    dest = tmp_path / "work" / "dest"
    pull = _pull(sandbox, via, "pkg/1", dest)
    _no_traceback(pull)
    inside = {
        p.relative_to(tmp_path / "work").as_posix() for p in (tmp_path / "work").rglob("*") if p.is_file()
    }
    assert all(p.startswith(("src/", "dest/")) for p in inside), inside
    assert not list(tmp_path.glob("escape*")) and not list((tmp_path / "work").glob("escape*"))
    for name, data in read_tree(dest).items():
        assert name in listed and sha256(data) == listed[name]["sha256"]


@pytest.mark.parametrize(
    "flags",
    [
        ("--name", "..", "--version", "1"),
        ("--name", "../../up", "--version", "1"),
        ("--name", "pkg", "--version", "../1"),
        ("--name", "pkg", "--version", ".."),
        ("--name", "pkg", "--version", "a\\b"),
        ("--name", "pkg", "--version", "tab\tx"),
    ],
)
def test_hostile_package_and_version_names_are_usage_errors_before_any_request(
    sandbox: Sandbox, loop: LoopThread, registry: Registry, tmp_path: Path, flags: tuple[str, ...]
) -> None:
    make_tree(tmp_path / "src", small=2)
    proxy = loop.proxy(registry.url)
    run = sandbox.hc(
        *target(proxy.url, registry.token),
        "artifact",
        "push",
        "generic",
        "gen",
        str(tmp_path / "src"),
        *flags,
    )
    assert run.code == 2, run
    assert len(run.error_lines) == 1 and run.stderr.startswith("error: "), run
    assert proxy.stats.requests == 0


async def _registry_client(aiohttp_client: Any, tmp_path: Path) -> tuple[Any, dict[str, str]]:
    """A test client on a fresh embedded registry with a GENERIC registry ``gen``, and its headers."""
    from hc.server.app import create_app
    from hc.server.embedded import ensure_local_credentials

    credentials = ensure_local_credentials(tmp_path / "store")
    client = await aiohttp_client(create_app(data_dir=tmp_path / "store"))
    headers = {"x-api-key": credentials.token}
    created = await client.post(
        "/gateway/har/api/v1/registry?space_ref=local",
        json={"identifier": "gen", "packageType": "GENERIC"},
        headers=headers,
    )
    assert created.status == 201
    return client, headers


@pytest.mark.parametrize(
    "raw_path",
    [
        "p/1/..%2f..%2fx.txt",
        "p/1/%2e%2e%2fx.txt",
        "p/1/a%5c..%5cx.txt",
        "p/1/a\\b.txt",
        "p/1/%00x.txt",
        "p/1/x%0a.txt",
        "p/%2e%2e/x.txt",
        "%2e%2e/1/x.txt",
        "p/1//abs.txt",
    ],
)
async def test_the_server_refuses_hostile_file_paths(
    aiohttp_client: Any, tmp_path: Path, raw_path: str
) -> None:
    """Straight to the registry, with the escapes a client library would not produce."""
    from yarl import URL

    client, headers = await _registry_client(aiohttp_client, tmp_path)
    put = await client.put(URL(f"/pkg/local/gen/files/{raw_path}", encoded=True), data=b"x", headers=headers)
    assert 400 <= put.status < 500, (raw_path, put.status, await put.text())
    files = await client.get(
        "/gateway/har/api/v3/files", params={"account_identifier": "local"}, headers=headers
    )
    assert (await files.json())["items"] == []
    assert not [p for p in tmp_path.rglob("x.txt")]


@pytest.mark.parametrize("escape", ["%0a", "%0d", "%09"])
async def test_a_path_with_a_line_break_or_tab_is_refused_with_its_reason(
    aiohttp_client: Any, tmp_path: Path, escape: str
) -> None:
    """Not a bare 404 (the route once stopped at the line break): a 400 that says why."""
    from yarl import URL

    client, headers = await _registry_client(aiohttp_client, tmp_path)
    put = await client.put(
        URL(f"/pkg/local/gen/files/p/1/a{escape}b.txt", encoded=True), data=b"x", headers=headers
    )
    assert put.status == 400, await put.text()
    assert "control characters are not allowed" in (await put.json())["message"]


# -- a malicious server against ``pull`` --------------------------------------------------------------

BODY = b"payload\n"


@dataclass
class HostileRegistry:
    """Answers just enough of the Harness API for ``pull generic`` and ``list``; every part of the
    answer can be made hostile."""

    files: list[dict[str, Any]] = field(default_factory=list)
    bodies: dict[str, bytes] = field(default_factory=dict)
    #: path prefix → handler that replaces the normal answer
    overrides: dict[str, Callable[[web.Request], Any]] = field(default_factory=dict)

    def add(self, path: str, body: bytes = BODY, **extra: Any) -> None:
        self.bodies[path.lstrip("/")] = body
        self.files.append(
            {
                "id": str(len(self.files)),
                "name": path.rsplit("/", 1)[-1],
                "path": "/" + path.lstrip("/"),
                "size": str(len(body)),
                "sha256": hashlib.sha256(body).hexdigest(),
                **extra,
            }
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        for prefix, handler in self.overrides.items():
            if request.path.startswith(prefix):
                result = handler(request)
                answer = await result if inspect.isawaitable(result) else result
                assert isinstance(answer, web.StreamResponse)
                return answer
        path = request.path
        if path.startswith("/gateway/har/api/v1/registry/"):
            return _ok({"identifier": "gen", "packageType": "GENERIC", "url": ""})
        if path == "/gateway/har/api/v1/spaces/acct/+/registries":
            return _ok({"registries": [{"identifier": "gen"}], "pageCount": 1, "itemCount": 1})
        if path == "/gateway/har/api/v3/system/info":
            return _ok({"registryUrl": ""})
        if path == "/gateway/har/api/v3/registries":
            return _page([{"id": "reg-1", "name": "gen"}])
        if path == "/gateway/har/api/v3/packages":
            return _page([{"id": "pkg-1", "name": "pkg"}])
        if path == "/gateway/har/api/v3/versions":
            return _page([{"id": "ver-1", "name": "1", "packageId": "pkg-1"}])
        if path == "/gateway/har/api/v3/files":
            term = request.query.get("search_term")
            return _page([f for f in self.files if not term or term in f["path"]])
        prefix = "/pkg/acct/gen/files/pkg/1/"
        if path.startswith(prefix):
            body = self.bodies.get(path[len(prefix) :])
            if body is None:
                return web.json_response({"message": "no such file"}, status=404)
            if request.method == "HEAD":
                return web.Response(headers={"Content-Length": str(len(body))})
            return web.Response(body=body, content_type="application/octet-stream")
        return web.json_response({"message": f"no route {path}"}, status=404)


def _ok(data: Any) -> web.Response:
    return web.json_response({"status": "SUCCESS", "data": data})


def _page(items: list[Any]) -> web.Response:
    return web.json_response({"page": 0, "size": 100, "hasMore": False, "items": items})


def _hostile_via(loop: LoopThread, fake: HostileRegistry) -> tuple[str, ...]:
    return target(loop.serve_app(fake.app()), TOKEN)


@pytest.mark.parametrize(
    "disposition",
    [
        'attachment; filename="/etc/passwd"',
        "attachment; filename*=UTF-8''%00evil.txt",
        "attachment; filename*=UTF-8''%2e%2e",
        'attachment; filename="C:\\\\evil.txt"',
        'attachment; filename="\\\\server\\share\\x.txt"',
        'attachment; filename="' + "a" * 300 + '"',
        "attachment; filename*=UTF-8''new%0Aline%1B[2J.txt",
        "attachment; filename=\"a.txt\"; filename*=UTF-8''..%2F..%2Fb.txt",
    ],
    ids=lambda d: d[22:44],
)
def test_a_hostile_download_name_lands_inside_the_destination(
    sandbox: Sandbox, loop: LoopThread, tmp_path: Path, disposition: str
) -> None:
    """Beyond tests/e2e/test_artifact_hostile.py: absolute, NUL, drive and UNC names, a name too
    long for any file system, a newline."""
    fake = HostileRegistry()
    fake.add("dir/ok.txt")
    original = fake.handle

    async def with_disposition(request: web.Request) -> web.StreamResponse:
        response = await original(request)
        if request.path.startswith("/pkg/"):
            response.headers["Content-Disposition"] = disposition
        return response

    fake.handle = with_disposition  # type: ignore[method-assign]
    work = tmp_path / "work"
    dest = work / "dest"
    run = _pull(sandbox, _hostile_via(loop, fake), "pkg/1/dir/ok.txt", dest)
    _no_traceback(run)
    assert run.code in (0, 1), run
    files = [p for p in work.rglob("*") if p.is_file()]
    assert all(p.parent == dest for p in files), files
    assert all(p.read_bytes() == BODY for p in files)
    if run.code == 0:
        assert len(files) == 1


def test_a_symlink_planted_in_the_destination_is_not_followed_out(
    sandbox: Sandbox, loop: LoopThread, tmp_path: Path
) -> None:
    fake = HostileRegistry()
    fake.add("dir/x.txt")
    fake.add("ok.txt")
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "dir").symlink_to(outside)
    run = _pull(sandbox, _hostile_via(loop, fake), "pkg/1", dest)
    _no_traceback(run)
    assert run.code == 1, run
    assert list(outside.iterdir()) == []
    assert (dest / "ok.txt").read_bytes() == BODY
    assert "unsafe path" in run.stderr


def test_listing_oddities_are_contained(sandbox: Sandbox, loop: LoopThread, tmp_path: Path) -> None:
    """Rooted and doubled slashes (stripped, kept inside), a file and a folder of one name, the same
    path twice with different digests: whatever ends up on disk is inside the destination and
    byte-exact for its listing entry; the rest fails as items, with a clean exit 1."""
    fake = HostileRegistry()
    fake.add("//etc/passwd-like", b"rooted\n")
    fake.add("a", b"a file\n")
    fake.add("a/b", b"under a\n")
    fake.add("dup.txt", b"first\n")
    fake.files.append({**fake.files[-1], "id": "99", "sha256": "0" * 64})  # same path, other digest
    work = tmp_path / "work"
    dest = work / "dest"
    run = _pull(sandbox, _hostile_via(loop, fake), "pkg/1", dest)
    _no_traceback(run)
    assert run.code == 1, run
    files = {p.relative_to(work).as_posix() for p in work.rglob("*") if p.is_file()}
    assert files <= {"dest/etc/passwd-like", "dest/a", "dest/a/b", "dest/dup.txt"}, files
    on_disk = read_tree(dest)
    assert on_disk.get("etc/passwd-like") == b"rooted\n"
    assert on_disk.get("dup.txt") == b"first\n"
    assert not ("a" in on_disk and "a/b" in on_disk)


@pytest.mark.parametrize(
    "body",
    [
        b'{"items": [{"path": "/x", "size": "-5", "sha256": null}], "hasMore": false}',
        b'{"items": [{"path": "/x", "size": "lots"}], "hasMore": false}',
        b'{"items": "nope", "hasMore": false}',
        b'{"items": [42, null, "x"], "hasMore": false}',
        b'{"items": [], "hasMore": true, "page": 0}',
        b"<html>maintenance</html>",
        b'{"items": [{"path": "/x", "size": "1"',
        b"[]",
        b"null",
        b'{"items": [{"path": 5, "size": 1}], "hasMore": false}',
    ],
    ids=lambda b: b[:30].decode(),
)
def test_a_broken_listing_is_a_clean_error(
    sandbox: Sandbox, loop: LoopThread, tmp_path: Path, body: bytes
) -> None:
    fake = HostileRegistry()
    fake.overrides["/gateway/har/api/v3/files"] = lambda _r: web.Response(
        body=body, content_type="application/json"
    )
    via = _hostile_via(loop, fake)
    for run in (
        _pull(sandbox, via, "pkg/1", tmp_path / "dest"),
        sandbox.hc(*via, "artifact", "list", "--registry", "gen", "--package", "pkg", "--version", "1"),
    ):
        _no_traceback(run)
        assert run.code in (0, 1), run
        if run.code == 1:
            assert run.stderr.splitlines()[-1].startswith("error: "), run
    assert read_tree(tmp_path / "dest") == {}  # nothing was written from a broken listing


# Bodies of this size would take as much memory again if they were read whole.
ENORMOUS = 400 << 20


async def _enormous_json(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = ENORMOUS
    await response.prepare(request)
    head = b'{"status": "SUCCESS", "data": {"registries": [], "x": "'
    await response.write(head)
    chunk = b"a" * (1 << 20)
    sent = len(head)
    try:
        while sent + len(chunk) < ENORMOUS - 3:
            await response.write(chunk)
            sent += len(chunk)
        await response.write(b"a" * (ENORMOUS - 3 - sent) + b'"}}')
    except ConnectionError:
        pass
    return response


_MEASURED = """
import atexit, runpy, sys
PEAK_FILE = sys.argv[1]
def report():
    with open("/proc/self/status") as status, open(PEAK_FILE, "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
atexit.register(report)
sys.argv = ["hc", *sys.argv[2:]]
runpy.run_module("hc", run_name="__main__", alter_sys=True)
"""


def _run_measured(sandbox: Sandbox, tmp_path: Path, *args: str) -> tuple[int, str, int]:
    """``hc ARGS`` in a fresh interpreter: (exit code, stderr, its peak RSS in KiB). The peak is
    the process's own ``VmHWM``, read at exit (``ru_maxrss`` would include the forking parent)."""
    peak_file = tmp_path / "peak-kib"
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURED, str(peak_file), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=sandbox.process_env(),
        timeout=300,
        check=False,
    )
    return proc.returncode, proc.stderr.decode(errors="replace"), int(peak_file.read_text())


def test_an_enormous_json_answer_is_an_error_in_bounded_memory(
    sandbox: Sandbox, loop: LoopThread, tmp_path: Path
) -> None:
    fake = HostileRegistry()
    fake.overrides["/gateway/har/api/v1/spaces/"] = _enormous_json
    via = _hostile_via(loop, fake)
    code, stderr, peak_kib = _run_measured(sandbox, tmp_path, *via, "registry", "list")
    assert "Traceback" not in stderr, stderr
    assert code == 0 or (code == 1 and stderr.startswith("error: ")), stderr
    assert peak_kib < 200 * 1024, f"peak RSS {peak_kib // 1024} MiB for a {ENORMOUS >> 20} MiB answer"


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (200, b"not json at all", {}),
        (200, b"", {}),
        (200, b'{"status": "SUCCESS"}', {}),
        (200, b'{"status": "SUCCESS", "data": {"registries": {"a": 1}}}', {}),
        (200, b'{"status": "SUCCESS", "data": {"registries": [1, 2]}}', {}),
        (500, b"\x1b[31mred\x1b[0m\r\nsecond line", {}),
        (429, b"{}", {"Retry-After": "999999999999999999999"}),
        (503, b"{}", {"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT"}),
        (302, b"", {"Location": "http://169.254.169.254/latest"}),
        (401, b'{"message": "' + b"x" * 100_000 + b'"}', {}),
    ],
    ids=lambda v: str(v)[:24],
)
def test_odd_answers_are_one_clean_line(
    sandbox: Sandbox, loop: LoopThread, status: int, body: bytes, headers: dict[str, str]
) -> None:
    fake = HostileRegistry()
    fake.overrides["/gateway/har/api/v1/spaces/"] = lambda _r: web.Response(
        status=status, body=body, headers=headers
    )
    # A 503 is an outage, retried for --retry-budget seconds (30 by default): the answer's wording
    # is what this test is about, not how long an outage is ridden out.
    run = sandbox.hc(*_hostile_via(loop, fake), "--retry-budget", "1", "registry", "list")
    _no_traceback(run)
    assert run.code in (1, 3), run
    (line,) = run.stderr.splitlines()
    assert line.startswith("error: ") and "\x1b" not in line and len(line) < 1000, run


def test_a_retry_after_that_python_calls_a_digit_is_handled(sandbox: Sandbox, loop: LoopThread) -> None:
    calls: list[int] = []

    def answer(_request: web.Request) -> web.Response:
        calls.append(1)
        if len(calls) == 1:
            return web.Response(status=429, body=b"{}", headers={"Retry-After": "²"})
        return _ok({"registries": [{"identifier": "gen"}], "pageCount": 1})

    fake = HostileRegistry()
    fake.overrides["/gateway/har/api/v1/spaces/"] = answer
    run = sandbox.hc(*_hostile_via(loop, fake), "registry", "list")
    _no_traceback(run)
    assert run.code == 0, run


# -- local trees -------------------------------------------------------------------------------------


def test_symlink_loops_and_odd_entries_in_a_pushed_tree_are_skipped(
    sandbox: Sandbox, registry: Registry, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    tree = make_tree(src, small=6, seed=2)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not for upload")
    (src / "loop").symlink_to(".")
    (src / "a" / "up").symlink_to("..")
    (src / "a" / "b" / "upup").symlink_to("../..")
    (src / "out").symlink_to(outside)
    (src / "out-file").symlink_to(outside / "secret.txt")
    (src / "broken").symlink_to(tmp_path / "nowhere")
    (src / "self").symlink_to("self")
    os.mkfifo(src / "fifo")
    started = time.monotonic()
    run = _push(sandbox, target(registry, registry.token), f"{src}/.")
    assert time.monotonic() - started < 60
    assert run.code == 0, run
    for name in ("loop", "up", "out", "out-file", "broken", "self", "fifo"):
        assert any(name in line for line in run.stderr.splitlines() if line.startswith("warning:")), name
    listed = listing_triples(list_files(sandbox, registry, "gen", "pkg", "1"))
    assert listed == expected_listing(tree)


def test_empty_long_and_non_ascii_names_round_trip(
    sandbox: Sandbox, registry: Registry, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    names = {
        "empty.bin": b"",
        "empty-dir-sibling/also-empty": b"",
        "ünïcødé/文件-🚀.txt": "grüße\n".encode(),
        "Ω" * 100 + ".txt": b"omega\n",  # 204 bytes of UTF-8
        "x" * 241 + ".txt": b"long\n",  # 245 bytes (+ ".part" while it downloads: 250)
        "sp ace/#hash?q=1&amp;%41.txt": b"url-ish\n",
    }
    for rel, data in names.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    (src / "empty-dir").mkdir()
    via = target(registry, registry.token)
    assert _push(sandbox, via, f"{src}/.").code == 0
    assert listing_triples(list_files(sandbox, registry, "gen", "pkg", "1")) == expected_listing(names)
    dest = tmp_path / "dest"
    pull = _pull(sandbox, via, "pkg/1", dest)
    assert pull.code == 0, pull
    assert read_tree(dest) == names


def test_a_255_byte_name_round_trips(sandbox: Sandbox, registry: Registry, tmp_path: Path) -> None:
    name = "n" * 251 + ".txt"
    src = tmp_path / "src"
    src.mkdir()
    (src / name).write_bytes(b"max length\n")
    via = target(registry, registry.token)
    assert _push(sandbox, via, f"{src}/.").code == 0
    pull = _pull(sandbox, via, "pkg/1", tmp_path / "dest")
    assert pull.code == 0, pull
    assert (tmp_path / "dest" / name).read_bytes() == b"max length\n"


@pytest.mark.parametrize("change", ["rewrite", "truncate", "unlink", "grow"])
def test_a_file_that_changes_while_it_is_sent_is_never_stored_half(
    sandbox: Sandbox, loop: LoopThread, registry: Registry, tmp_path: Path, change: str
) -> None:
    """The upload of a 16 MiB file is held by the proxy (its body partly sent, the client blocked)
    while the test changes the file; then it goes on. The registry must end with the old bytes
    whole, the new bytes whole, or nothing (and then the item failed): never a mix."""
    src = tmp_path / "src"
    src.mkdir()
    old = os.urandom(16 << 20)
    new = os.urandom(16 << 20)
    big = src / "big.bin"
    big.write_bytes(old)
    proxy = loop.proxy(registry.url, hold=r"^/pkg/.*/big\.bin$")
    results = tmp_path / "push.jsonl"
    proc = sandbox.hc_popen(
        *target(proxy.url, registry.token),
        "artifact",
        "push",
        "generic",
        "gen",
        f"{src}/.",
        "--name",
        "pkg",
        "--version",
        "1",
        "--progress",
        "none",
        "--results",
        str(results),
        log=tmp_path / "push.log",
    )
    try:
        wait_until(lambda: proxy.stats.held >= 1, timeout=60, what="the upload to be held")
        time.sleep(0.2)  # the client fills the socket buffers, then blocks
        if change == "rewrite":
            with big.open("r+b") as f:
                f.write(new)
        elif change == "truncate":
            os.truncate(big, 4 << 20)
        elif change == "unlink":
            big.unlink()
        else:
            with big.open("ab") as f:
                f.write(b"more")
        loop.loop.call_soon_threadsafe(proxy.release)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = (tmp_path / "push.log").read_text()
    assert "Traceback" not in log, log
    record = json.loads(results.read_text().splitlines()[-1])
    listed = {i["path"]: i for i in list_files_or_empty(sandbox, registry, "gen", "pkg", "1")}
    whole = {sha256(old), sha256(new), sha256(new[: 4 << 20]), sha256(old[: 4 << 20]), sha256(old + b"more")}
    if "big.bin" in listed:
        assert listed["big.bin"]["sha256"] in whole, "a mix of old and new bytes was stored"
        assert record["status"] == "done" and code == 0, log
    else:
        assert code == 1 and record["status"] == "failed", log
    stored = "big.bin" in listed
    print(f"{change}: exit {code}, status {record['status']}, stored={stored}: {record.get('error')}")
    check = fsck(sandbox, registry.data_dir)
    assert check.code == 0, check


@pytest.mark.slow
def test_a_sparse_file_over_4_gib_is_pushed_whole(
    sandbox: Sandbox, registry: Registry, tmp_path: Path
) -> None:
    size = (4 << 30) + 4097
    src = tmp_path / "src"
    src.mkdir()
    path = src / "huge.bin"
    marks = {0: b"head", 1 << 31: b"2GiB", (4 << 30) - 2: b"edge", size - 5: b"tail!"}
    with path.open("wb") as f:
        f.truncate(size)
        for offset, data in marks.items():
            f.seek(offset)
            f.write(data)
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
    run = _push(sandbox, target(registry, registry.token), str(path))
    assert run.code == 0, run
    (item,) = list_files(sandbox, registry, "gen", "pkg", "1")
    assert (item["path"], int(item["size"]), item["sha256"]) == ("huge.bin", size, digest.hexdigest())
    import urllib.request

    request = urllib.request.Request(
        f"{registry.url}/pkg/local/gen/files/pkg/1/huge.bin",
        headers={"x-api-key": registry.token, "Range": f"bytes={size - 5}-"},
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 206 and response.read() == b"tail!"


# -- user input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [
        "",
        ",",
        " , ",
        "k",
        "k:",
        ":v",
        "a:1,a:2",
        "k\x01:v",
        "k:v\x1b[2J",
        "k" * 129 + ":v",
        "k:" + "v" * 257,
        ",".join(f"k{n}:v" for n in range(51)),
    ],
    ids=lambda m: repr(m[:12]),
)
def test_malformed_metadata_is_refused_before_any_request(
    sandbox: Sandbox, loop: LoopThread, registry: Registry, metadata: str
) -> None:
    proxy = loop.proxy(registry.url)
    run = sandbox.hc(
        *target(proxy.url, registry.token),
        "artifact",
        "metadata",
        "set",
        "--registry",
        "gen",
        "--package",
        "pkg",
        "--metadata",
        metadata,
    )
    assert run.code == 2, run
    (line,) = run.stderr.splitlines()
    assert line.startswith("error: ") and "\x1b" not in line and len(line) < 300, line
    assert proxy.stats.requests == 0


@pytest.mark.parametrize("token", ["nodots-s3cr3t", "s3cr3t..x", "pat..s3cr3t"])
def test_a_token_without_an_account_is_never_echoed(sandbox: Sandbox, registry: Registry, token: str) -> None:
    run = sandbox.hc("--api-url", registry.url, "--token", token, "registry", "list")
    assert run.code == 2, run
    (line,) = run.stderr.splitlines()
    assert line.startswith("error: malformed token")
    # With the account given, the key goes to the server as it is, which refuses it.
    with_account = sandbox.hc(
        "--api-url", registry.url, "--token", token, "--account", "local", "registry", "list"
    )
    assert with_account.code == 3, with_account
    for out in (run, with_account):
        assert "s3cr3t" not in out.stdout + out.stderr


def test_peak_rss_measurement_sees_the_child(sandbox: Sandbox, tmp_path: Path) -> None:
    """The harness of the bounded-memory test measures hc itself (tens of MiB), not its parent."""
    code, _, peak = _run_measured(sandbox, tmp_path, "--version")
    assert code == 0 and 10 * 1024 < peak < 120 * 1024, peak
