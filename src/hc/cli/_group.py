"""Click building blocks shared by hc's commands: aliases, global options, the state object.

Global options (``--format``, ``--api-url``, ``-v`` …) are accepted both before the command, as on
the root group, and after it (``hc registry list --format json``), as the Go CLI's persistent flags
are; the later occurrence wins. On leaf commands they are hidden from ``--help`` to keep it short.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from hc.cli.context import CliState

__all__ = ["AliasGroup", "global_options", "pass_state", "prompt_allowed"]

_F = TypeVar("_F", bound=Callable[..., Any])


class AliasGroup(click.Group):
    """A group whose commands may have aliases (``hc reg`` for ``hc registry``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.aliases: dict[str, str] = {}

    def add_alias(self, alias: str, name: str) -> None:
        self.aliases[alias] = name

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))

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
    ]


def global_options(*, hidden: bool = True, exclude: Sequence[str] = ()) -> Callable[[_F], _F]:
    """Attach the global options to a command (``exclude`` names options it defines itself)."""

    def decorate(func: _F) -> _F:
        for name, attach in reversed(_global_option_specs(hidden)):
            if name not in exclude:
                func = attach(func)
        return func

    return decorate


def pass_state(func: Callable[..., Any]) -> Callable[..., Any]:
    """Pass the invocation's ``CliState`` as the first argument."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(_state(click.get_current_context()), *args, **kwargs)

    return functools.update_wrapper(wrapper, func)


def prompt_allowed() -> bool:
    """Whether hc may ask the user something: stdin is a terminal."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stdin
        return False
