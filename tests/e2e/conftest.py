"""Fixtures for running the real ``hc`` CLI with an isolated HOME and HC_HOME.

Every test here gets a fresh HOME (so ``~/.harness/auth.json`` is the test's own) and HC_HOME (so
the embedded registry's store is too), and none of the user's HARNESS_* variables leak in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from hc.cli import cli

_LEAKY_ENV = (
    "HARNESS_API_URL",
    "HARNESS_API_KEY",
    "HARNESS_ACCOUNT_ID",
    "HARNESS_PKG_URL",
    "ORG_IDENTIFIER",
    "PROJECT_IDENTIFIER",
    "HC_HOME",
    "XDG_DATA_HOME",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
)


@dataclass(frozen=True)
class Run:
    exit_code: int
    stdout: str
    stderr: str

    def __repr__(self) -> str:  # readable assertion failures
        return f"Run(exit={self.exit_code}, stdout={self.stdout!r}, stderr={self.stderr!r})"


@dataclass(frozen=True)
class Sandbox:
    home: Path
    hc_home: Path
    env: dict[str, str]

    @property
    def auth_file(self) -> Path:
        return self.home / ".harness" / "auth.json"


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    home = tmp_path / "home"
    hc_home = tmp_path / "hc-home"
    home.mkdir()
    for name in _LEAKY_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HC_HOME", str(hc_home))
    env = {"HOME": str(home), "HC_HOME": str(hc_home)}
    yield Sandbox(home=home, hc_home=hc_home, env=env)


HcRunner = Callable[..., Run]


@pytest.fixture
def hc(sandbox: Sandbox) -> HcRunner:
    """Run ``hc ARGS`` in-process with click's CliRunner (stdout and stderr kept apart)."""

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Run:
        runner = CliRunner()
        result = runner.invoke(cli, list(args), input=input, env={**sandbox.env, **(env or {})})
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Run(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def hc_process(sandbox: Sandbox) -> HcRunner:
    """Run ``python -m hc ARGS`` as a real subprocess with the sandboxed environment."""

    def run(
        *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
    ) -> Run:
        base = {k: v for k, v in os.environ.items() if k not in _LEAKY_ENV}
        proc = subprocess.run(
            [sys.executable, "-m", "hc", *args],
            input=input,
            capture_output=True,
            text=True,
            env={**base, **sandbox.env, **(env or {})},
            timeout=timeout,
            check=False,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    return run


def lines(text: str) -> Sequence[str]:
    return [line for line in text.splitlines() if line.strip()]


def make_self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, made by the openssl CLI (skips the test without it)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key
