"""Bad input on the command line: one ``error: …`` line, the right exit code, nothing lost.

A sweep of every command with malformed arguments found these cases; each table row is argv →
exit code + what the one stderr line says. Cases that fail before a registry is needed also check
that no embedded registry store was created for them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path

import pytest

from hc.cli.context import run_async
from hc.config import AuthConfig, write_auth_file
from hc.errors import ExitCode

from ._artifact_support import live_registry
from .conftest import _LEAKY_ENV, HcRunner, Sandbox, lines

#: What Python makes of the byte 0xff in argv (not UTF-8): a lone surrogate (PEP 383).
NOT_UTF8 = os.fsdecode(b"\xff")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding ``f.txt`` and ``g.txt`` to push."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "f.txt").write_text("hello\n")
    (work / "g.txt").write_text("world\n")
    monkeypatch.chdir(work)
    return work


def _one_error(stderr: str) -> str:
    """The single ``error:`` line of a failed command (the embedded-registry notice aside)."""
    errors = [line for line in lines(stderr) if not line.startswith("hc: ")]
    assert len(errors) == 1, stderr
    assert errors[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return errors[0]


# -- flags and arguments click refuses -------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message", "command"),
    [
        (("registry", "list", "x"), "Got unexpected extra argument (x)", "hc registry list"),
        (
            ("registry", "list", "--page", "-1"),
            "Invalid value for '--page': -1 is not in the range 0<=x<=2147483647.",
            "hc registry list",
        ),
        (("registry", "nosuch"), "No such command 'nosuch'.", "hc registry"),
        (("registry", "get"), "Missing argument 'IDENTIFIER'.", "hc registry get"),
        (
            ("artifact", "push", "generic", "r1", "f.txt"),
            "Missing option '-n' / '--name'.",
            "hc artifact push generic",
        ),
        (
            ("--format", "xml", "registry", "list"),
            "Invalid value for '--format': 'xml' is not one of 'table', 'json', 'yaml'.",
            "hc",
        ),
        (
            ("artifact", "pull", "generic", "r1", "p", "out", "--concurrency", "0"),
            "Invalid value for '--concurrency': 0 is not in the range 1<=x<=1024.",
            "hc artifact pull generic",
        ),
    ],
)
def test_click_usage_errors_are_one_line(
    hc: HcRunner, sandbox: Sandbox, args: tuple[str, ...], message: str, command: str
) -> None:
    # Before: click's three lines (Usage: …, Try '… --help' for help., Error: …).
    result = hc(*args)
    assert result.exit_code == ExitCode.USAGE, result
    assert lines(result.stderr) == [f"error: {message} (see '{command} --help')"]
    assert not sandbox.hc_home.exists()


def test_a_group_without_its_command_still_shows_its_help(hc: HcRunner) -> None:
    result = hc("registry")
    assert result.exit_code == ExitCode.USAGE, result
    assert "Usage: hc registry" in result.stderr and "Commands:" in result.stderr


# -- names that are not UTF-8 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "label"),
    [
        (("registry", "metadata", "set", "--registry", "r1", "--metadata", f"a:{NOT_UTF8}"), "--metadata"),
        (
            ("registry", "create", "r1", "--package-type", "GENERIC", "--description", NOT_UTF8),
            "--description",
        ),
        (("artifact", "list", "--registry", "r1", "--package", NOT_UTF8), "--package"),
        (("artifact", "metadata", "get", "--registry", "r1", "--package", NOT_UTF8), "--package"),
        (
            (
                "artifact",
                "metadata",
                "set",
                "--registry",
                "r1",
                "--package",
                "p",
                "--metadata",
                f"{NOT_UTF8}:v",
            ),
            "--metadata",
        ),
        (("artifact", "push", "generic", "r1", "f.txt", "-n", NOT_UTF8), "--name"),
        (("artifact", "push", "generic", "r1", "f.txt", "-n", "p", "--version", NOT_UTF8), "--version"),
        (("artifact", "pull", "generic", "r1", f"p/{NOT_UTF8}", "out"), "PACKAGE[/VERSION[/FILE]]"),
        (("artifact", "delete", NOT_UTF8, "--registry", "r1", "--yes"), "PATTERN"),
        (("artifact", "copy", f"r1/{NOT_UTF8}/1.0", "r2"), "SRC_REGISTRY/PACKAGE/VERSION"),
    ],
)
def test_text_that_is_not_utf8_is_refused_up_front(
    hc: HcRunner, sandbox: Sandbox, workdir: Path, args: tuple[str, ...], label: str
) -> None:
    # Before: an internal error (UnicodeEncodeError), a server 500 with its traceback, or — for
    # metadata get — the registry's metadata shown as if it were the package's.
    result = hc(*args)
    assert result.exit_code == ExitCode.USAGE, result
    line = _one_error(result.stderr)
    assert line.startswith(f"error: {label} '") and line.endswith("' is not valid UTF-8 text"), line
    assert "\\udcff" in line  # the byte is shown escaped, not sent to the terminal raw
    assert not sandbox.hc_home.exists()


@pytest.mark.parametrize(
    "args",
    [
        (
            "auth",
            "login",
            "--non-interactive",
            "--api-url",
            "http://127.0.0.1:9",
            "--api-token",
            f"pat.a.b.{NOT_UTF8}",
        ),
        (
            "artifact",
            "copy",
            "r1/p/1",
            "r2",
            "--to-api-url",
            "http://127.0.0.1:9",
            "--to-token",
            f"pat.a.b.{NOT_UTF8}",
        ),
    ],
)
def test_a_key_that_is_not_utf8_is_refused_without_echoing_it(hc: HcRunner, args: tuple[str, ...]) -> None:
    result = hc(*args)
    assert result.exit_code == ExitCode.USAGE, result
    assert _one_error(result.stderr).endswith(" is not valid UTF-8 text")
    assert "pat.a.b" not in result.stderr


def test_local_paths_are_not_checked_as_text(hc: HcRunner, sandbox: Sandbox, workdir: Path) -> None:
    """The file system takes any bytes: a local path is looked up, not refused as text."""
    result = hc("artifact", "push", "generic", "r1", NOT_UTF8, "-n", "p")
    assert result.exit_code == ExitCode.USAGE, result
    assert _one_error(result.stderr) == "error: no such file or directory: '\\udcff'"


def test_pull_into_a_directory_whose_name_is_not_utf8(hc: HcRunner, pushed: Path) -> None:
    dest = pushed / NOT_UTF8
    result = hc("artifact", "pull", "generic", "r1", "p/1.0.0", str(dest), "--progress", "none")
    assert result.exit_code == 0, result
    assert (dest / "f.txt").read_text() == "hello\n"


def test_push_of_a_file_whose_name_is_not_utf8_is_one_failed_item(hc: HcRunner, pushed: Path) -> None:
    folder = pushed / "odd"
    folder.mkdir()
    (folder / f"{NOT_UTF8}.txt").write_text("x")
    result = hc("artifact", "push", "generic", "r1", "odd", "-n", "p", "--progress", "none")
    assert result.exit_code != 0, result
    assert "internal error" not in result.stderr and "udcff" in result.stderr


# -- numbers out of range --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("registry", "list", "--page", "99999999999"),
        ("artifact", "list", "--page", "2147483648"),
    ],
)
def test_a_page_beyond_int32_is_a_usage_error(hc: HcRunner, sandbox: Sandbox, args: tuple[str, ...]) -> None:
    # As the Go CLI's int32 flag; before, the request went out and the server's 400 exited 1.
    result = hc(*args)
    assert result.exit_code == ExitCode.USAGE, result
    assert "'--page'" in result.stderr and "Traceback" not in result.stderr
    assert not sandbox.hc_home.exists()


# -- pull destinations ---------------------------------------------------------------------------


@pytest.fixture
def pushed(hc: HcRunner, workdir: Path) -> Path:
    """Registry r1 holding p/1.0.0/{f.txt,g.txt}."""
    assert hc("registry", "create", "r1", "--package-type", "GENERIC").exit_code == 0
    result = hc("artifact", "push", "generic", "r1", "f.txt", "g.txt", "-n", "p", "--progress", "none")
    assert result.exit_code == 0, result
    return workdir


def test_an_empty_destination_is_refused(hc: HcRunner, sandbox: Sandbox, workdir: Path) -> None:
    # Before: '' meant the current directory (an unset shell variable pulled into the cwd).
    result = hc("artifact", "pull", "generic", "r1", "p/1.0.0", "", "--progress", "none")
    assert result.exit_code == ExitCode.USAGE, result
    assert (
        _one_error(result.stderr)
        == "error: the destination is empty: give the directory (or file) to pull into"
    )
    assert not sandbox.hc_home.exists()


@pytest.mark.parametrize("artifact", ["p/1.0.0", "p/1.0.0/f.txt", "p"])
def test_a_destination_under_a_file_is_one_line(hc: HcRunner, pushed: Path, artifact: str) -> None:
    # Before: "internal error: NotADirectoryError(20, 'Not a directory')".
    (pushed / "plain").write_text("keep me")
    result = hc("artifact", "pull", "generic", "r1", artifact, "plain/sub", "--progress", "none")
    assert result.exit_code == ExitCode.USAGE, result
    assert _one_error(result.stderr) == "error: cannot create the destination 'plain/sub': Not a directory"
    assert (pushed / "plain").read_text() == "keep me"


# -- --results and --retry-failed ------------------------------------------------------------------


def test_results_file_that_is_a_pushed_file_is_refused(hc: HcRunner, sandbox: Sandbox, workdir: Path) -> None:
    # Before: f.txt was truncated for the results, then pushed empty (a 409) — the file was lost.
    result = hc("artifact", "push", "generic", "r1", "f.txt", "-n", "p", "--results", "f.txt")
    assert result.exit_code == ExitCode.USAGE, result
    assert (
        _one_error(result.stderr) == "error: --results 'f.txt' is one of the files to push: name another file"
    )
    assert (workdir / "f.txt").read_text() == "hello\n"
    assert not sandbox.hc_home.exists()


def test_retry_failed_and_results_may_name_the_same_file(hc: HcRunner, pushed: Path) -> None:
    # The natural loop: run again with --retry-failed r.jsonl --results r.jsonl. Before, the
    # results file was truncated before it was read: nothing was retried, the failures forgotten.
    results = pushed / "r.jsonl"
    results.write_text(
        json.dumps({"path": "f.txt", "status": "failed"})
        + "\n"
        + json.dumps({"path": "g.txt", "status": "done"})
        + "\n"
    )
    result = hc(
        "artifact", "push", "generic", "r1", "f.txt", "g.txt", "-n", "p", "--version", "2",
        "--progress", "none", "--retry-failed", str(results), "--results", str(results),
    )  # fmt: skip
    assert result.exit_code == 0, result
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["path"], r["status"]) for r in records] == [("f.txt", "done")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("artifact", "push", "generic", "r1", "f.txt", "-n", "p", "--retry-failed", "bad.jsonl"),
            "error: bad.jsonl:2: not UTF-8 text",
        ),
        (
            ("artifact", "metadata", "set", "--registry", "r1", "--metadata", "a:b", "--from", "bad.jsonl"),
            "error: bad.jsonl:2: not UTF-8 text",
        ),
    ],
)
def test_a_jsonl_input_that_is_not_utf8_is_one_line(
    hc: HcRunner, pushed: Path, args: tuple[str, ...], message: str
) -> None:
    # Before: "internal error: UnicodeDecodeError(...)".
    (pushed / "bad.jsonl").write_bytes(b'{"path": "f.txt", "status": "failed", "package": "p"}\n\xff\xfe\n')
    result = hc(*args)
    assert result.exit_code == ExitCode.USAGE, result
    assert _one_error(result.stderr) == message


# -- registry migrate -----------------------------------------------------------------------------

_MIGRATION = """\
source: {type: WEBDAV, endpoint: http://127.0.0.1:1}
destination: {type: HAR, endpoint: http://127.0.0.1:1, credentials: {username: u, password: pat.a.b.c}}
mappings: [{artifactType: GENERIC, sourceRegistry: a, destinationRegistry: b}]
"""


@pytest.mark.parametrize(
    ("flags", "output", "input_flag"),
    [
        (("--results", "m.yaml"), "--results 'm.yaml'", "--config"),
        (("--dry-run", "--plan-out", "m.yaml"), "--plan-out 'm.yaml'", "--config"),
        (("--plan", "plan.jsonl", "--results", "plan.jsonl"), "--results 'plan.jsonl'", "--plan"),
        (("--dry-run", "--plan-out", "r.jsonl", "--results", "r.jsonl"), "--plan-out 'r.jsonl'", "--results"),
    ],
)
def test_migrate_outputs_never_overwrite_its_inputs(
    hc: HcRunner, workdir: Path, flags: tuple[str, ...], output: str, input_flag: str
) -> None:
    # Before: the config (or plan) was truncated for the results or the plan, and the user's
    # file was gone once the job had started.
    (workdir / "m.yaml").write_text(_MIGRATION)
    (workdir / "plan.jsonl").write_text("")
    result = hc("registry", "migrate", "-c", "m.yaml", "--progress", "none", "--retry-budget", "0", *flags)
    assert result.exit_code == ExitCode.USAGE, result
    assert _one_error(result.stderr) == f"error: {output} is the {input_flag} file: name another file"
    assert (workdir / "m.yaml").read_text() == _MIGRATION


def test_migrate_plan_that_is_not_utf8_is_one_line(hc: HcRunner, workdir: Path, tmp_path: Path) -> None:
    with live_registry(tmp_path / "dest") as live:
        assert hc(*live.args(), "registry", "create", "b", "--package-type", "GENERIC").exit_code == 0
        (workdir / "m.yaml").write_text(
            _MIGRATION.replace("http://127.0.0.1:1, credentials", f"{live.url}, credentials").replace(
                "pat.a.b.c", live.token
            )
        )
        (workdir / "plan.jsonl").write_bytes(b"\xff\n")
        result = hc("registry", "migrate", "-c", "m.yaml", "--plan", "plan.jsonl", "--progress", "none")
    assert result.exit_code == ExitCode.USAGE, result
    assert _one_error(result.stderr) == "error: plan.jsonl:1: not UTF-8 text"


# -- copy ------------------------------------------------------------------------------------------


def test_copy_to_a_missing_hc_home_creates_no_store(hc: HcRunner, pushed: Path) -> None:
    # Before: a typo in --to-hc-home created a whole registry store there, then said the
    # destination registry was not found.
    missing = pushed / "no-such-store"
    result = hc("artifact", "copy", "r1/p/1.0.0", "r2", "--to-hc-home", str(missing), "--progress", "none")
    assert result.exit_code == ExitCode.USAGE, result
    assert _one_error(result.stderr) == (
        f"error: --to-hc-home {str(missing)!r} holds no registry store "
        "(pass --create-registry to start one there)"
    )
    assert not missing.exists()

    other = pushed / "other-store"  # the check lets an existing store through
    assert (
        hc("registry", "create", "r2", "--package-type", "GENERIC", env={"HC_HOME": str(other)}).exit_code
        == 0
    )
    copied = hc("artifact", "copy", "r1/p/1.0.0", "r2", "--to-hc-home", str(other), "--progress", "none")
    assert copied.exit_code == 0, copied


# -- the process's own streams ---------------------------------------------------------------------


@pytest.mark.parametrize("args", [("--version",), ("registry", "list", "--format", "json")])
def test_closed_stdout_fails_instead_of_losing_the_output(sandbox: Sandbox, args: tuple[str, ...]) -> None:
    # ``hc registry list >&-``: before, the listing vanished and hc exited 0.
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_ENV}
    proc = subprocess.run(
        [sys.executable, "-m", "hc", *args],
        stdin=subprocess.DEVNULL,
        preexec_fn=lambda: os.close(1),  # as the shell's >&-: hc starts with no stdout at all
        stderr=subprocess.PIPE,
        env={**env, **sandbox.env},
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == ExitCode.FAILED, proc.stderr
    assert _one_error(proc.stderr) == "error: cannot write the output: stdout is closed"


async def _endless() -> AsyncGenerator[int, None]:
    try:
        while True:
            yield 1
    finally:
        await asyncio.sleep(0)


async def _listing() -> AsyncGenerator[int, None]:
    async with aclosing(_endless()) as items:
        async for item in items:
            yield item


async def _interrupted_while_listing() -> None:
    listing = _listing()
    await anext(listing)
    raise KeyboardInterrupt


def test_ctrl_c_during_a_listing_prints_no_asyncgen_traceback(caplog: pytest.LogCaptureFixture) -> None:
    # Ctrl-C in a pull of a big version: asyncio closed the abandoned (nested) listing generators
    # at shutdown and printed "an error occurred during closing of asynchronous generator" with a
    # traceback under the "interrupted" line. The exit stays 130; the noise goes to -v only.
    caplog.set_level(logging.DEBUG)
    with pytest.raises(KeyboardInterrupt):
        run_async(_interrupted_while_listing())
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


_BROKEN_CATALOG = """
from hc.server.metadata import Catalog

def broken(*args, **kwargs):
    raise RuntimeError("injected fault")

Catalog.list_registries = broken
from hc.cli import main
main()
"""


@pytest.mark.parametrize(
    ("program", "args", "message"),
    [
        # an internal error in the registry (fault injected: its catalog fails)
        (_BROKEN_CATALOG, ("registry", "list", "--retry-budget", "0"), "internal server error"),
        # a request aiohttp's own parser refuses (a 20,000-character search term)
        ("from hc.cli import main; main()", ("artifact", "get", "a" * 20_000), "HTTP 400"),
    ],
)
def test_an_embedded_registry_failure_prints_no_server_traceback(
    sandbox: Sandbox, program: str, args: tuple[str, ...], message: str
) -> None:
    # The in-process registry (hc's handlers, and aiohttp's parser) logged its side of the error,
    # traceback and all, to the command's stderr above the client's own error line, once per
    # attempt. A real process: only there does Python's last-resort log handler print to stderr.
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_ENV}
    proc = subprocess.run(
        [sys.executable, "-c", program, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env={**env, **sandbox.env},
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == ExitCode.FAILED, proc.stderr
    assert message in _one_error(proc.stderr)


# -- configuration files ---------------------------------------------------------------------------


def test_auth_file_that_is_not_utf8_is_a_config_error(hc: HcRunner, sandbox: Sandbox) -> None:
    sandbox.auth_file.parent.mkdir(parents=True)
    sandbox.auth_file.write_bytes(b"\xff\xfe{}")
    result = hc("registry", "list")
    assert result.exit_code == ExitCode.USAGE, result
    assert "auth.json" in _one_error(result.stderr)


def test_a_key_with_a_line_break_is_a_config_error(hc: HcRunner, tmp_path: Path) -> None:
    with live_registry(tmp_path / "server") as live:
        result = hc("registry", "list", *live.args(token=live.token + "\nX-Evil: 1"))
    assert result.exit_code == ExitCode.USAGE, result
    assert "malformed token" in _one_error(result.stderr)
    assert "X-Evil" not in result.stderr


def test_an_auth_file_others_can_read_works_but_says_so(
    hc: HcRunner, sandbox: Sandbox, tmp_path: Path
) -> None:
    with live_registry(tmp_path / "server") as live:
        write_auth_file(
            sandbox.auth_file, AuthConfig(base_url=live.url, token=live.token, account_id=live.account)
        )
        sandbox.auth_file.chmod(0o644)
        result = hc("registry", "list")
        assert result.exit_code == 0, result
        warning = f"warning: {sandbox.auth_file} holds your API key and is readable by other users"
        assert warning in result.stderr
        assert live.token not in result.stderr
        sandbox.auth_file.chmod(0o600)
        assert "warning:" not in hc("registry", "list").stderr
