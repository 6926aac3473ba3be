"""Start-up: each command imports only what it needs, and lazy commands still show in --help."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from hc.cli import COMMANDS, cli
from hc.cli._group import AliasGroup, LazyCommand
from hc.cli.artifact import SUBCOMMANDS, artifact_group
from hc.cli.registry import registry_group

_PROBE = """
import json, sys
from hc.cli import cli
code = cli.main(sys.argv[1:], standalone_mode=False)
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _modules_after(*args: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``hc ARGS`` (a --help: no server needed)."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def _heavy(modules: set[str], *prefixes: str) -> set[str]:
    return {m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)}


def test_root_help_imports_no_command_group_nor_network_stack() -> None:
    modules = _modules_after("--help")
    assert (
        _heavy(modules, "aiohttp", "hc.api", "hc.server", "hc.transfer", "tqdm", "yaml", "hc.cli.artifact")
        == set()
    )


def test_listing_artifacts_does_not_load_the_engine_the_server_or_other_groups() -> None:
    modules = _modules_after("artifact", "list", "--help")
    assert "hc.cli.artifact" in modules
    unwanted = ("hc.transfer", "hc.server", "hc.migration", "tqdm", "yaml", "hc.cli.registry", "hc.cli._bulk")
    assert _heavy(modules, *unwanted) == set()


def test_push_loads_the_engine_but_not_tqdm_the_server_or_bulk_jobs() -> None:
    modules = _modules_after("artifact", "push", "generic", "--help")
    assert "hc.transfer" in modules
    assert _heavy(modules, "tqdm", "hc.server.app", "hc.migration", "hc.cli._bulk", "yaml") == set()


def _lazy_tables() -> list[tuple[AliasGroup, str, LazyCommand]]:
    tables: list[tuple[click.Group, dict[str, LazyCommand]]] = [
        (cli, COMMANDS),
        (artifact_group, SUBCOMMANDS),
        (registry_group, {"migrate": registry_group.lazy["migrate"]}),
    ]
    found: list[tuple[AliasGroup, str, LazyCommand]] = []
    for group, table in tables:
        assert isinstance(group, AliasGroup)
        found.extend((group, name, lazy) for name, lazy in table.items())
    return found


@pytest.mark.parametrize(("group", "name", "lazy"), _lazy_tables(), ids=lambda v: getattr(v, "attribute", ""))
def test_a_lazy_command_is_listed_with_its_own_short_help(
    group: AliasGroup, name: str, lazy: LazyCommand
) -> None:
    command = lazy.load()
    assert command.name == name
    stand_in = click.Command(name, help=lazy.summary)
    for width in (30, 45, 80, 200):
        assert stand_in.get_short_help_str(width) == command.get_short_help_str(width)
    assert name in group.list_commands(click.Context(group))
