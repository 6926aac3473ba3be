"""Secrets: the key never shows up where it should not, files that hold it are private, and TLS
is verified unless the user says otherwise.

- Every command, with ``-v``, against a server that fails (500s from a proxy, a refused key, a
  server that echoes the key back): the key is in no stdout, no stderr, no URL (the proxy records
  every request line), no file hc writes except the two meant to hold it (``~/.harness/auth.json``
  and the embedded store's ``local-credentials.json``), and not in ``hc server run``'s log.
- Those two files are 0600 in 0700 folders; the job journals and hash cache live in 0700 folders.
- TLS (extends tests/e2e/test_cli_tls.py, which covers ``registry list``): push and pull against
  the real registry served over HTTPS with a self-signed certificate fail before any request
  without ``--insecure``/``--ca-bundle`` (the key never leaves), and work with either.
"""

from __future__ import annotations

import json
import shutil
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from hc.server.app import create_app
from hc.server.embedded import ensure_local_credentials

from .faultproxy import Fault
from .support import (
    LoopThread,
    Registry,
    Run,
    Sandbox,
    ServerProcess,
    create_registry,
    expected_listing,
    listing_triples,
    make_tree,
    read_tree,
    target,
)


def _commands(src: Path, dest: Path, results: Path) -> list[tuple[str, ...]]:
    return [
        ("registry", "list"),
        ("registry", "get", "gen"),
        ("artifact", "list", "--registry", "gen"),
        (
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
            "plain",
            "--results",
            str(results),
        ),
        ("artifact", "pull", "generic", "gen", "pkg/1", str(dest), "--progress", "plain"),
        ("artifact", "pull", "generic", "gen", "pkg/1/f0000.bin", str(dest)),
        ("artifact", "metadata", "set", "--registry", "gen", "--package", "pkg", "--metadata", "a:b"),
        ("artifact", "metadata", "get", "--registry", "gen", "--package", "pkg"),
        ("artifact", "copy", "gen/pkg/1", "other"),
        ("auth", "status"),
    ]


def _files_holding(root: Path, secret: bytes) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if secret in path.read_bytes():
                    found.append(path.relative_to(root).as_posix())
            except OSError:
                pass
    return found


def _assert_never_shown(runs: list[Run], secret: str) -> None:
    for run in runs:
        assert secret not in run.stdout and secret not in run.stderr, run
        # and not its distinctive tail either (a truncated or reformatted key is still a leak)
        tail = secret.rsplit(".", 1)[-1]
        assert tail not in run.stdout and tail not in run.stderr, run


@pytest.mark.parametrize(
    "fault",
    [
        Fault.HTTP_500,
        pytest.param(Fault.HTTP_503, marks=pytest.mark.slow),
        pytest.param(Fault.RESET, marks=pytest.mark.slow),
    ],
    ids=str,
)
def test_the_key_is_never_shown_when_the_server_fails(
    fault: Fault, sandbox: Sandbox, loop: LoopThread, tmp_path: Path
) -> None:
    registry = loop.serve_registry(tmp_path / "store")
    create_registry(sandbox, registry, "gen")
    make_tree(tmp_path / "src", small=3, seed=1)
    proxy = loop.proxy(registry.url, rate=1.0, faults=[fault], match="^/pkg/", record=True)
    runs = [
        sandbox.hc("-v", *target(proxy.url, registry.token), *command)
        for command in _commands(tmp_path / "src", tmp_path / "dest", tmp_path / "results.jsonl")
    ]
    # the management calls went through, every file transfer failed: exercised both paths
    assert any(run.code == 0 for run in runs) and any(run.code == 1 for run in runs)
    _assert_never_shown(runs, registry.token)
    assert not [line for line in proxy.stats.request_lines if registry.token in line]
    secret = registry.token.encode()
    assert _files_holding(sandbox.home, secret) == []
    assert _files_holding(sandbox.hc_home, secret) == []
    assert _files_holding(tmp_path / "store", secret) == ["local-credentials.json"]
    assert (tmp_path / "results.jsonl").exists()


def test_a_refused_key_is_never_shown(sandbox: Sandbox, loop: LoopThread, tmp_path: Path) -> None:
    registry = loop.serve_registry(tmp_path / "store")
    create_registry(sandbox, registry, "gen")
    make_tree(tmp_path / "src", small=2, seed=1)
    wrong = "pat.local.0123456789abcdef01234567.WrongSecretWrongSecret0123"
    runs = [
        sandbox.hc("-v", *target(registry, wrong), *command)
        for command in _commands(tmp_path / "src", tmp_path / "dest", tmp_path / "results.jsonl")
    ]
    runs.append(
        sandbox.hc(
            "-v", "auth", "login", "--api-url", registry.url, "--api-token", wrong, "--non-interactive"
        )
    )
    assert {run.code for run in runs} == {3}, [r for r in runs if r.code != 3]
    _assert_never_shown(runs, wrong)
    assert not (sandbox.home / ".harness" / "auth.json").exists()
    assert _files_holding(sandbox.home, wrong.encode()) == []
    assert _files_holding(sandbox.hc_home, wrong.encode()) == []


def test_hc_server_run_never_logs_keys(sandbox: Sandbox, tmp_path: Path) -> None:
    server = ServerProcess(sandbox, tmp_path / "store", tmp_path / "server.log").start()
    try:
        wrong = "pat.local.0123456789abcdef01234567.NeverLogThisOne0123456789"
        make_tree(tmp_path / "src", small=2, seed=1)
        runs = [
            sandbox.hc("-v", "--api-url", server.url, "--token", token, *command)
            for token in (server.token, wrong)
            for command in (
                ("registry", "create", "gen", "--package-type", "GENERIC"),
                ("artifact", "push", "generic", "gen", f"{tmp_path / 'src'}/.", "--name", "p"),
                ("artifact", "list", "--registry", "gen"),
            )
        ]
        assert [r.code for r in runs] == [0, 0, 0, 3, 3, 3], runs
        assert server.terminate() == 0
    finally:
        server.kill()
    log = server.log_text()
    for token in (server.token, wrong):
        assert token not in log and token.rsplit(".", 1)[-1] not in log, log


def test_a_server_that_echoes_the_key_does_not_get_it_printed(
    sandbox: Sandbox, loop: LoopThread, tmp_path: Path
) -> None:
    async def echo(request: web.Request) -> web.Response:
        key = request.headers.get("x-api-key", "")
        return web.json_response({"code": "UNAUTHORIZED", "message": f"invalid key {key}"}, status=401)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    url = loop.serve_app(app)
    token = "pat.acct.0123456789abcdef01234567.EchoedBackSecret0123456"
    runs = [sandbox.hc("-v", "--api-url", url, "--token", token, "registry", "list")]
    assert runs[0].code == 3, runs
    _assert_never_shown(runs, token)


# -- file permissions ---------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_that_hold_keys_are_private(sandbox: Sandbox, loop: LoopThread, tmp_path: Path) -> None:
    registry = loop.serve_registry(tmp_path / "store")
    # the embedded registry's own key, created by the first command that needs it (not logged in)
    embedded = make_sandboxed_embedded(sandbox)
    assert _mode(embedded / "local-credentials.json") == 0o600
    assert _mode(embedded) == 0o700

    # the Go CLI creates ~/.harness 0755: hc tightens it when it writes the key
    (sandbox.home / ".harness").mkdir(mode=0o755)
    login = sandbox.hc(
        "auth", "login", "--api-url", registry.url, "--api-token", registry.token, "--non-interactive"
    )
    assert login.code == 0, login
    auth_file = sandbox.home / ".harness" / "auth.json"
    assert _mode(auth_file) == 0o600 and _mode(auth_file.parent) == 0o700
    assert registry.token.encode() in auth_file.read_bytes()

    # a failed job leaves its journal (to resume); journals and the hash cache hold no key
    create_registry(sandbox, registry, "gen")
    make_tree(tmp_path / "src", small=3, seed=1)
    proxy = loop.proxy(registry.url, rate=1.0, faults=[Fault.HTTP_500], match="^/pkg/")
    failed = sandbox.hc(
        *target(proxy.url, registry.token),
        "artifact",
        "push",
        "generic",
        "gen",
        f"{tmp_path / 'src'}/.",
        "--name",
        "pkg",
        "--progress",
        "none",
    )
    assert failed.code == 1, failed
    jobs = sandbox.hc_home / "jobs"
    journals = list(jobs.glob("*.db"))
    assert journals, "a failed job keeps its journal"
    assert _mode(jobs) == 0o700 and _mode(sandbox.hc_home / "cache") == 0o700
    for path in [*jobs.iterdir(), *(sandbox.hc_home / "cache").iterdir()]:
        assert registry.token.encode() not in path.read_bytes(), path
        # SQLite creates these 0644 (umask); the 0700 folder is what keeps them private
        assert not (_mode(path) & 0o077 and _mode(path.parent) & 0o077), path
    # the store behind the server: hashed keys in registry.db, artifacts in blobs/
    assert _mode(tmp_path / "store") == 0o700


def make_sandboxed_embedded(sandbox: Sandbox) -> Path:
    """Run a command against the embedded registry (no --api-url): it creates HC_HOME's store."""
    run = sandbox.hc("registry", "list")
    assert run.code == 0, run
    return sandbox.hc_home


def test_the_store_key_file_is_private_even_with_a_loose_umask(sandbox: Sandbox, tmp_path: Path) -> None:
    script = (
        "import os, pathlib, sys; os.umask(0); from hc.server.embedded import ensure_local_credentials; "
        "ensure_local_credentials(pathlib.Path(sys.argv[1]))"
    )
    store = tmp_path / "loose"
    subprocess.run([sys.executable, "-c", script, str(store)], check=True, env=sandbox.process_env())
    assert _mode(store / "local-credentials.json") == 0o600
    assert _mode(store) == 0o700


# -- TLS --------------------------------------------------------------------------------------------


def _certificate(folder: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_registry(loop: LoopThread, tmp_path: Path) -> Iterator[tuple[Registry, Path, list[str]]]:
    """The real registry over HTTPS (self-signed), counting the requests that reach it."""
    cert, key = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    data_dir = tmp_path / "tls-store"
    credentials = ensure_local_credentials(data_dir)
    seen: list[str] = []

    @web.middleware
    async def count(request: web.Request, handler: Any) -> web.StreamResponse:
        seen.append(f"{request.method} {request.path}")
        response: web.StreamResponse = await handler(request)
        return response

    app = create_app(data_dir=data_dir)
    app.middlewares.insert(0, count)

    async def start() -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        return runner, runner.addresses[0][1]

    runner, port = loop.run(start())
    try:
        yield Registry(f"https://127.0.0.1:{port}", credentials.token, "local", data_dir), cert, seen
    finally:
        loop.run(runner.cleanup())


def test_push_and_pull_over_tls_need_trust(
    sandbox: Sandbox, tls_registry: tuple[Registry, Path, list[str]], tmp_path: Path
) -> None:
    registry, cert, seen = tls_registry
    tree = make_tree(tmp_path / "src", small=5, big=(2 << 20,), seed=6)
    push = ("artifact", "push", "generic", "gen", f"{tmp_path / 'src'}/.", "--name", "pkg", "--version", "1")
    pull = ("artifact", "pull", "generic", "gen", "pkg/1", str(tmp_path / "dest"))

    for command in (push, pull, ("registry", "create", "gen", "--package-type", "GENERIC")):
        refused = sandbox.hc(*target(registry, registry.token), *command)
        assert refused.code == 2, refused
        assert refused.stderr.startswith("error: TLS certificate of 127.0.0.1 was not accepted"), refused
        assert "--ca-bundle" in refused.stderr and "--insecure" in refused.stderr
    assert seen == []  # the handshake failed: no request, so the key never left

    trusted = ("--ca-bundle", str(cert))
    assert (
        sandbox.hc(
            *target(registry, registry.token),
            *trusted,
            "registry",
            "create",
            "gen",
            "--package-type",
            "GENERIC",
        ).code
        == 0
    )
    pushed = sandbox.hc(*target(registry, registry.token), *trusted, *push)
    assert pushed.code == 0, pushed
    pulled = sandbox.hc(*target(registry, registry.token), "--insecure", *pull)
    assert pulled.code == 0, pulled
    assert read_tree(tmp_path / "dest") == tree
    listed = sandbox.hc(
        *target(registry, registry.token),
        *trusted,
        "artifact",
        "list",
        "--registry",
        "gen",
        "--package",
        "pkg",
        "--version",
        "1",
        "--format",
        "json",
    )
    assert listed.code == 0, listed
    assert listing_triples(json.loads(listed.stdout)) == expected_listing(tree)
