"""The CLI shell: entry points, exit codes, one-line errors, config problems — no registry needed.

Every case here fails (or succeeds) before a registry is contacted, so these run without a server.
"""

from __future__ import annotations

import json

import pytest

from hc.cli import run_and_map_errors
from hc.cli.context import CliState
from hc.config import GlobalFlags
from hc.errors import AuthError, ExitCode

from .conftest import HcRunner, Sandbox, lines


def test_help_and_alias(hc: HcRunner) -> None:
    result = hc("--help")
    assert result.exit_code == 0
    assert "registry" in result.stdout and "auth" in result.stdout
    alias = hc("reg", "--help")
    assert alias.exit_code == 0
    assert "Usage: hc registry" in alias.stdout
    for command in ("list", "get", "create", "delete", "metadata"):
        assert command in alias.stdout


def test_version(hc: HcRunner) -> None:
    result = hc("--version")
    assert (result.exit_code, result.stdout.strip()) == (0, "hc 0.1.0")


def test_python_dash_m_runs_the_same_cli(hc_process: HcRunner) -> None:
    result = hc_process("--version")
    assert (result.exit_code, result.stdout.strip()) == (0, "hc 0.1.0")
    bad = hc_process("registry", "list", "--format", "xml")
    assert bad.exit_code == 2
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("registry", "nosuch"),
        ("registry", "list", "--page", "-1"),
        ("registry", "create", "r1"),  # --package-type is required
        ("--format", "xml", "registry", "list"),
    ],
)
def test_click_usage_errors_exit_2(hc: HcRunner, args: tuple[str, ...]) -> None:
    result = hc(*args)
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr


def test_malformed_token_is_one_line_exit_2(hc: HcRunner) -> None:
    result = hc("registry", "list", "--api-url", "http://127.0.0.1:9", "--token", "garbage")
    assert result.exit_code == ExitCode.USAGE
    assert lines(result.stderr) == [
        "error: malformed token: expected 'pat.<account>.<id>.<secret>'; "
        "check the key, or give the account with --account or HARNESS_ACCOUNT_ID"
    ]
    assert "garbage" not in result.stderr  # the token itself is never echoed


def test_api_url_without_token_says_not_logged_in(hc: HcRunner) -> None:
    result = hc("registry", "list", env={"HARNESS_API_URL": "https://app.example"})
    assert result.exit_code == 2
    assert lines(result.stderr) == ["error: not logged in: run 'hc auth login' or set HARNESS_API_KEY"]


def test_broken_auth_file_is_a_config_error(hc: HcRunner, sandbox: Sandbox) -> None:
    sandbox.auth_file.parent.mkdir(parents=True)
    sandbox.auth_file.write_text("{oops")
    result = hc("registry", "list")
    assert result.exit_code == 2
    assert len(lines(result.stderr)) == 1 and "auth.json is not valid JSON" in result.stderr


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ("team", "error: invalid metadata pair 'team': expected key:value"),
        ("team:", "error: invalid metadata pair 'team:': the value is empty"),
        ("a:1,a:2", "error: invalid metadata pair 'a:2': the key 'a' is given twice"),
    ],
)
def test_malformed_metadata_fails_before_anything_starts(
    hc: HcRunner, sandbox: Sandbox, metadata: str, message: str
) -> None:
    result = hc("registry", "metadata", "set", "--registry", "r1", "--metadata", metadata)
    assert result.exit_code == 2
    assert lines(result.stderr) == [message]
    assert not sandbox.hc_home.exists()  # no embedded registry was started for bad input


@pytest.mark.parametrize("identifier", ["Bad", "a/b", "has space", "-x"])
def test_bad_identifier_is_a_usage_error(hc: HcRunner, sandbox: Sandbox, identifier: str) -> None:
    result = hc("registry", "get", "--", identifier)
    assert result.exit_code == 2
    (line,) = lines(result.stderr)
    assert line.startswith(f"error: invalid registry identifier {identifier!r}")
    assert not sandbox.hc_home.exists()


def test_create_with_bad_package_type(hc: HcRunner) -> None:
    result = hc("registry", "create", "r1", "--package-type", "not a type")
    assert result.exit_code == 2
    assert lines(result.stderr) == [
        "error: invalid package type 'not a type': expected a name like GENERIC, DOCKER or NPM"
    ]


def test_delete_without_terminal_or_yes_refuses(hc: HcRunner, sandbox: Sandbox) -> None:
    result = hc("registry", "delete", "r1")
    assert result.exit_code == 2
    assert lines(result.stderr) == [
        "error: refusing to delete registry 'r1' without confirmation: pass --yes"
    ]
    assert not sandbox.hc_home.exists()


def test_token_without_api_url_is_refused(hc: HcRunner) -> None:
    result = hc("registry", "list", env={"HARNESS_API_KEY": "pat.a.b.c"})
    assert result.exit_code == 2
    assert "HARNESS_API_KEY is set but no API URL is configured" in result.stderr


def test_auth_logout_without_and_with_a_login(hc: HcRunner, sandbox: Sandbox) -> None:
    result = hc("auth", "logout")
    assert result.exit_code == 0
    assert "Not logged in" in result.stdout
    sandbox.auth_file.parent.mkdir(parents=True)
    sandbox.auth_file.write_text(
        json.dumps({"base_url": "https://x", "token": "pat.a.b.c", "account_id": "a"})
    )
    result = hc("auth", "logout")
    assert result.exit_code == 0
    assert "Logged out" in result.stdout
    assert not sandbox.auth_file.exists()


def test_auth_login_non_interactive_needs_a_token(hc: HcRunner, sandbox: Sandbox) -> None:
    result = hc("auth", "login", "--non-interactive", "--api-url", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert lines(result.stderr) == ["error: no API key: pass --api-token or set HARNESS_API_KEY"]
    assert not sandbox.auth_file.exists()


def test_auth_login_with_malformed_token(hc: HcRunner) -> None:
    result = hc("auth", "login", "--non-interactive", "--api-url", "http://127.0.0.1:9", "--api-token", "x")
    assert result.exit_code == 2
    assert "malformed token" in result.stderr


def test_global_flags_work_before_and_after_the_command(hc: HcRunner) -> None:
    before = hc("--format", "xml", "registry", "list")
    after = hc("registry", "list", "--format", "xml")
    assert before.exit_code == after.exit_code == 2


# -- the error mapping itself ---------------------------------------------------------------------


def _state(verbose: bool = False) -> CliState:
    from pathlib import Path

    return CliState(environ={}, home=Path("/nonexistent"), flags=GlobalFlags(verbose=verbose))


def _raise(exc: BaseException) -> object:
    raise exc


def test_unexpected_exception_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_and_map_errors(lambda: _raise(RuntimeError("boom")), state=_state())
    assert code == 1
    err = capsys.readouterr().err
    assert lines(err) == ["error: internal error: RuntimeError('boom')"]


def test_unexpected_exception_shows_traceback_with_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_and_map_errors(lambda: _raise(RuntimeError("boom")), state=_state(verbose=True))
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: internal error: RuntimeError('boom')")
    assert "Traceback (most recent call last)" in err


def test_keyboard_interrupt_exits_130(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_and_map_errors(lambda: _raise(KeyboardInterrupt()), state=_state()) == 130
    assert "error: interrupted" in capsys.readouterr().err


def test_hc_error_uses_its_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_and_map_errors(lambda: _raise(AuthError("key refused")), state=_state()) == 3
    assert capsys.readouterr().err == "error: key refused\n"
