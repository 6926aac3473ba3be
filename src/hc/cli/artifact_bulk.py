"""``hc artifact metadata`` and ``hc artifact copy``: commands that act on one target, or on many
as a bulk job (journaled, resumable, sharded; see ``_bulk``).

Their own module, loaded only when one of them runs: the bulk machinery imports the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from hc.api.artifacts import ArtifactClient
from hc.cli import render
from hc.cli._bulk import BulkOptions, BulkReport, CopyRequest, TagRequest, copy_versions, tag_metadata
from hc.cli._bulk_select import Selection, has_wildcards, parse_where
from hc.cli._group import AliasGroup, echo_text, global_options, pass_state
from hc.cli._options import (
    ProgressMode,
    bulk_options,
    bulk_selectors,
    metadata_option,
    option_group,
    registry_option,
)
from hc.cli.artifact import JSONObject, parse_artifact_key, parse_copy_source
from hc.cli.context import CliState, Notify, open_client, run_async, run_job
from hc.config import DestinationFlags, OutputFormat, Settings, contexts_file_path, load_destination
from hc.errors import UsageError
from hc.protocol.identifiers import validate_registry_identifier
from hc.protocol.metadata import MetadataPair, parse_metadata
from hc.transfer import Shard

__all__ = [
    "MetadataTarget",
    "change_metadata",
    "copy_artifact",
    "copy_command",
    "metadata_get",
    "metadata_group",
]


def _quiet_notify(_: str) -> None:
    return None


# -- metadata --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MetadataTarget:
    """One package (``version`` None) or one version, optionally narrowed to an artifact by key."""

    registry: str
    package: str
    version: str | None = None
    artifact_key: dict[str, str] | None = None

    @classmethod
    def from_flags(
        cls, *, registry: str, package: str, version: str | None, artifact_key: str | None
    ) -> MetadataTarget:
        """From the command's flags (``--artifact-key`` as ``k=v[,k2=v2]``)."""
        key = parse_artifact_key(artifact_key) or None
        return cls(registry=registry, package=package, version=version, artifact_key=key)

    def describe(self) -> str:
        what = (
            f"package {self.package!r}" if self.version is None else f"version {self.package}/{self.version}"
        )
        return f"{what} in registry {self.registry!r}"


async def metadata_get(
    settings: Settings, target: MetadataTarget, *, notify: Notify = _quiet_notify
) -> list[JSONObject]:
    validate_registry_identifier(target.registry)
    async with open_client(settings, notify=notify) as client:
        items = await client.get_metadata(
            registry=target.registry,
            package=target.package,
            version=target.version,
            artifact_key=target.artifact_key,
        )
    return [item.to_json() for item in items]


async def change_metadata(
    settings: Settings,
    target: MetadataTarget,
    metadata: str,
    *,
    delete: bool,
    notify: Notify = _quiet_notify,
) -> tuple[MetadataPair, ...]:
    """Set (or with ``delete``, delete) the pairs of ``metadata`` on one package or version."""
    validate_registry_identifier(target.registry)
    pairs = parse_metadata(metadata)
    async with open_client(settings, notify=notify) as client:
        change = client.delete_metadata if delete else client.set_metadata
        await change(
            registry=target.registry,
            pairs=pairs,
            package=target.package,
            version=target.version,
            artifact_key=target.artifact_key,
        )
    return pairs


# -- copy ----------------------------------------------------------------------------------------------


async def copy_artifact(settings: Settings, request: CopyRequest, *, notify: Notify = _quiet_notify) -> None:
    """One version copied on its server (the single-target form of ``copy``)."""
    validate_registry_identifier(request.src_registry)
    validate_registry_identifier(request.dest_registry)
    async with open_client(settings, notify=notify) as client:
        await ArtifactClient(client).copy_version(
            src_registry=request.src_registry,
            package=request.package,
            version=request.version,
            dest_registry=request.dest_registry,
            artifact_type=request.artifact_type,
            artifact_key=request.artifact_key,
        )


# -- commands ---------------------------------------------------------------------------------------


@click.group("metadata", cls=AliasGroup)
@global_options()
def metadata_group() -> None:
    """Get, set or delete the metadata of a package or version (key:value pairs)."""


#: The one package or version ``metadata get`` reads.
_metadata_target_options = option_group(
    registry_option,
    click.option("--package", required=True, help="Package name."),
    click.option("--version", help="Version (default: the package itself)."),
    click.option("--artifact-key", metavar="K=V[,K2=V2…]", help="Narrow to one artifact of the version."),
)


@metadata_group.command("get")
@_metadata_target_options
@global_options()
@pass_state
def metadata_get_command(
    state: CliState, registry: str, package: str, version: str | None, artifact_key: str | None
) -> None:
    """Show the metadata of a package or version."""
    settings = state.settings()
    target = MetadataTarget.from_flags(
        registry=registry, package=package, version=version, artifact_key=artifact_key
    )
    items = run_async(metadata_get(settings, target, notify=state.notice))
    echo_text(render.render_metadata(items, settings.output_format))


def _pairs_output(pairs: Sequence[MetadataPair], settings: Settings, message: str) -> None:
    if settings.output_format is OutputFormat.TABLE:
        if not settings.quiet:
            echo_text(message)
        return
    echo_text(render.render_metadata([p.to_json() for p in pairs], settings.output_format))


def _bulk_options(
    *, concurrency: int, shard: str | None, dry_run: bool, results: Path | None, progress: str
) -> BulkOptions:
    """What ``bulk_options``' flags ask of a bulk job."""
    return BulkOptions(
        concurrency=concurrency,
        dry_run=dry_run,
        results=results,
        shard=Shard.parse(shard) if shard else None,
        progress=ProgressMode(progress),
    )


def _bulk_report(settings: Settings, options: BulkOptions, *, label: str, plan_text: str) -> BulkReport:
    return BulkReport(
        label=label,
        options=options,
        output_format=settings.output_format,
        quiet=settings.quiet,
        verbose=settings.verbose,
        plan_text=plan_text,
    )


def _bulk_wanted(package: str | None, version: str | None, options: BulkOptions) -> bool:
    """Whether a command runs as a bulk job: a glob for the package or version, or a flag only a
    job has. The single-target form (exact --package, optional --version, none of those flags)
    keeps its old behaviour and output; commands add their own bulk-only selectors."""
    globbed = has_wildcards(package or "") or has_wildcards(version or "")
    return globbed or options.shard is not None or options.dry_run or options.results is not None


def _run_tagging(
    state: CliState,
    *,
    delete: bool,
    registry: str,
    package: str | None,
    version: str | None,
    all_versions: bool,
    where: tuple[str, ...],
    from_file: Path | None,
    artifact_key: str | None,
    metadata: str,
    **job_flags: Any,
) -> None:
    settings = state.settings()
    options = _bulk_options(**job_flags)
    bulk = all_versions or bool(where) or from_file is not None or _bulk_wanted(package, version, options)
    verb = "delete" if delete else "set"
    if not bulk:
        if package is None:
            raise UsageError(
                "--package is required (or select targets with --from, --all-versions or --where)"
            )
        target = MetadataTarget.from_flags(
            registry=registry, package=package, version=version, artifact_key=artifact_key
        )
        pairs = run_async(change_metadata(settings, target, metadata, delete=delete, notify=state.notice))
        noun = "pair" if len(pairs) == 1 else "pairs"
        message = (
            f"Deleted {len(pairs)} metadata {noun} from {target.describe()}"
            if delete
            else f"Set {len(pairs)} metadata {noun} on {target.describe()}"
        )
        _pairs_output(pairs, settings, message)
        return
    if artifact_key:
        raise UsageError("--artifact-key narrows a single target: it does not combine with bulk selectors")
    if package is None and from_file is None and (all_versions or where):
        package = "*"
    pairs = parse_metadata(metadata)
    request = TagRequest(
        registry=registry,
        selection=Selection(
            package=package,
            version=version,
            all_versions=all_versions,
            where=parse_where(where),
            from_file=from_file,
        ),
        pairs=pairs,
        delete=delete,
    )
    shown = ",".join(f"{p.key}:{p.value}" for p in pairs)
    report = _bulk_report(
        settings,
        options,
        label=f"metadata {verb}",
        plan_text=f"would {verb} {shown} {'from' if delete else 'on'}",
    )
    details = {"command": f"metadata {verb}", "registry": registry}
    summary = run_job(report, tag_metadata(settings, request, options, report), details=details)
    report.finish(summary, details=details)


@metadata_group.command("set")
@bulk_selectors
@metadata_option
@bulk_options
@global_options()
@pass_state
def metadata_set_command(state: CliState, **flags: Any) -> None:
    """Add or overwrite metadata pairs on a package or version, or on many at once.

    \b
    One target:    --package NAME [--version VERSION]
    Many targets:  --package GLOB [--version GLOB | --all-versions] [--where K:V]…  or  --from FILE
    A bulk run is journaled: run it again after an interruption and it skips what it finished.
    """
    _run_tagging(state, delete=False, **flags)


@metadata_group.command("delete")
@bulk_selectors
@metadata_option
@bulk_options
@global_options()
@pass_state
def metadata_delete_command(state: CliState, **flags: Any) -> None:
    """Delete metadata pairs from a package or version, or from many at once (selectors as for set)."""
    _run_tagging(state, delete=True, **flags)


def _require_store(hc_home: str) -> None:
    """Without --create-registry the destination registry must already exist, so its store must
    too: opening a missing one would create a whole store wherever a typo points."""
    from hc.server.paths import StoreLayout

    if not StoreLayout(Path(hc_home)).database.is_file():
        raise UsageError(
            f"--to-hc-home {hc_home!r} holds no registry store (pass --create-registry to start one there)"
        )


@click.command("copy")
@click.argument("source", metavar="SRC_REGISTRY/PACKAGE/VERSION")
@click.argument("dest_registry", metavar="DEST_REGISTRY")
@click.option("--artifact-type", help="Artifact type (e.g. model or dataset for HuggingFace).")
@click.option("--artifact-key", metavar="K=V[,K2=V2…]", help="Copy only the artifact with this key.")
@click.option(
    "--create-registry", is_flag=True, help="Create DEST_REGISTRY (with the source's type) if missing."
)
@click.option("--to-context", help="Copy to the server named NAME in ~/.harness/contexts.json.")
@click.option("--to-api-url", help="Copy to another server: its API URL.")
@click.option("--to-pkg-url", help="The destination's package URL (default: its API URL).")
@click.option("--to-token", help="The destination's API key (prefer the HC_TO_API_KEY environment variable).")
@click.option("--to-account", help="The destination account (default: from its key).")
@click.option("--to-org", help="The destination organization.")
@click.option("--to-project", help="The destination project.")
@click.option(
    "--to-hc-home",
    type=click.Path(file_okay=False),
    help="Copy to the embedded registry stored in this directory.",
)
@bulk_options
@global_options()
@pass_state
def copy_command(
    state: CliState,
    source: str,
    dest_registry: str,
    artifact_type: str | None,
    artifact_key: str | None,
    create_registry: bool,
    to_context: str | None,
    to_api_url: str | None,
    to_pkg_url: str | None,
    to_token: str | None,
    to_account: str | None,
    to_org: str | None,
    to_project: str | None,
    to_hc_home: str | None,
    **job_flags: Any,
) -> None:
    """Copy versions to another registry: on the server when both are on one server (no bytes go
    through this machine), streamed file by file (no disk, verified) to another server.

    \b
    PACKAGE and VERSION may be globs (* and ?): every matching version is copied.
    Another server: --to-api-url URL with HC_TO_API_KEY (or --to-token), or --to-context NAME,
    or --to-hc-home DIR. Package and version metadata are carried over.
    """
    settings = state.settings()
    parsed = parse_copy_source(source)
    options = _bulk_options(**job_flags)
    if to_hc_home is not None and not create_registry:
        _require_store(to_hc_home)
    flags = DestinationFlags(
        context=to_context,
        api_url=to_api_url,
        pkg_url=to_pkg_url,
        token=to_token,
        account=to_account,
        org=to_org,
        project=to_project,
        hc_home=to_hc_home,
    )
    dest = load_destination(
        flags, environ=state.environ, contexts_file=contexts_file_path(state.home), base=settings
    )
    bulk = dest is not None or create_registry or _bulk_wanted(parsed.package, parsed.version, options)
    if dest is not None and (artifact_type or artifact_key):
        raise UsageError("--artifact-type and --artifact-key apply to a copy on one server only")
    request = CopyRequest(
        src_registry=parsed.registry,
        package=parsed.package,
        version=parsed.version,
        dest_registry=dest_registry,
        create_registry=create_registry,
        artifact_type=artifact_type,
        artifact_key=parse_artifact_key(artifact_key) or None,
    )
    if not bulk:
        run_async(copy_artifact(settings, request, notify=state.notice))
        if settings.output_format is OutputFormat.TABLE:
            if not settings.quiet:
                echo_text(f"✅ Successfully Copied package from  {source} to {dest_registry}")
        else:
            document = {
                "copied": {"registry": parsed.registry, "package": parsed.package, "version": parsed.version},
                "to": dest_registry,
            }
            echo_text(render.render_items([document], columns=(), output_format=settings.output_format))
        return
    report = _bulk_report(settings, options, label="copy", plan_text=f"would copy to {dest_registry}:")
    details = {"command": "copy", "source": source, "to": dest_registry, "cross_server": dest is not None}
    summary = run_job(report, copy_versions(settings, dest, request, options, report), details=details)
    report.finish(summary, details=details)
