"""Click building blocks shared by hc's commands: aliases, lazy subcommands, global options, the
state object.

Subcommands that need heavy imports (the transfer engine, the server) are registered as
``LazyCommand``s: their module is imported when the command is resolved, not when hc starts, and
the parent's ``--help`` lists them by a summary, so start-up pays only for the command at hand.

Global options (``--format``, ``--api-url``, ``-v`` …) are accepted both before the command, as on
the root group, and after it (``hc registry list --format json``), as the Go CLI's persistent flags
are; the later occurrence wins. On leaf commands they are hidden from ``--help`` to keep it short.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from hc.cli._options import option_group
from hc.cli.context import CliState
from hc.errors import UsageError
from hc.protocol.identifiers import is_utf8_text

__all__ = ["AliasGroup", "LazyCommand", "echo_text", "global_options", "pass_state", "prompt_allowed"]

_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass(frozen=True)
class LazyCommand:
    """A subcommand defined as ``attribute`` of ``module``, imported when first resolved.

    ``summary`` stands in for the command's help in its parent's command list; it is the first
    sentence of the command's own help (a unit test keeps the two the same)."""

    module: str
    attribute: str
    summary: str

    def load(self) -> click.Command:
        command = getattr(importlib.import_module(self.module), self.attribute)
        if not isinstance(command, click.Command):  # pragma: no cover - a wrong table entry
            raise TypeError(f"{self.module}.{self.attribute} is not a click command")
        return command


class AliasGroup(click.Group):
    """A group whose commands may have aliases (``hc reg`` for ``hc registry``) and may be lazy."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.aliases: dict[str, str] = {}
        self.lazy: dict[str, LazyCommand] = {}

    def add_alias(self, alias: str, name: str) -> None:
        self.aliases[alias] = name

    def add_lazy(self, name: str, command: LazyCommand) -> None:
        self.lazy[name] = command

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        name = self.aliases.get(cmd_name, cmd_name)
        command = super().get_command(ctx, name)
        if command is None and name in self.lazy:
            command = self.lazy[name].load()
            self.add_command(command, name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # As click's, but a lazy command not loaded yet is listed by its summary (a stand-in with
        # that help shortens it exactly as click shortens the real one), so --help imports nothing.
        rows: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            lazy = self.lazy.get(name)
            if lazy is not None and name not in self.commands:
                rows.append((name, click.Command(name, help=lazy.summary)))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command))
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in rows])

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # Report the real name (not the alias) so help and errors say "hc registry".
        _, command, rest = super().resolve_command(ctx, args)
        return (command.name if command else None), command, rest


def _state(ctx: click.Context) -> CliState:
    state = ctx.find_object(CliState)
    if state is None:  # pragma: no cover - main() always provides one
        raise click.UsageError("internal: no CLI state")
    return state


def _store(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        # Only what was actually given: an absent leaf option must not undo a root one.
        if value is None or value is False:
            return
        _state(ctx).set_flag(name, value)

    return callback


def _global_option_specs(hidden: bool) -> list[tuple[str, Callable[[_F], _F]]]:
    def option(*decls: str, name: str, **kwargs: Any) -> tuple[str, Callable[[_F], _F]]:
        return name, click.option(
            *decls, name, expose_value=False, callback=_store(name), hidden=hidden, **kwargs
        )

    return [
        option("--api-url", name="api_url", metavar="URL", help="Harness API URL [env: HARNESS_API_URL]."),
        option(
            "--pkg-url",
            name="pkg_url",
            metavar="URL",
            help="Package endpoint base URL [env: HARNESS_PKG_URL; default: from login, else the API URL].",
        ),
        option("--token", name="token", metavar="KEY", help="API key [env: HARNESS_API_KEY]."),
        option(
            "--account",
            name="account",
            metavar="ID",
            help="Account identifier [env: HARNESS_ACCOUNT_ID; default: from the token].",
        ),
        option("--org", name="org", metavar="ID", help="Organization [env: ORG_IDENTIFIER]."),
        option("--project", name="project", metavar="ID", help="Project [env: PROJECT_IDENTIFIER]."),
        option(
            "--format",
            name="output_format",
            type=click.Choice(["table", "json", "yaml"], case_sensitive=False),
            help="Output format [default: table].",
        ),
        option("-v", "--verbose", name="verbose", is_flag=True, help="Explain what hc does, on stderr."),
        option("-q", "--quiet", name="quiet", is_flag=True, help="Print only results and errors."),
        option("--insecure", name="insecure", is_flag=True, help="Do not verify TLS certificates."),
        option(
            "--ca-bundle",
            name="ca_bundle",
            metavar="FILE",
            type=click.Path(dir_okay=False),
            help="Also trust the CA certificates in FILE.",
        ),
        option(
            "--retry-budget",
            name="retry_budget",
            metavar="SECONDS",
            type=click.FloatRange(min=0),
            help="Keep retrying a registry that is unreachable or answers 502/503/504 for up to "
            "SECONDS [env: HC_RETRY_BUDGET; default: 30; 0: only the attempt count].",
        ),
    ]


def global_options(*, hidden: bool = True, exclude: Sequence[str] = ()) -> Callable[[_F], _F]:
    """Attach the global options to a command (``exclude`` names options it defines itself)."""

    return option_group(*(attach for name, attach in _global_option_specs(hidden) if name not in exclude))


def pass_state(func: Callable[..., Any]) -> Callable[..., Any]:
    """Pass the invocation's ``CliState`` as the first argument (after checking that every text
    argument is valid UTF-8: see ``reject_undecodable_text``)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        reject_undecodable_text(ctx)
        return func(_state(ctx), *args, **kwargs)

    return functools.update_wrapper(wrapper, func)


def reject_undecodable_text(ctx: click.Context) -> None:
    """Refuse a text argument that is not valid UTF-8 (a usage error, before anything starts).

    Names, versions, patterns and metadata go to a registry as UTF-8. Bytes that are not UTF-8
    reach Python as lone surrogates (PEP 383); left alone they fail deep in the HTTP client, are
    dropped from a query string (so another resource answers), or break the server. Local paths
    (``click.Path`` parameters) are exempt: a file system takes any bytes."""
    for param in ctx.command.params:
        if param.name is None or isinstance(param.type, click.Path | click.File):
            continue
        value = ctx.params.get(param.name)
        for item in value if isinstance(value, tuple | list) else (value,):
            if isinstance(item, str) and not is_utf8_text(item):
                # A key is never echoed, not even a broken one.
                shown = "" if param.name.endswith("token") else f" {item!r}"
                raise UsageError(f"{_param_label(param)}{shown} is not valid UTF-8 text")


def _param_label(param: click.Parameter) -> str:
    """How the user wrote the parameter: its long option name, or an argument's metavar."""
    if isinstance(param, click.Option):
        return max(param.opts, key=len)
    return param.human_readable_name


def echo_text(text: str) -> None:
    """Print ``text`` and a line break on stdout, or nothing at all when it is empty."""
    if text:
        click.echo(text)


def prompt_allowed() -> bool:
    """Whether hc may ask the user something: stdin is a terminal."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stdin
        return False
