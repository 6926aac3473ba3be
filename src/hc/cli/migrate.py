"""``hc registry migrate -c config.yaml``: copy registries from a source (HAR, HTTP/WebDAV) into HAR.

Parse → call → render: ``migrate`` takes Settings and a ``MigrateRequest`` and is tested without
click; the command only reads flags and prints. The config schema and the plan format are
documented in ``hc.migration.config`` and ``hc.migration.plan``.

Exit codes: 0 when every file is migrated or already there, 1 when any failed (the Go CLI exits 0
then), 2 for a bad config or flags, 130 when interrupted (run the same command again to resume).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

import click

from hc.cli import render
from hc.cli._group import global_options, pass_state
from hc.cli._options import (
    BARS_OR_LINES,
    concurrency_option,
    dry_run_option,
    progress_option,
    results_option,
    shard_option,
)
from hc.cli._transfer import TransferJob, TransferOptions, job_state, refuse_overwriting
from hc.cli.context import CliState, run_job
from hc.cli.progress import ProgressMode, format_duration
from hc.config import OutputFormat, Settings
from hc.errors import HcError, UsageError
from hc.migration.config import MigrationConfig, load_config
from hc.migration.plan import PlanItem
from hc.migration.runner import MigrationOptions, run_migration
from hc.transfer import Summary
from hc.transfer.shard import Shard

__all__ = ["MigrateRequest", "PlanStats", "migrate", "migrate_command", "summary_text"]


@dataclass(frozen=True, kw_only=True)
class MigrateRequest:
    config: Path
    concurrency: int | None = None
    overwrite: bool = False
    dry_run: bool = False
    plan: Path | None = None
    plan_out: Path | None = None
    results: Path | None = None
    shard: str | None = None
    progress: ProgressMode = ProgressMode.AUTO


@dataclass
class PlanStats:
    """What a dry run found (the Go CLI's "Dry Run Summary")."""

    files: int = 0
    bytes: int = 0
    versions: set[tuple[int, str, str]] = field(default_factory=set)
    packages: set[tuple[int, str]] = field(default_factory=set)

    def add(self, item: PlanItem) -> None:
        self.files += 1
        self.bytes += item.source.size
        self.versions.add(item.version_key)
        self.packages.add((item.mapping, item.destination.package))


def resolve(request: MigrateRequest, environ: Mapping[str, str]) -> tuple[MigrationConfig, MigrationOptions]:
    """The config file and the flags merged: a flag can switch overwrite/dry-run on, never off (as
    the Go CLI); ``--concurrency`` replaces the config's value."""
    refuse_overwriting(
        {"--plan-out": request.plan_out, "--results": request.results},
        {"--config": request.config, "--plan": request.plan},
    )
    refuse_overwriting({"--plan-out": request.plan_out}, {"--results": request.results})
    config = load_config(request.config, environ)
    shard = Shard.parse(request.shard) if request.shard is not None else None
    if request.plan is not None and request.plan_out is not None:
        raise UsageError("--plan applies a plan and --plan-out writes one: give one of them")
    options = MigrationOptions(
        concurrency=request.concurrency or config.concurrency,
        overwrite=request.overwrite or config.overwrite,
        dry_run=request.dry_run or config.dry_run,
        shard=shard,
        plan=request.plan,
    )
    return config, options


@contextlib.contextmanager
def _plan_output(path: Path | None, stdout: TextIO) -> Iterator[TextIO]:
    if path is None:
        yield stdout
        return
    try:
        handle: IO[str] = path.open("w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write plan file {str(path)!r}: {exc.strerror or exc}") from None
    with handle:
        yield handle  # type: ignore[misc]


async def migrate(
    settings: Settings,
    config: MigrationConfig,
    options: MigrationOptions,
    request: MigrateRequest,
    job: TransferJob,
    *,
    stdout: TextIO,
) -> tuple[Summary, PlanStats]:
    stats = PlanStats()
    identity = [
        "registry migrate",
        str(request.config.absolute()),
        str(options.shard or ""),
        str(request.plan.absolute()) if request.plan else "",
    ]
    with contextlib.ExitStack() as stack:
        sink = None
        if options.dry_run:
            out = stack.enter_context(_plan_output(request.plan_out, stdout))

            def sink(item: PlanItem) -> None:
                stats.add(item)
                out.write(item.to_line() + "\n")

        state = stack.enter_context(job_state(settings, identity, dry_run=options.dry_run))
        job.journal = state.journal_path
        async with job.progress.ticking():
            summary = await run_migration(
                config,
                settings,
                options,
                accounting=job.accounting,
                journal=state.journal,
                warn=job.warn,
                notice=job.notice,
                plan_sink=sink,
            )
        state.clean = summary.ok
    return summary, stats


def summary_text(summary: Summary, *, dry_run: bool, stats: PlanStats | None = None) -> str:
    """The Go CLI's summary block plus bytes and time."""
    if dry_run:
        found = stats or PlanStats()
        return "\n".join(
            [
                "Dry Run Summary (nothing was changed):",
                f"Files   : {found.files} ({render.human_size(found.bytes)})",
                f"Packages: {len(found.packages)}",
                f"Versions: {len(found.versions)}",
                f"To copy : {summary.planned}",
                f"Skipped : {summary.skipped} (already identical)",
                f"Failed  : {summary.failed}",
            ]
        )
    rate = render.human_size(int(summary.throughput)) + "/s"
    if summary.seconds > 0:
        rate += f", {summary.items / summary.seconds:.0f} files/s"
    lines = [
        "Migration Summary of total files finalized for upload :",
        f"Success : {summary.succeeded}",
        f"Skipped : {summary.skipped}",
        f"Failed  : {summary.failed}",
    ]
    if summary.cancelled:
        lines.append(f"Cancelled: {summary.cancelled}")
    lines += [
        f"Total   : {summary.items}",
        f"Copied  : {render.human_size(summary.bytes)} in {format_duration(summary.seconds)} ({rate})",
    ]
    return "\n".join(lines)


def _print(stream: TextIO, text: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(text, file=stream, flush=True)


@click.command("migrate")
@click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Migration config (YAML, the Go hc's schema; ${VAR} expanded from the environment).",
)
@concurrency_option("Requests in flight (overrides the config).", default=None)
@click.option("--overwrite", is_flag=True, help="Copy even files the destination already holds identically.")
@dry_run_option("Write the plan (JSON lines) and change nothing.")
@click.option(
    "--plan",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Apply exactly this plan (from --dry-run) instead of listing the source.",
)
@click.option(
    "--plan-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --dry-run: write the plan to this file instead of stdout.",
)
@results_option("Write one JSON line per file (status, path, size, sha256, error).")
@shard_option("Only versions this shard owns (0-based K of N).")
@progress_option(BARS_OR_LINES)
@click.option("--summary", is_flag=True, help="Accepted for compatibility (the summary is always printed).")
@global_options()
@pass_state
def migrate_command(
    state: CliState,
    config_path: Path,
    concurrency: int | None,
    overwrite: bool,
    dry_run: bool,
    plan: Path | None,
    plan_out: Path | None,
    results: Path | None,
    shard: str | None,
    progress: str,
    summary: bool,
) -> None:
    """Migrate artifacts from another registry (HAR, or an HTTP/WebDAV file tree) into Harness or
    an hc registry, as the config file's mappings say. Re-running resumes and skips what is there."""
    settings = state.settings()
    request = MigrateRequest(
        config=config_path,
        concurrency=concurrency,
        overwrite=overwrite,
        dry_run=dry_run,
        plan=plan,
        plan_out=plan_out,
        results=results,
        shard=shard,
        progress=ProgressMode(progress),
    )
    config, options = resolve(request, state.environ)
    # The engine job renders progress, failure lines and --results; the summary is printed here.
    job = TransferJob(
        label="migrate",
        options=TransferOptions(
            concurrency=options.concurrency,
            overwrite=options.overwrite,
            results=results,
            progress=request.progress,
        ),
        output_format=settings.output_format,
        quiet=settings.quiet,
        verbose=settings.verbose,
        plan_verb="copy",
    )
    stdout, stderr = sys.stdout, sys.stderr
    details: dict[str, Any] = {"command": "registry migrate", "config": str(config_path)}
    outcome, stats = run_job(
        job, migrate(settings, config, options, request, job, stdout=stdout), details=details
    )
    plan_on_stdout = options.dry_run and plan_out is None
    if settings.output_format is not OutputFormat.TABLE and not plan_on_stdout:
        document = {**details, **outcome.to_json(), "dry_run": options.dry_run}
        if options.dry_run:
            document.update(files=stats.files, bytes_planned=stats.bytes, versions=len(stats.versions))
        _print(
            stdout,
            json.dumps(document, indent=2)
            if settings.output_format is OutputFormat.JSON
            else render.to_yaml(document),
        )
    elif not settings.quiet or not outcome.ok:
        _print(stderr, summary_text(outcome, dry_run=options.dry_run, stats=stats))
    if outcome.failed or outcome.cancelled:
        count = outcome.failed + outcome.cancelled
        where = f" (all of them in {results})" if results else " (list them with --results FILE)"
        raise HcError(f"{count} of {outcome.items} files failed to migrate{where}; run again to retry them")
