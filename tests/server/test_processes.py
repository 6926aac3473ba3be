"""``hc server run`` as a real process: readiness, SIGKILL mid-upload, SIGTERM, two servers on one store."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from hc.server.admin import fsck
from hc.server.embedded import create_api_key

_ENV_DROP = ("HC_HOME", "XDG_DATA_HOME", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    token: str

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
            sock.sendall(
                (
                    f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nx-api-key: {self.token}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
                ).encode()
                + body
            )
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, _, payload = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), payload


def start_server(data_dir: Path, token: str) -> ServerProcess:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hc", "server", "run", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    assert line.startswith(f"hc registry serving http://127.0.0.1:{port} (data: {data_dir})"), line
    return ServerProcess(proc=proc, port=port, token=token)


@pytest.fixture
def server_factory(data_dir: Path) -> Iterator[tuple[str, list[ServerProcess]]]:
    token = create_api_key(data_dir, "local")
    started: list[ServerProcess] = []
    yield token, started
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
        server.proc.wait(timeout=30)
        if server.proc.stderr is not None:
            server.proc.stderr.close()


def _create_registry(server: ServerProcess) -> None:
    status, _ = server.request(
        "POST",
        "/gateway/har/api/v1/registry?space_ref=local",
        b'{"identifier": "gen", "packageType": "GENERIC"}',
        {"Content-Type": "application/json"},
    )
    assert status in (201, 409)


def test_sigkill_during_a_large_upload_leaves_nothing_visible(
    data_dir: Path, server_factory: tuple[str, list[ServerProcess]]
) -> None:
    token, started = server_factory
    server = start_server(data_dir, token)
    started.append(server)
    _create_registry(server)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    try:
        sock.sendall(
            (
                f"PUT /pkg/local/gen/files/big/1.0/huge.bin HTTP/1.1\r\nHost: x\r\nx-api-key: {token}\r\n"
                f"Content-Length: {64 << 20}\r\n\r\n"
            ).encode()
        )
        chunk = os.urandom(1 << 20)
        for _ in range(12):
            sock.sendall(chunk)
        deadline = time.monotonic() + 20
        tmp = data_dir / "tmp"
        while not any(p.stat().st_size > 0 for p in tmp.iterdir()):
            assert time.monotonic() < deadline, "the upload never reached the disk"
            time.sleep(0.05)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=30)
    finally:
        sock.close()
    blobs = [p for p in (data_dir / "blobs").rglob("*") if p.is_file()]
    assert blobs == []  # the partial body is only ever a temp file
    restarted = start_server(data_dir, token)
    started.append(restarted)
    status, _ = restarted.request("GET", "/pkg/local/gen/files/big/1.0/huge.bin")
    assert status == 404
    assert list((data_dir / "tmp").iterdir()) == []  # swept at start-up
    report = fsck(data_dir)
    assert report.clean, report.faults


def test_sigterm_lets_an_in_flight_upload_finish(
    data_dir: Path, server_factory: tuple[str, list[ServerProcess]]
) -> None:
    token, started = server_factory
    server = start_server(data_dir, token)
    started.append(server)
    _create_registry(server)
    body = os.urandom(3 << 20)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            (
                f"PUT /pkg/local/gen/files/p/1/f.bin HTTP/1.1\r\nHost: x\r\nx-api-key: {token}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            + body[: 1 << 20]
        )
        time.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        sock.sendall(body[1 << 20 :])
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    assert response.split()[1] == b"201", response[:300]
    assert server.proc.wait(timeout=30) == 0
    restarted = start_server(data_dir, token)
    started.append(restarted)
    status, got = restarted.request("GET", "/pkg/local/gen/files/p/1/f.bin")
    assert (status, got) == (200, body)


def test_two_servers_share_one_store(data_dir: Path, server_factory: tuple[str, list[ServerProcess]]) -> None:
    token, started = server_factory
    first, second = start_server(data_dir, token), start_server(data_dir, token)
    started.extend([first, second])
    _create_registry(first)
    payloads = {f"p/{i % 3}/f{i}.bin": os.urandom(1000 + i) if i % 2 else b"shared bytes" for i in range(60)}

    def upload(item: tuple[int, tuple[str, bytes]]) -> int:
        index, (path, data) = item
        server = first if index % 2 else second
        headers = {"X-Checksum-Sha256": hashlib.sha256(data).hexdigest()}
        return server.request("PUT", f"/pkg/local/gen/files/{path}", data, headers)[0]

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(upload, enumerate(payloads.items())))
    assert set(statuses) == {201}
    for index, (path, data) in enumerate(payloads.items()):
        server = second if index % 2 else first  # read through the other process
        assert server.request("GET", f"/pkg/local/gen/files/{path}") == (200, data)
    assert fsck(data_dir).clean


def test_run_on_a_busy_port_and_bad_token_account_are_usage_errors(data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "hc", "server", "run", "--data-dir", str(data_dir), "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2, result
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hc",
            "server",
            "token",
            "create",
            "--data-dir",
            str(data_dir),
            "--account",
            "a.b",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "invalid account identifier" in result.stderr
