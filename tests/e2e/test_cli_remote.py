"""hc against a registry served by ``hc server run`` on a free port, as against Harness:
``--api-url http://127.0.0.1:PORT --token KEY`` (the key from ``hc server token create``), and the
``hc auth login | status | logout`` cycle on top of it."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import HcRunner, Sandbox, lines


@dataclass(frozen=True)
class RunningServer:
    url: str
    token: str
    data_dir: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[str], *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"hc server run exited early: {proc.communicate()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"hc server run did not listen on {port} within {timeout}s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data_dir = tmp_path_factory.mktemp("server-store")
    home = tmp_path_factory.mktemp("server-home")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "HC_"))},
        "HC_HOME": str(data_dir),
        "HOME": str(home),
    }
    created = subprocess.run(
        [sys.executable, "-m", "hc", "server", "token", "create"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert created.returncode == 0, created
    token = lines(created.stdout)[-1].strip()
    assert token.startswith("pat."), created.stdout
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hc", "server", "run", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_port(port, proc)
        yield RunningServer(url=f"http://127.0.0.1:{port}", token=token, data_dir=data_dir)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_registry_commands_with_api_url_and_token(hc: HcRunner, server: RunningServer) -> None:
    remote = ("--api-url", server.url, "--token", server.token)
    created = hc(*remote, "registry", "create", "remote1", "--package-type", "GENERIC")
    assert created.exit_code == 0, created
    assert created.stderr == ""  # no embedded-registry notice: a server is configured
    listed = hc("registry", "list", "--format", "json", *remote)
    assert "remote1" in [item["identifier"] for item in json.loads(listed.stdout)]
    item = json.loads(hc(*remote, "--format", "json", "registry", "get", "remote1").stdout)[0]
    assert item["url"].startswith(server.url)
    assert (
        hc(*remote, "registry", "metadata", "set", "--registry", "remote1", "--metadata", "a:1").exit_code
        == 0
    )
    meta = json.loads(
        hc(*remote, "--format", "json", "registry", "metadata", "get", "--registry", "remote1").stdout
    )
    assert [(m["key"], m["value"]) for m in meta] == [("a", "1")]
    deleted = hc(*remote, "registry", "delete", "remote1", "--yes")
    assert deleted.exit_code == 0, deleted
    missing = hc(*remote, "registry", "get", "remote1")
    assert (missing.exit_code, lines(missing.stderr)) == (1, ["error: registry 'remote1' not found"])


def test_environment_variables_configure_the_target(hc: HcRunner, server: RunningServer) -> None:
    env = {"HARNESS_API_URL": server.url, "HARNESS_API_KEY": server.token}
    result = hc("registry", "list", env=env)
    assert result.exit_code == 0, result
    assert result.stderr == ""


def test_a_wrong_key_exits_3(hc: HcRunner, server: RunningServer) -> None:
    account = server.token.split(".")[1]
    result = hc("--api-url", server.url, "--token", f"pat.{account}.nosuchkey.nosecret", "registry", "list")
    assert result.exit_code == 3, result
    (line,) = lines(result.stderr)
    assert line.startswith("error: authentication failed")
    assert "nosecret" not in result.stderr


def test_subprocess_against_the_server(hc_process: HcRunner, server: RunningServer) -> None:
    remote = ("--api-url", server.url, "--token", server.token)
    created = hc_process(*remote, "registry", "create", "viaproc", "--package-type", "NPM")
    assert created.exit_code == 0, created
    got = hc_process(*remote, "registry", "get", "viaproc", "--format", "yaml")
    assert got.exit_code == 0 and "identifier: viaproc" in got.stdout
    bad = hc_process("--api-url", server.url, "--token", "pat.x.y.z", "registry", "list")
    assert bad.exit_code == 3
    assert "Traceback" not in bad.stderr


def test_login_status_logout(hc: HcRunner, sandbox: Sandbox, server: RunningServer) -> None:
    login = hc("auth", "login", "--api-url", server.url, "--api-token", server.token, "--non-interactive")
    assert login.exit_code == 0, login
    assert lines(login.stdout) == [
        "Validating credentials...",
        "Credentials validated successfully",
        "Fetching registry configuration...",
        "Successfully logged into Harness",
        f"API URL:     {server.url}",
        f"Account ID:  {server.token.split('.')[1]}",
    ]
    assert server.token not in login.stdout + login.stderr

    saved = json.loads(sandbox.auth_file.read_text())
    assert saved["base_url"] == server.url and saved["token"] == server.token
    assert saved["registry_url"] == server.url  # from GET /gateway/har/api/v3/system/info
    assert stat.S_IMODE(sandbox.auth_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(sandbox.auth_file.parent.stat().st_mode) == 0o700

    # Logged in: commands use the saved server with no flags and no embedded notice.
    assert hc("registry", "create", "afterlogin", "--package-type", "GENERIC").exit_code == 0
    listed = hc("registry", "list", "--format", "json")
    assert listed.stderr == ""
    assert "afterlogin" in [i["identifier"] for i in json.loads(listed.stdout)]
    assert not sandbox.hc_home.exists()  # the embedded store was never used

    status = hc("auth", "status")
    assert status.exit_code == 0, status
    assert f"API URL:     {server.url}" in status.stdout
    assert "Token:       valid" in status.stdout
    assert server.token not in status.stdout

    logout = hc("auth", "logout")
    assert logout.exit_code == 0
    assert not sandbox.auth_file.exists()


def test_login_with_a_refused_key_saves_nothing(
    hc: HcRunner, sandbox: Sandbox, server: RunningServer
) -> None:
    account = server.token.split(".")[1]
    result = hc(
        "auth", "login", "--api-url", server.url, "--api-token", f"pat.{account}.bad.key", "--non-interactive"
    )
    assert result.exit_code == 3, result
    assert "error: authentication failed" in result.stderr
    assert not sandbox.auth_file.exists()


def test_status_with_a_revoked_key_exits_3(hc: HcRunner, sandbox: Sandbox, server: RunningServer) -> None:
    account = server.token.split(".")[1]
    sandbox.auth_file.parent.mkdir(parents=True)
    sandbox.auth_file.write_text(
        json.dumps({"base_url": server.url, "token": f"pat.{account}.gone.gone", "account_id": account})
    )
    status = hc("auth", "status")
    assert status.exit_code == 3
    assert "Token:       invalid" in status.stdout
    assert "gone.gone" not in status.stdout + status.stderr


def test_interactive_login_prompts_and_hides_the_token(
    hc: HcRunner, sandbox: Sandbox, server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hc.cli.auth.prompt_allowed", lambda: True)
    result = hc("auth", "login", input=f"{server.url}\n{server.token}\nmyorg\n\n")
    assert result.exit_code == 0, result
    assert "Harness API URL" in result.stdout and "API token" in result.stdout
    assert server.token not in result.stdout  # typed without echo
    saved = json.loads(sandbox.auth_file.read_text())
    assert (saved["base_url"], saved["org_id"]) == (server.url, "myorg")
    assert "project_id" not in saved
