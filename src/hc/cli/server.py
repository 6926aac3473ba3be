"""``hc server``: run the embedded registry over HTTP, issue API keys, check the store.

Parse → call → render: the work is in ``hc.server.admin`` (tested without click); this module only
reads options and prints. The command is imported lazily by the root group, so plain client
commands never load aiohttp.web.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hc.server.admin import create_api_key, fsck, run_server
from hc.server.paths import default_data_dir

__all__ = ["server_group"]

_DATA_DIR_HELP = "Registry store folder (default: $HC_HOME, else $XDG_DATA_HOME/hc or ~/.local/share/hc)."


def _data_dir(value: Path | None) -> Path:
    return value if value is not None else default_data_dir()


data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=_DATA_DIR_HELP
)


@click.group("server")
def server_group() -> None:
    """Run and maintain the embedded registry."""


@server_group.command("run")
@data_dir_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=3000, show_default=True, help="Port (0: any free)."
)
def run_command(data_dir: Path | None, host: str, port: int) -> None:
    """Serve the registry in the foreground until Ctrl-C or SIGTERM."""
    store = _data_dir(data_dir)

    def ready(base_url: str) -> None:
        click.echo(f"hc registry serving {base_url} (data: {store})", err=True)
        sys.stderr.flush()

    run_server(store, host=host, port=port, on_ready=ready)


@server_group.group("token")
def token_group() -> None:
    """Manage API keys of the embedded registry."""


@token_group.command("create")
@data_dir_option
@click.option(
    "--account", default="local", show_default=True, help="Account the key belongs to (created if needed)."
)
def token_create_command(data_dir: Path | None, account: str) -> None:
    """Print a new API key, alone, on stdout."""
    click.echo(create_api_key(_data_dir(data_dir), account))


@server_group.command("fsck")
@data_dir_option
@click.pass_context
def fsck_command(ctx: click.Context, data_dir: Path | None) -> None:
    """Verify every blob's digest and that every file has its blob (exit 1 on any fault)."""
    report = fsck(_data_dir(data_dir))
    for fault in report.faults:
        click.echo(fault)
    click.echo(report.summary(), err=not report.clean)
    if not report.clean:
        ctx.exit(1)
