"""Option groups several commands share, declared once: the same flag names, types and defaults
everywhere, and one help text per meaning (a push's ``--results`` lists files, a bulk job's lists
targets, so those keep their own words).

Also ``ProgressMode``, the value of ``--progress``. It lives here, not in ``progress``, so that
declaring the flag does not import tqdm and the transfer engine: every command module is imported
to parse its flags, and start-up time is part of every command.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import click

from hc.config import DEFAULT_CONCURRENCY

__all__ = [
    "BARS_OR_LINES",
    "DEFAULT_CONCURRENCY",
    "ProgressMode",
    "bulk_options",
    "bulk_selectors",
    "concurrency_option",
    "dry_run_option",
    "metadata_option",
    "option_group",
    "page_option",
    "progress_option",
    "registry_option",
    "results_option",
    "shard_option",
    "transfer_options",
]

_F = TypeVar("_F", bound=Callable[..., Any])
Decorator = Callable[[_F], _F]


class ProgressMode(enum.StrEnum):
    AUTO = "auto"
    BAR = "bar"
    PLAIN = "plain"
    NONE = "none"


def option_group(*decorators: Callable[[Any], Any]) -> Callable[[_F], _F]:
    """Several click decorators as one, in the order given (as if stacked in that order: the
    first one listed comes first in ``--help``)."""

    def decorate(func: _F) -> _F:
        for apply in reversed(decorators):
            func = apply(func)
        return func

    return decorate


def concurrency_option(help: str, *, default: int | None = DEFAULT_CONCURRENCY) -> Decorator[Any]:
    shown: dict[str, Any] = {} if default is None else {"default": default, "show_default": True}
    return click.option("--concurrency", type=click.IntRange(1, 1024), help=help, **shown)


def progress_option(help: str) -> Decorator[Any]:
    return click.option(
        "--progress",
        type=click.Choice([m.value for m in ProgressMode]),
        default=ProgressMode.AUTO.value,
        show_default=True,
        help=help,
    )


def results_option(help: str) -> Decorator[Any]:
    return click.option("--results", type=click.Path(dir_okay=False, path_type=Path), help=help)


def dry_run_option(help: str) -> Decorator[Any]:
    return click.option("--dry-run", is_flag=True, help=help)


def shard_option(help: str) -> Decorator[Any]:
    return click.option("--shard", metavar="K/N", help=help)


#: --page: 0-based, and an int32 as in the Go CLI, whose flag parsing refuses anything larger (a
#: bigger number would only come back as the server's 400).
page_option: Final = click.option(
    "--page", type=click.IntRange(min=0, max=2**31 - 1), help="Show only this page (0-based)."
)
registry_option: Final = click.option("--registry", required=True, help="Registry identifier.")
metadata_option: Final = click.option(
    "--metadata", required=True, metavar="K:V[,K2:V2…]", help="Pairs, e.g. 'team:core,tier:gold'."
)

#: --progress help for commands that draw bars on a terminal.
BARS_OR_LINES: Final = "Bars on a terminal (auto), a status line every few seconds (plain), or none."

#: The flags every push and pull takes.
transfer_options: Final = option_group(
    concurrency_option("Requests in flight at once."),
    progress_option(BARS_OR_LINES),
    results_option("Write one JSON line per file (status, path, size, sha256, error) to this file."),
    click.option(
        "--retry-failed",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Only redo the files a previous --results file lists as failed.",
    ),
    dry_run_option("Print what would be transferred; change nothing."),
    click.option("--overwrite", is_flag=True, help="Transfer even files that are already identical."),
    click.option(
        "--batch/--no-batch",
        default=True,
        show_default=True,
        help="Move small files many to a request where the registry offers it (an hc registry); "
        "--no-batch sends one request per file, as the Go CLI does.",
    ),
)

#: The flags of every bulk job (metadata tagging, copy).
bulk_options: Final = option_group(
    concurrency_option("Requests in flight at once (one limit for the whole job)."),
    shard_option("Do only shard K of N (K is 0-based: 0/4 … 3/4)."),
    dry_run_option("Print exactly which targets would change; change nothing."),
    results_option("Write one JSON line per target (target, status, action, attempts, error)."),
    progress_option("A status line every few seconds on a terminal (auto), always (plain), or none."),
)

#: Which packages or versions a bulk metadata job changes.
bulk_selectors: Final = option_group(
    registry_option,
    click.option("--package", help="Package name or glob (* and ?)."),
    click.option("--version", help="Version name or glob (default: the package itself)."),
    click.option("--all-versions", is_flag=True, help="Every version of the matching packages."),
    click.option(
        "--where",
        multiple=True,
        metavar="K:V",
        help="Only targets whose metadata has this pair (repeatable; all must match).",
    ),
    click.option(
        "--from",
        "from_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help='Targets as JSON lines: {"package": "...", "version": "..."} (version optional).',
    ),
    click.option(
        "--artifact-key",
        metavar="K=V[,K2=V2…]",
        help="Narrow to one artifact of the version (single target).",
    ),
)
