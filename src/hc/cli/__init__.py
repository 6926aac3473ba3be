"""The ``hc`` command line: root group, global options, and the one place errors become exit codes.

``main()`` runs click in non-standalone mode and maps what comes out:

- ``HcError``            → ``error: <message>`` on stderr, the error's exit code (2 usage/config, 3 auth…)
- click usage errors     → click's message, exit 2
- Ctrl-C                 → ``error: interrupted``, exit 130
- anything unexpected    → ``error: internal error: <repr>``, exit 1 (the traceback only with -v)
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from hc import __version__
from hc.cli._group import AliasGroup, global_options
from hc.cli.artifact import artifact_group
from hc.cli.auth import auth_group
from hc.cli.context import CliState
from hc.cli.registry import registry_group
from hc.errors import ExitCode, HcError

__all__ = ["cli", "main", "run_and_map_errors"]

#: Commands owned by other modules, imported only when used (``hc server`` pulls in aiohttp.web).
_LAZY_COMMANDS = {"server": ("hc.cli.server", "server_group")}


class HcGroup(AliasGroup):
    """The root group: lazy subcommands, and ``main`` that maps every outcome to an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        names.update(name for name, (module, _) in _LAZY_COMMANDS.items() if _module_exists(module))
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _LAZY_COMMANDS:
            module_name, attribute = _LAZY_COMMANDS[cmd_name]
            if _module_exists(module_name):
                loaded = getattr(importlib.import_module(module_name), attribute)
                if isinstance(loaded, click.Command):
                    return loaded
        return command

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


cli.add_command(registry_group)
cli.add_command(auth_group)
cli.add_command(artifact_group)
assert isinstance(cli, AliasGroup)
cli.add_alias("reg", "registry")
cli.add_alias("art", "artifact")


def main() -> None:
    """Console-script entry point (``hc``) and ``python -m hc``."""
    cli.main(prog_name="hc")


def _error(message: str) -> None:
    click.echo(f"error: {message}", err=True)


def _home() -> Path:
    try:
        return Path.home()
    except RuntimeError:  # no HOME and no passwd entry: keep going, auth.json just is not found
        return Path(os.sep, "nonexistent")


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
