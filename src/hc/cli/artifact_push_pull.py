"""``hc artifact push`` and ``hc artifact pull``: the commands that drive the transfer engine.

Their own module, loaded only when one of them runs, because the engine (and tqdm for the bars)
is the heaviest import of the CLI and no other artifact command needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hc.cli._artifact_transfer import (
    DEFAULT_VERSION,
    PullRequest,
    PushRequest,
    parse_pull_spec,
    pull_generic,
    push_generic,
    refuse_results_over_a_source,
)
from hc.cli._group import AliasGroup, global_options, pass_state
from hc.cli._options import ProgressMode, transfer_options
from hc.cli._transfer import TransferJob, TransferOptions, tune_gc_for_transfer
from hc.cli.context import CliState, run_job
from hc.config import OutputFormat, Settings
from hc.errors import UsageError
from hc.transfer import ItemResult, Status

__all__ = ["pull_group", "push_group"]


def _transfer_options(
    concurrency: int,
    progress: str,
    results: Path | None,
    retry_failed: Path | None,
    dry_run: bool,
    overwrite: bool,
    batch: bool,
) -> TransferOptions:
    return TransferOptions(
        concurrency=concurrency,
        batch=batch,
        progress=ProgressMode(progress),
        results=results,
        retry_failed=retry_failed,
        dry_run=dry_run,
        overwrite=overwrite,
    )


def _transfer_job(settings: Settings, label: str, options: TransferOptions, verb: str) -> TransferJob:
    tune_gc_for_transfer()
    return TransferJob(
        label=label,
        options=options,
        output_format=settings.output_format,
        quiet=settings.quiet,
        verbose=settings.verbose,
        plan_verb=verb,
    )


@click.group("push", cls=AliasGroup)
@global_options()
def push_group() -> None:
    """Push artifacts to a registry."""


@push_group.command("generic")
@click.argument("registry")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-n", "--name", "package", required=True, help="Package name.")
@click.option("--version", default=DEFAULT_VERSION, show_default=True, help="Version.")
@click.option("--include-hidden", is_flag=True, help="Also push dotfiles and dot-directories.")
@click.option("-d", "--description", help="Accepted for compatibility; unused (as in the Go CLI).")
@transfer_options
@global_options()
@pass_state
def push_generic_command(
    state: CliState,
    registry: str,
    paths: tuple[str, ...],
    package: str,
    version: str,
    include_hidden: bool,
    description: str | None,
    **flags: Any,
) -> None:
    """Push files, directories (recursively) and globs to REGISTRY as package NAME, version VERSION.

    A file is stored as its base name, a directory's files as <directory name>/<relative path>.
    Files already identical in the registry are skipped (one listing of the version).
    """
    settings = state.settings()
    options = _transfer_options(**flags)
    refuse_results_over_a_source(options.results, paths)
    request = PushRequest(
        registry=registry, package=package, version=version, sources=paths, include_hidden=include_hidden
    )
    details = {"command": "push", "registry": registry, "package": package, "version": version}
    job = _transfer_job(settings, "push", options, "upload")
    summary = run_job(job, push_generic(settings, request, options, job), details=details)
    job.finish(summary, details=details)


@click.group("pull", cls=AliasGroup)
@global_options()
def pull_group() -> None:
    """Pull artifacts from a registry."""


@pull_group.command("generic")
@click.argument("registry")
@click.argument("artifact", metavar="PACKAGE[/VERSION[/FILE]]")
@click.argument("dest", type=click.Path())
@transfer_options
@global_options()
@pass_state
def pull_generic_command(state: CliState, registry: str, artifact: str, dest: str, **flags: Any) -> None:
    """Pull a file, a version, or every version of a package from REGISTRY into DEST.

    \b
    PACKAGE/VERSION/FILE  one file; DEST is a directory (created if missing) or the file to write
    PACKAGE/VERSION       every file of the version, under DEST
    PACKAGE               every version, under DEST/<version>/
    Files are verified against the registry's sha256 and written via <name>.part.
    """
    if not dest:
        # Path("") is ".": an unset shell variable would pull into the current directory.
        raise UsageError("the destination is empty: give the directory (or file) to pull into")
    settings = state.settings()
    options = _transfer_options(**flags)
    spec = parse_pull_spec(artifact)
    details = {"command": "pull", "registry": registry, "artifact": str(spec), "dest": str(dest)}
    job = _transfer_job(settings, "pull", options, "download")
    summary, single = run_job(
        job,
        pull_generic(settings, PullRequest(registry=registry, spec=spec, dest=Path(dest)), options, job),
        details=details,
    )
    if _show_saved(single, settings):
        assert single is not None
        note = "" if single.status is Status.DONE else ", already up to date"
        click.echo(f"Saved to {single.local_path} ({single.size} bytes{note})")
    job.finish(summary, details=details)


def _show_saved(single: ItemResult | None, settings: Settings) -> bool:
    """The Go CLI's ``Saved to <path> (<n> bytes)`` after a single-file pull (table output)."""
    return (
        single is not None
        and single.local_path is not None
        and single.status in (Status.DONE, Status.SKIPPED)
        and settings.output_format is OutputFormat.TABLE
        and not settings.quiet
    )
