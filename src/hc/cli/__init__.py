"""The ``hc`` command line: root group, global options, and the one place errors become exit codes.

``main()`` runs click in non-standalone mode and maps what comes out:

- ``HcError``            → ``error: <message>`` on stderr, the error's exit code (2 usage/config, 3 auth…)
- click usage errors     → ``error: <click's message> (see 'hc … --help')``, exit 2
- Ctrl-C                 → ``error: interrupted``, exit 130
- anything unexpected    → ``error: internal error: <repr>``, exit 1 (the traceback only with -v)
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from hc import __version__
from hc.cli._group import AliasGroup, LazyCommand, global_options
from hc.cli.context import CliState
from hc.errors import ExitCode, HcError

__all__ = ["COMMANDS", "cli", "main", "run_and_map_errors"]

#: Every command group is imported only when it runs (``hc server`` alone pulls in aiohttp.web and
#: the registry's storage), so ``hc artifact list`` does not pay for ``hc registry migrate``.
COMMANDS: dict[str, LazyCommand] = {
    "artifact": LazyCommand(
        "hc.cli.artifact", "artifact_group", "Push, pull and manage artifacts (alias: art)."
    ),
    "auth": LazyCommand("hc.cli.auth", "auth_group", "Log in to Harness, show the login, log out."),
    "registry": LazyCommand("hc.cli.registry", "registry_group", "Manage registries (alias: reg)."),
    "server": LazyCommand("hc.cli.server", "server_group", "Run and maintain the embedded registry."),
}


class HcGroup(AliasGroup):
    """The root group: ``main`` maps every outcome to an exit code."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> int:
        state = extra.pop("obj", None)
        if not isinstance(state, CliState):
            state = CliState(environ=dict(os.environ), home=_home())

        def call() -> Any:
            return super(HcGroup, self).main(
                args, prog_name or "hc", complete_var, standalone_mode=False, obj=state, **extra
            )

        code = run_and_map_errors(call, state=state)
        if standalone_mode:
            sys.exit(code)
        return code


def run_and_map_errors(call: Callable[[], Any], *, state: CliState) -> int:
    """Run ``call`` (click in non-standalone mode) and turn its outcome into an exit code."""
    try:
        result = call()
        return result if isinstance(result, int) else ExitCode.OK
    except HcError as exc:
        _error(str(exc))
        return int(exc.exit_code)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            _error("interrupted")
            return ExitCode.INTERRUPTED
        _error("aborted")
        return ExitCode.FAILED
    except click.exceptions.NoArgsIsHelpError as exc:  # "hc registry" alone: its help, as click
        exc.show()
        return exc.exit_code
    except click.UsageError as exc:
        # One line, as every other error: click's own "Usage: … / Try … / Error: …" takes three.
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _error(exc.format_message() + where)
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted")
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``hc registry list | head``): stop quietly, and stop Python from
        # complaining again when it flushes stdout at exit.
        _silence_stdout()
        return ExitCode.FAILED
    except Exception as exc:
        _error(f"internal error: {exc!r}")
        if state.verbose:
            import traceback  # only for this rare case: it is not cheap to import

            click.echo(traceback.format_exc().rstrip(), err=True)
        return ExitCode.FAILED
    finally:
        state.teardown()


@click.group("hc", cls=HcGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="hc", message="%(prog)s %(version)s")
@global_options(hidden=False)
def cli() -> None:
    """hc: push, pull and manage artifacts in Harness Artifact Registry.

    With no Harness account configured (no --api-url, HARNESS_API_URL or 'hc auth login'), every
    command runs against the embedded registry on this machine ($HC_HOME).
    """


assert isinstance(cli, AliasGroup)
for _name, _command in COMMANDS.items():
    cli.add_lazy(_name, _command)
cli.add_alias("reg", "registry")
cli.add_alias("art", "artifact")


def main() -> None:
    """Console-script entry point (``hc``) and ``python -m hc``."""
    if sys.stdout is None:
        # Started with stdout closed (``hc … >&-``): Python then has no sys.stdout and click
        # would drop the output without a word, exiting 0 as if it had been shown.
        sys.stdout = _ClosedStdout()
    cli.main(prog_name="hc")


class _ClosedStdout(io.TextIOBase):
    """Stands in for a stdout the process was started without: writing to it is an error."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise HcError("cannot write the output: stdout is closed")


def _error(message: str) -> None:
    from hc.cli.render import printable  # only on the way out with an error

    click.echo(f"error: {printable(message)}", err=True)


def _home() -> Path:
    try:
        return Path.home()
    except RuntimeError:  # no HOME and no passwd entry: keep going, auth.json just is not found
        return Path(os.sep, "nonexistent")


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
