"""Bulk metadata tagging and bulk copy, as functions of Settings (tested without click).

- ``tag_metadata``: ``hc artifact metadata set|delete`` over selected targets. The v2 metadata calls
  run ``--concurrency`` at a time (one limit for the job), retried by the engine's pacer,
  journaled under ``$HC_HOME/jobs/`` so a re-run after a kill skips finished targets.
  ``--dry-run`` reads each target's metadata and lists exactly those a run would change.
- ``copy_versions``: ``hc artifact copy`` with globs. Same server: one server-side ``v2 /copy`` per
  version (no bytes through this machine). Another server: every file streamed from the source
  straight into the destination (``TransferManager.copy``: no disk, checksums verified end to end,
  identical files skipped), then the package and version metadata carried over.
- ``--shard K/N`` keeps the targets whose key (``pkg/version``, or ``pkg``) hashes to K.

``BulkReport`` is what the user sees: dry-run lines, failure lines, ``--results`` JSON lines (one
per target), and the summary (a line on stderr, or a JSON/YAML document with ``--format``).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, TextIO

from hc.api import RegistryClient
from hc.api.artifacts import ArtifactClient
from hc.api.files import HarnessRemote
from hc.cli import render
from hc.cli._bulk_select import Selection, Target, select_targets
from hc.cli._transfer import job_state
from hc.cli.context import Notify, connect_target, open_target
from hc.cli.context import Target as ServerTarget
from hc.cli.progress import Progress, ProgressMode, format_duration
from hc.config import DEFAULT_CONCURRENCY, OutputFormat, Settings
from hc.errors import HcError, Interrupted, NotFound, UsageError
from hc.protocol.identifiers import validate_registry_identifier
from hc.protocol.metadata import MetadataPair
from hc.transfer import (
    Accounting,
    CopyItem,
    Event,
    ItemFinished,
    ItemResult,
    Shard,
    Status,
    Summary,
    TransferConfig,
    TransferManager,
    shard_filter,
)
from hc.transfer.bulk import BulkOutcome, run_bulk

__all__ = ["BulkOptions", "BulkReport", "CopyRequest", "TagRequest", "copy_versions", "tag_metadata"]

MAX_FAILURE_LINES: Final = 20


@dataclass(frozen=True, kw_only=True)
class BulkOptions:
    concurrency: int = DEFAULT_CONCURRENCY
    dry_run: bool = False
    results: Path | None = None
    shard: Shard | None = None
    progress: ProgressMode = ProgressMode.AUTO

    def config(self, *, retry_budget: float) -> TransferConfig:
        return TransferConfig(concurrency=self.concurrency, dry_run=self.dry_run, outage_budget=retry_budget)


# -- what the user sees ----------------------------------------------------------------------------


@dataclass
class BulkReport:
    """Subscribers of one bulk job's accounting, and its summary."""

    label: str
    options: BulkOptions
    output_format: OutputFormat = OutputFormat.TABLE
    quiet: bool = False
    verbose: bool = False
    #: how a planned target reads in a dry run (``set team:core on``)
    plan_text: str = "change"
    stdout: TextIO | None = None
    stderr: TextIO | None = None
    accounting: Accounting = field(default_factory=Accounting)
    #: files moved by a cross-server copy (all versions together)
    files: Accounting = field(default_factory=Accounting)
    #: extra fields per target for --results (files copied…), by target key
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._out = self.stdout if self.stdout is not None else sys.stdout
        self._err = self.stderr if self.stderr is not None else sys.stderr
        mode = ProgressMode.NONE if self.quiet else self.options.progress
        # Targets are counted, not bytes: the plain status line says it best.
        if mode is ProgressMode.AUTO:
            mode = ProgressMode.NONE if not self._err.isatty() else ProgressMode.PLAIN
        self.progress = Progress(
            self.accounting, mode=mode, label=self.label, stream=self._err, verbose=self.verbose
        )
        self._results: IO[str] | None = None
        if self.options.results is not None:
            try:
                self._results = self.options.results.open("w", encoding="utf-8")
            except OSError as exc:
                raise UsageError(
                    f"cannot write results file {str(self.options.results)!r}: {exc.strerror or exc}"
                ) from None
        self._failures = 0
        self._unsubscribe = [
            self.accounting.subscribe(self.progress),
            self.accounting.subscribe(self._on_event),
        ]

    def _on_event(self, event: Event) -> None:
        if not isinstance(event, ItemFinished):
            return
        result = event.result
        if self._results is not None:
            record = {
                "target": result.path,
                "status": result.status.value,
                "action": result.action,
                "attempts": result.attempts,
                "error": result.error,
                **self.extra.pop(result.path, {}),
            }
            self._results.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            self.extra.pop(result.path, None)
        if result.status is Status.FAILED:
            self._failures += 1
            if self._failures <= MAX_FAILURE_LINES:
                self.progress.write(render.failure_line(result.path, result.error))
        elif (
            self.options.dry_run
            and result.status is Status.PLANNED
            and self.output_format is OutputFormat.TABLE
        ):
            _print(self._out, f"{self.plan_text} {result.path}")

    def notice(self, message: str) -> None:
        if not self.quiet:
            self.progress.write(message)

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        self.progress.close()
        if self._results is not None:
            self._results.close()
            self._results = None

    def _line(self, summary: Summary, interrupted: bool) -> str:
        noun = "target" if summary.items == 1 else "targets"
        if self.options.dry_run:
            return (
                f"{self.label} (dry run): {summary.planned} of {summary.items} {noun} would change; "
                "nothing was changed"
            )
        parts = [f"{summary.succeeded} changed", f"{summary.skipped} skipped", f"{summary.failed} failed"]
        if summary.cancelled:
            parts.append(f"{summary.cancelled} cancelled")
        state = " (interrupted)" if interrupted else ""
        text = f"{self.label}{state}: {', '.join(parts)} in {format_duration(summary.seconds)}"
        if summary.seconds > 0 and summary.items:
            text += f" ({summary.items / summary.seconds:.0f} {noun}/s)"
        files = self.files.summary()
        if files.items:
            text += (
                f"; files: {files.succeeded} copied, {files.skipped} identical, {files.failed} failed, "
                f"{render.human_size(files.bytes)}"
            )
        return text

    def report(self, summary: Summary, *, details: dict[str, Any], interrupted: bool = False) -> None:
        hidden = self._failures - MAX_FAILURE_LINES
        self.close()
        if hidden > 0:
            where = f" (all of them in {self.options.results})" if self.options.results else ""
            _print(self._err, f"error: … and {hidden} more failed targets{where}")
        if self.output_format is not OutputFormat.TABLE:
            document = {**details, **summary.to_json(), "dry_run": self.options.dry_run}
            files = self.files.summary()
            if files.items:
                document["files"] = files.to_json()
            if interrupted:
                document["interrupted"] = True
            text = (
                render.to_json(document)
                if self.output_format is OutputFormat.JSON
                else render.to_yaml(document)
            )
            _print(self._out, text)
            return
        if not self.quiet or not summary.ok or interrupted:
            _print(self._err, self._line(summary, interrupted))

    def finish(self, summary: Summary, *, details: dict[str, Any]) -> None:
        """Report; failed targets make exit code 1."""
        self.report(summary, details=details)
        if summary.failed or summary.cancelled:
            count = summary.failed + summary.cancelled
            raise HcError(f"{count} of {summary.items} targets failed")

    def interrupted(self, *, details: dict[str, Any]) -> Interrupted:
        self.report(self.accounting.summary(), details=details, interrupted=True)
        return Interrupted("interrupted: run the same command again to carry on where it stopped")


def _print(stream: TextIO, text: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(text, file=stream, flush=True)


# -- plumbing ----------------------------------------------------------------------------------------


@asynccontextmanager
async def _connected(
    settings: Settings, notify: Notify, concurrency: int
) -> AsyncIterator[tuple[ServerTarget, RegistryClient]]:
    async with AsyncExitStack() as stack:
        target = await stack.enter_async_context(open_target(settings, notify=notify))
        client = await stack.enter_async_context(connect_target(target, connections=concurrency))
        yield target, client


def _server_name(target: ServerTarget) -> str:
    endpoint = target.endpoint
    server = f"embedded:{target.data_dir}" if target.embedded else endpoint.api_url
    return f"{server}|{endpoint.account}|{endpoint.org or ''}|{endpoint.project or ''}"


async def _registry_id(artifacts: ArtifactClient, registry: str) -> str:
    found = await artifacts.find_registry(registry)
    if found is None or not found.id:
        raise NotFound(f"registry {registry!r} not found")
    return found.id


def _sharded(targets: AsyncIterator[Target], shard: Shard | None) -> AsyncIterator[Target]:
    return targets if shard is None or shard.is_all else shard_filter(targets, shard, lambda t: t.key)


def _has_all(current: Sequence[tuple[str, str]], pairs: Sequence[MetadataPair]) -> bool:
    have = set(current)
    return all((p.key, p.value) in have for p in pairs)


def _has_any(current: Sequence[tuple[str, str]], pairs: Sequence[MetadataPair]) -> bool:
    have = set(current)
    return any((p.key, p.value) in have for p in pairs)


# -- tagging -----------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TagRequest:
    registry: str
    selection: Selection
    pairs: tuple[MetadataPair, ...]
    delete: bool = False


async def tag_metadata(
    settings: Settings, request: TagRequest, options: BulkOptions, report: BulkReport
) -> Summary:
    """Set (or delete) ``request.pairs`` on every selected target."""
    validate_registry_identifier(request.registry)
    request.selection.validate()
    selection, pairs, registry = request.selection, request.pairs, request.registry
    # When the job changes a key it filters on, the filtered listing would shrink under its own
    # paging (and under the other shards'): list without the filter and check each target instead.
    changed_keys = {p.key for p in pairs}
    server_where = not any(w.key in changed_keys for w in selection.where)
    verb = "metadata delete" if request.delete else "metadata set"
    async with _connected(settings, report.notice, options.concurrency) as (server, client):
        artifacts = ArtifactClient(client)
        registry_id = await _registry_id(artifacts, registry)
        targets = _sharded(
            select_targets(artifacts, registry_id, selection, server_where=server_where), options.shard
        )

        async def current(target: Target) -> list[tuple[str, str]]:
            items = await client.get_metadata(
                registry=registry, package=target.package, version=target.version
            )
            return [(item.key, item.value) for item in items]

        async def selected(target: Target) -> bool:
            return server_where or not selection.where or _has_all(await current(target), selection.where)

        async def act(target: Target) -> BulkOutcome:
            if not await selected(target):
                return BulkOutcome(changed=False, action="no-match")
            write = client.delete_metadata if request.delete else client.set_metadata
            await write(registry=registry, pairs=pairs, package=target.package, version=target.version)
            return BulkOutcome(changed=True)

        async def plan(target: Target) -> BulkOutcome:
            have = await current(target)
            if selection.where and not server_where and not _has_all(have, selection.where):
                return BulkOutcome(changed=False, action="no-match")
            would = _has_any(have, pairs) if request.delete else not _has_all(have, pairs)
            return BulkOutcome(changed=would, action="" if would else "unchanged")

        identity = [
            verb,
            _server_name(server),
            registry,
            *selection.describe(),
            ",".join(f"{p.key}:{p.value}" for p in pairs),
            str(options.shard or ""),
        ]
        with job_state(settings, identity, dry_run=options.dry_run) as state:
            async with report.progress.ticking():
                summary = await run_bulk(
                    targets,
                    key=lambda t: t.key,
                    act=act,
                    plan=plan,
                    config=options.config(retry_budget=settings.retry_budget),
                    accounting=report.accounting,
                    journal=state.journal,
                    action="delete" if request.delete else "set",
                )
            state.clean = summary.ok
    return summary


# -- copy --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CopyRequest:
    src_registry: str
    package: str
    version: str
    dest_registry: str
    create_registry: bool = False
    artifact_type: str | None = None
    artifact_key: dict[str, str] | None = None


async def _ensure_registry(
    client: RegistryClient, name: str, *, create: bool, dry_run: bool, package_type: str, notify: Notify
) -> None:
    """The destination registry must exist, or be created (``--create-registry``) with the source's
    package type; a dry run only says it would be."""
    try:
        await client.get_registry(name)
    except NotFound:
        if not create:
            raise NotFound(
                f"destination registry {name!r} not found (pass --create-registry to create it)"
            ) from None
        if dry_run:
            notify(f"would create registry {name!r} ({package_type}) at the destination")
            return
        await client.create_registry(name, package_type=package_type)
        notify(f"created registry {name!r} ({package_type}) at the destination")


async def copy_versions(
    settings: Settings,
    dest: Settings | None,
    request: CopyRequest,
    options: BulkOptions,
    report: BulkReport,
) -> Summary:
    """Copy every version matching ``request.package``/``request.version`` (globs) to
    ``request.dest_registry``, on the same server (``dest is None``) or onto another one."""
    validate_registry_identifier(request.src_registry)
    validate_registry_identifier(request.dest_registry)
    selection = Selection(package=request.package, version=request.version)
    selection.validate()
    async with AsyncExitStack() as stack:
        source, client = await stack.enter_async_context(
            _connected(settings, report.notice, options.concurrency)
        )
        artifacts = ArtifactClient(client)
        src_info = await artifacts.find_registry(request.src_registry)
        if src_info is None or not src_info.id:
            raise NotFound(f"registry {request.src_registry!r} not found")
        targets = _sharded(select_targets(artifacts, src_info.id, selection), options.shard)
        if dest is None:
            if request.src_registry == request.dest_registry:
                raise UsageError("the source and destination registries are the same")
            await _ensure_registry(
                client,
                request.dest_registry,
                create=request.create_registry,
                dry_run=options.dry_run,
                package_type=src_info.package_type,
                notify=report.notice,
            )

            async def server_copy(target: Target) -> BulkOutcome:
                assert target.version is not None
                await artifacts.copy_version(
                    src_registry=request.src_registry,
                    package=target.package,
                    version=target.version,
                    dest_registry=request.dest_registry,
                    artifact_type=request.artifact_type,
                    artifact_key=request.artifact_key,
                )
                return BulkOutcome(changed=True, action="server-copy")

            identity = [
                "copy",
                _server_name(source),
                request.src_registry,
                *selection.describe(),
                request.dest_registry,
                str(options.shard or ""),
            ]
            with job_state(settings, identity, dry_run=options.dry_run) as state:
                async with report.progress.ticking():
                    summary = await run_bulk(
                        targets,
                        key=lambda t: t.key,
                        act=server_copy,
                        config=options.config(retry_budget=settings.retry_budget),
                        accounting=report.accounting,
                        journal=state.journal,
                        action="server-copy",
                    )
                state.clean = summary.ok
            return summary

        if src_info.package_type.upper() not in ("GENERIC", "RAW", ""):
            raise UsageError(
                "a cross-server copy moves generic files; "
                f"registry {request.src_registry!r} is {src_info.package_type}"
            )
        destination, dest_client = await stack.enter_async_context(
            _connected(dest, report.notice, options.concurrency)
        )
        if (
            _server_name(destination) == _server_name(source)
            and request.src_registry == request.dest_registry
        ):
            raise UsageError("the source and destination are the same registry on the same server")
        await _ensure_registry(
            dest_client,
            request.dest_registry,
            create=request.create_registry,
            dry_run=options.dry_run,
            package_type=src_info.package_type,
            notify=report.notice,
        )
        src_remote = await HarnessRemote.open(client, request.src_registry)
        dst_remote = await HarnessRemote.open(dest_client, request.dest_registry)
        lister = TransferManager(src_remote, TransferConfig(outage_budget=settings.retry_budget))
        identity = [
            "copy",
            _server_name(source),
            request.src_registry,
            *selection.describe(),
            _server_name(destination),
            request.dest_registry,
            str(options.shard or ""),
        ]
        with job_state(settings, identity, dry_run=options.dry_run) as state:
            # One manager for every version: its single request limit bounds the whole job.
            manager = TransferManager(
                dst_remote,
                TransferConfig(concurrency=options.concurrency, dry_run=options.dry_run),
                journal=state.journal,
                accounting=report.files,
            )
            packages_done: set[str] = set()

            async def carry_metadata(target: Target) -> None:
                assert target.version is not None
                if target.package not in packages_done:
                    items = await client.get_metadata(registry=request.src_registry, package=target.package)
                    pairs = tuple(MetadataPair(i.key, i.value) for i in items)
                    if pairs:
                        await dest_client.set_metadata(
                            registry=request.dest_registry, pairs=pairs, package=target.package
                        )
                    packages_done.add(target.package)
                items = await client.get_metadata(
                    registry=request.src_registry, package=target.package, version=target.version
                )
                pairs = tuple(MetadataPair(i.key, i.value) for i in items)
                if pairs:
                    await dest_client.set_metadata(
                        registry=request.dest_registry,
                        pairs=pairs,
                        package=target.package,
                        version=target.version,
                    )

            async def file_copy(target: Target) -> BulkOutcome:
                assert target.version is not None
                counts = _Counts()
                unsubscribe = report.files.subscribe(counts.watch(f"{target.package}/{target.version}/"))
                try:
                    items = (
                        CopyItem.same_place(entry)
                        async for entry in lister.listing(target.package, target.version)
                    )
                    await manager.copy(
                        src_remote, items, verify_destination=not dst_remote.capabilities.hc_server
                    )
                finally:
                    unsubscribe()
                report.extra[target.key] = counts.as_json()
                if counts.failed:
                    raise HcError(
                        f"{counts.failed} of {counts.total} files failed; first: {counts.first_error}"
                    )
                if not options.dry_run:
                    await carry_metadata(target)
                return BulkOutcome(changed=counts.done > 0, action="stream-copy")

            async def plan(target: Target) -> BulkOutcome:
                outcome = await file_copy(target)
                return BulkOutcome(
                    changed=bool(report.extra.get(target.key, {}).get("files_planned")), action=outcome.action
                )

            async with report.progress.ticking():
                summary = await run_bulk(
                    targets,
                    key=lambda t: t.key,
                    act=file_copy,
                    plan=plan,
                    config=TransferConfig(
                        concurrency=min(options.concurrency, 8),
                        dry_run=options.dry_run,
                        outage_budget=settings.retry_budget,
                    ),
                    accounting=report.accounting,
                    journal=state.journal,
                    action="stream-copy",
                )
            state.clean = summary.ok
        return summary


@dataclass
class _Counts:
    """File results of one version (its files' paths start with ``prefix``)."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    planned: int = 0
    bytes: int = 0
    #: the first failed file and why (a version's summary line names one, the others are in --results)
    first_error: str = ""

    @property
    def total(self) -> int:
        return self.done + self.skipped + self.failed + self.planned

    def watch(self, prefix: str) -> Callable[[Event], None]:
        def on_event(event: Event) -> None:
            if not isinstance(event, ItemFinished) or not event.result.path.startswith(prefix):
                return
            result: ItemResult = event.result
            if result.status is Status.DONE:
                self.done += 1
                self.bytes += result.size
            elif result.status is Status.SKIPPED:
                self.skipped += 1
            elif result.status is Status.PLANNED:
                self.planned += 1
            elif result.status in (Status.FAILED, Status.CANCELLED):
                self.failed += 1
                if not self.first_error:
                    self.first_error = result.error or f"{result.path}: {result.status.value}"

        return on_event

    def as_json(self) -> dict[str, int]:
        return {
            "files_copied": self.done,
            "files_identical": self.skipped,
            "files_failed": self.failed,
            "files_planned": self.planned,
            "bytes": self.bytes,
        }
