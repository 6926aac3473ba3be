"""``hc artifact`` (alias ``art``): push/pull generic files, list, get, delete, metadata, copy.

Each command is parse → call → render. The async functions take ``Settings`` and are tested
without click; push and pull live in ``_artifact_transfer`` (they drive the transfer engine).

Exit codes: 0 all done, 1 some items failed (or the server refused), 2 bad arguments or
configuration, 3 authentication, 130 interrupted (a push or pull can then be resumed by running the
same command again).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import click

from hc.api.artifacts import ArtifactClient, ListPage
from hc.api.files import HarnessRemote
from hc.cli import render
from hc.cli._artifact_transfer import (
    DEFAULT_VERSION,
    PullRequest,
    PushRequest,
    parse_pull_spec,
    pull_generic,
    push_generic,
)
from hc.cli._bulk import BulkOptions, BulkReport, CopyRequest, TagRequest, copy_versions, tag_metadata
from hc.cli._bulk_select import Selection, has_wildcards, parse_where
from hc.cli._group import AliasGroup, global_options, pass_state, prompt_allowed
from hc.cli._transfer import TransferJob, TransferOptions
from hc.cli.context import CliState, Notify, open_client, run_async
from hc.cli.progress import ProgressMode
from hc.config import DestinationFlags, OutputFormat, Settings, contexts_file_path, load_destination
from hc.errors import HcError, NotFound, UsageError
from hc.protocol.identifiers import validate_registry_identifier, validate_version_name
from hc.protocol.metadata import MetadataPair, parse_metadata
from hc.protocol.models import BulkDeleteResult
from hc.transfer import ItemResult, Shard, Status

__all__ = [
    "ARTIFACT_COLUMNS",
    "FILE_COLUMNS",
    "VERSION_COLUMNS",
    "ArtifactListing",
    "CopySource",
    "artifact_group",
    "bulk_delete",
    "copy_artifact",
    "delete_lines",
    "get_artifact",
    "list_artifacts",
    "metadata_delete",
    "metadata_get",
    "metadata_set",
    "parse_artifact_key",
    "parse_copy_source",
    "validate_pattern",
]

JSONObject = dict[str, Any]
_F = TypeVar("_F", bound=Callable[..., Any])

#: The Go CLI's page size with --page; listing everything uses bigger pages.
GO_DEFAULT_PAGE_SIZE: Final = 10
CREATE_MESSAGE: Final = "artifacts are created by pushing them to a registry. Use 'hc artifact push' command"

ARTIFACT_COLUMNS: Final[Sequence[render.Column]] = (
    ("name", "Artifact"),
    ("version", "Version"),
    ("artifactKey", "Artifact Key"),
    ("packageType", "Package Type"),
    ("registryIdentifier", "Registry"),
    ("downloadsCount", "Download Count"),
)
VERSION_COLUMNS: Final[Sequence[render.Column]] = (
    ("name", "Version"),
    ("size", "Size"),
    ("fileCount", "Files"),
    ("downloadsCount", "Download Count"),
    ("lastModified", "Last Modified"),
)
FILE_COLUMNS: Final[Sequence[render.Column]] = (
    ("path", "File"),
    ("size", "Size"),
    ("sha256", "SHA-256"),
    ("createdAt", "Created"),
)
_WILDCARD_FORBIDDEN: Final = re.compile(r"[\[\]{}]")


def _quiet_notify(_: str) -> None:
    return None


# -- parsing ---------------------------------------------------------------------------------------


def parse_artifact_key(text: str | None) -> dict[str, str]:
    """``--artifact-key "k=v,k2=v2"`` → ``{"k": "v", "k2": "v2"}`` (blank pairs skipped)."""
    result: dict[str, str] = {}
    if not text:
        return result
    for segment in text.split(","):
        if not segment.strip():
            continue
        key, sep, value = segment.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise UsageError(f"invalid artifact key {segment.strip()!r}: expected key=value")
        if key in result:
            raise UsageError(f"invalid artifact key: {key!r} is given twice")
        result[key] = value
    if not result:
        raise UsageError("no artifact key given: expected key=value[,key2=value2...]")
    return result


def validate_pattern(pattern: str, *, what: str) -> str:
    """Bulk-delete patterns take only the wildcards ``*`` and ``?`` (as the Go CLI checks)."""
    if _WILDCARD_FORBIDDEN.search(pattern):
        raise UsageError(f"invalid {what} pattern {pattern!r}: only the wildcards * and ? are supported")
    return pattern


@dataclass(frozen=True)
class CopySource:
    registry: str
    package: str
    version: str


def parse_copy_source(text: str) -> CopySource:
    """``<registry>/<package path>/<version>``, split at the first and last ``/`` (the package path
    may hold ``/``, as ``@scope/name`` does); every part non-empty."""
    first, last = text.find("/"), text.rfind("/")
    if first < 0 or first == last:
        raise UsageError(f"invalid source {text!r}: expected <registry>/<package>/<version>")
    parts = CopySource(text[:first], text[first + 1 : last], text[last + 1 :])
    if not (parts.registry and parts.package and parts.version):
        raise UsageError(f"invalid source {text!r}: registry, package and version must all be non-empty")
    return parts


# -- list / get ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArtifactListing:
    """What ``list`` found: ``kind`` is artifacts, versions or files; ``page`` set for one page."""

    kind: str
    items: list[JSONObject]
    page: ListPage[Any] | None = None
    has_more: bool | None = None


async def list_artifacts(
    settings: Settings,
    *,
    registry: str | None = None,
    package: str | None = None,
    version: str | None = None,
    page: int | None = None,
    page_size: int | None = None,
    notify: Notify = _quiet_notify,
) -> ArtifactListing:
    """Artifacts (of a registry), the versions of a package, or the files of a version. Every page
    (fetched concurrently) unless ``page`` or ``page_size`` asks for one page, as the Go CLI."""
    if registry is not None:
        validate_registry_identifier(registry)
    if package is not None and registry is None:
        raise UsageError("--package needs --registry")
    if version is not None and package is None:
        raise UsageError("--version needs --package")
    one_page = page is not None or page_size is not None
    index, size = page or 0, page_size or GO_DEFAULT_PAGE_SIZE
    async with open_client(settings, notify=notify) as client:
        artifacts = ArtifactClient(client)
        if package is None:
            if one_page:
                found = await artifacts.list_artifacts_page(
                    registries=[registry] if registry else [], page=index, size=size
                )
                return ArtifactListing("artifacts", [a.to_json() for a in found.items], page=found)
            items = [
                a.to_json() async for a in artifacts.iter_artifacts(registries=[registry] if registry else [])
            ]
            return ArtifactListing("artifacts", items)
        assert registry is not None
        if version is None:
            try:
                if one_page:
                    listed = await artifacts.list_versions_page(registry, package, page=index, size=size)
                    return ArtifactListing("versions", [v.to_json() for v in listed.items], page=listed)
                items = [v.to_json() async for v in artifacts.iter_versions(registry, package)]
            except NotFound as exc:
                raise NotFound(f"artifact {package!r} not found in registry {registry!r}") from exc
            return ArtifactListing("versions", items)
        validate_version_name(version)
        remote = await HarnessRemote.open(client, registry)
        if not await remote.version_exists(package, version):
            raise NotFound(f"version {package}/{version} not found in registry {registry!r}")
        if one_page:
            files, more = await remote.files_page(package, version, page=index, size=size)
            return ArtifactListing("files", [_file_item(f) for f in files], has_more=more)
        return ArtifactListing("files", [_file_item(f) async for f in remote.list_files(package, version)])


def _file_item(entry: Any) -> JSONObject:
    return {
        "path": entry.path,
        "name": entry.path.rsplit("/", 1)[-1],
        "size": entry.size,
        "md5": entry.md5,
        "sha1": entry.sha1,
        "sha256": entry.sha256,
        "sha512": entry.sha512,
        "createdAt": entry.created_at,
    }


async def get_artifact(
    settings: Settings, name: str, *, registry: str | None = None, notify: Notify = _quiet_notify
) -> list[JSONObject]:
    """The artifact named exactly ``name`` (one row per version); NotFound when there is none."""
    if registry is not None:
        validate_registry_identifier(registry)
    if not name.strip():
        raise UsageError("the artifact name is empty")
    async with open_client(settings, notify=notify) as client:
        found = [
            a.to_json()
            async for a in ArtifactClient(client).iter_artifacts(
                registries=[registry] if registry else [], search_term=name
            )
            if a.name == name
        ]
    if not found:
        where = f" in registry {registry!r}" if registry else ""
        raise NotFound(f"artifact {name!r} not found{where}")
    return found


def render_listing(listing: ArtifactListing, output_format: OutputFormat) -> str:
    columns, formatters, empty = {
        "artifacts": (ARTIFACT_COLUMNS, {}, "No artifacts found"),
        "versions": (
            VERSION_COLUMNS,
            {"size": render.format_size, "lastModified": format_timestamp},
            "No versions found",
        ),
        "files": (
            FILE_COLUMNS,
            {"size": render.format_size, "createdAt": format_timestamp},
            "No files found",
        ),
    }[listing.kind]
    text = render.render_items(
        listing.items,
        columns=columns,
        output_format=output_format,
        formatters=formatters,
        empty_message=None if listing.page or listing.has_more is not None else empty,
    )
    if output_format is OutputFormat.TABLE:
        footer = None
        if listing.page is not None:
            page = listing.page
            footer = render.page_line(index=page.index, count=page.count, total=page.total)
        elif listing.has_more is not None:
            footer = "More files on the next page" if listing.has_more else "Last page"
        if footer:
            text = f"{text}\n{footer}" if text else footer
    return text


def format_timestamp(value: object) -> str:
    """Epoch milliseconds (a number or digit string, as Harness sends them) as UTC date and time."""
    millis: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        millis = value
    elif isinstance(value, str) and value.strip().isdigit():
        millis = int(value.strip())
    if millis is None:
        return render.format_cell(value)
    try:
        moment = dt.datetime.fromtimestamp(millis / 1000, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return render.format_cell(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


# -- delete --------------------------------------------------------------------------------------------


async def bulk_delete(
    settings: Settings,
    *,
    registry: str,
    packages: str,
    versions: str = "",
    force: bool = False,
    dry_run: bool,
    notify: Notify = _quiet_notify,
) -> BulkDeleteResult:
    validate_registry_identifier(registry)
    if not packages.strip():
        raise UsageError("the package pattern is empty")
    validate_pattern(packages, what="package")
    validate_pattern(versions, what="version")
    async with open_client(settings, notify=notify) as client:
        return await ArtifactClient(client).bulk_delete(
            registry=registry, packages=packages, versions=versions, force=force, dry_run=dry_run
        )


def _kind(result: BulkDeleteResult) -> str:
    return "Versions" if result.version_pattern else "Packages"


def delete_lines(result: BulkDeleteResult) -> list[str]:
    """The Go CLI's report of a bulk delete (dry run or not)."""
    lines = []
    if result.message:
        lines.append(render.format_cell(result.message))
    lines += [
        f"Registry        : {result.registry}",
        f"Version pattern : {result.version_pattern}".rstrip(),
        f"Dry-run         : {str(result.dry_run).lower()}",
        f"Force           : {str(result.force).lower()}",
        f"Total impacted  : {result.total} (success: {result.success}, failed: {result.failed})",
    ]
    if not result.success_packages:
        lines.append("No package/Version found to be deleted matching given pattern")
        return lines
    lines.append("Impacted package/Version")
    lines.extend(f"  {render.format_cell(name)}" for name in result.success_packages)
    more = result.success - len(result.success_packages)
    if more > 0:
        lines.append(f"... and {more} more {_kind(result)}, will be impacted (not listed above)")
    for name in result.failed_packages:
        lines.append(f"  failed: {render.format_cell(name)}")
    return lines


# -- metadata --------------------------------------------------------------------------------------------


async def metadata_get(
    settings: Settings,
    *,
    registry: str,
    package: str,
    version: str | None = None,
    artifact_key: dict[str, str] | None = None,
    notify: Notify = _quiet_notify,
) -> list[JSONObject]:
    validate_registry_identifier(registry)
    async with open_client(settings, notify=notify) as client:
        items = await client.get_metadata(
            registry=registry, package=package, version=version, artifact_key=artifact_key
        )
    return [item.to_json() for item in items]


async def metadata_set(
    settings: Settings,
    *,
    registry: str,
    package: str,
    metadata: str,
    version: str | None = None,
    artifact_key: dict[str, str] | None = None,
    notify: Notify = _quiet_notify,
) -> tuple[MetadataPair, ...]:
    validate_registry_identifier(registry)
    pairs = parse_metadata(metadata)
    async with open_client(settings, notify=notify) as client:
        await client.set_metadata(
            registry=registry, pairs=pairs, package=package, version=version, artifact_key=artifact_key
        )
    return pairs


async def metadata_delete(
    settings: Settings,
    *,
    registry: str,
    package: str,
    metadata: str,
    version: str | None = None,
    artifact_key: dict[str, str] | None = None,
    notify: Notify = _quiet_notify,
) -> tuple[MetadataPair, ...]:
    validate_registry_identifier(registry)
    pairs = parse_metadata(metadata)
    async with open_client(settings, notify=notify) as client:
        await client.delete_metadata(
            registry=registry, pairs=pairs, package=package, version=version, artifact_key=artifact_key
        )
    return pairs


# -- copy ----------------------------------------------------------------------------------------------


async def copy_artifact(
    settings: Settings,
    source: CopySource,
    dest_registry: str,
    *,
    artifact_type: str | None = None,
    artifact_key: dict[str, str] | None = None,
    notify: Notify = _quiet_notify,
) -> None:
    validate_registry_identifier(source.registry)
    validate_registry_identifier(dest_registry)
    async with open_client(settings, notify=notify) as client:
        await ArtifactClient(client).copy_version(
            src_registry=source.registry,
            package=source.package,
            version=source.version,
            dest_registry=dest_registry,
            artifact_type=artifact_type,
            artifact_key=artifact_key,
        )


# -- commands --------------------------------------------------------------------------------------------


def _echo(text: str) -> None:
    if text:
        click.echo(text)


@click.group("artifact", cls=AliasGroup)
@global_options()
def artifact_group() -> None:
    """Push, pull and manage artifacts (alias: art)."""


def transfer_options(func: _F) -> _F:
    """The flags every push and pull takes."""
    decorators = [
        click.option(
            "--concurrency",
            type=click.IntRange(1, 1024),
            default=16,
            show_default=True,
            help="Requests in flight at once.",
        ),
        click.option(
            "--progress",
            type=click.Choice([m.value for m in ProgressMode]),
            default=ProgressMode.AUTO.value,
            show_default=True,
            help="Bars on a terminal (auto), a status line every few seconds (plain), or none.",
        ),
        click.option(
            "--results",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Write one JSON line per file (status, path, size, sha256, error) to this file.",
        ),
        click.option(
            "--retry-failed",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Only redo the files a previous --results file lists as failed.",
        ),
        click.option("--dry-run", is_flag=True, help="Print what would be transferred; change nothing."),
        click.option("--overwrite", is_flag=True, help="Transfer even files that are already identical."),
    ]
    for decorate in reversed(decorators):
        func = decorate(func)
    return func


def _transfer_options(
    concurrency: int,
    progress: str,
    results: Path | None,
    retry_failed: Path | None,
    dry_run: bool,
    overwrite: bool,
) -> TransferOptions:
    return TransferOptions(
        concurrency=concurrency,
        progress=ProgressMode(progress),
        results=results,
        retry_failed=retry_failed,
        dry_run=dry_run,
        overwrite=overwrite,
    )


def _transfer_job(settings: Settings, label: str, options: TransferOptions, verb: str) -> TransferJob:
    return TransferJob(
        label=label,
        options=options,
        output_format=settings.output_format,
        quiet=settings.quiet,
        verbose=settings.verbose,
        plan_verb=verb,
    )


@artifact_group.group("push", cls=AliasGroup)
@global_options()
def push_group() -> None:
    """Push artifacts to a registry."""


@push_group.command("generic")
@click.argument("registry")
@click.argument("paths", nargs=-1, required=True)
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
    request = PushRequest(
        registry=registry, package=package, version=version, sources=paths, include_hidden=include_hidden
    )
    details = {"command": "push", "registry": registry, "package": package, "version": version}
    job = _transfer_job(settings, "push", options, "upload")
    try:
        summary = run_async(push_generic(settings, request, options, job))
    except KeyboardInterrupt:
        raise job.interrupted(details=details) from None
    finally:
        job.close()
    job.finish(summary, details=details)


@artifact_group.group("pull", cls=AliasGroup)
@global_options()
def pull_group() -> None:
    """Pull artifacts from a registry."""


@pull_group.command("generic")
@click.argument("registry")
@click.argument("artifact", metavar="PACKAGE[/VERSION[/FILE]]")
@click.argument("dest", type=click.Path(path_type=Path))
@transfer_options
@global_options()
@pass_state
def pull_generic_command(state: CliState, registry: str, artifact: str, dest: Path, **flags: Any) -> None:
    """Pull a file, a version, or every version of a package from REGISTRY into DEST.

    \b
    PACKAGE/VERSION/FILE  one file; DEST is a directory (created if missing) or the file to write
    PACKAGE/VERSION       every file of the version, under DEST
    PACKAGE               every version, under DEST/<version>/
    Files are verified against the registry's sha256 and written via <name>.part.
    """
    settings = state.settings()
    options = _transfer_options(**flags)
    spec = parse_pull_spec(artifact)
    details = {"command": "pull", "registry": registry, "artifact": str(spec), "dest": str(dest)}
    job = _transfer_job(settings, "pull", options, "download")
    try:
        summary, single = run_async(
            pull_generic(settings, PullRequest(registry=registry, spec=spec, dest=dest), options, job)
        )
    except KeyboardInterrupt:
        raise job.interrupted(details=details) from None
    finally:
        job.close()
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


@artifact_group.command("list")
@click.option("--registry", help="Only this registry.")
@click.option("--package", help="List the versions of this package (needs --registry).")
@click.option("--version", help="List the files of this version (needs --package).")
@click.option("--page", type=click.IntRange(min=0), help="Show only this page (0-based).")
@click.option(
    "--page-size",
    type=click.IntRange(min=1, max=1000),
    help=f"Show only one page of this size [default: {GO_DEFAULT_PAGE_SIZE} with --page].",
)
@global_options()
@pass_state
def list_command(
    state: CliState,
    registry: str | None,
    package: str | None,
    version: str | None,
    page: int | None,
    page_size: int | None,
) -> None:
    """List artifacts, the versions of a package, or the files of a version (all pages unless
    --page or --page-size is given)."""
    settings = state.settings()
    listing = run_async(
        list_artifacts(
            settings,
            registry=registry,
            package=package,
            version=version,
            page=page,
            page_size=page_size,
            notify=state.notice,
        )
    )
    _echo(render_listing(listing, settings.output_format))


@artifact_group.command("get")
@click.argument("name")
@click.option("--registry", help="Only in this registry.")
@global_options()
@pass_state
def get_command(state: CliState, name: str, registry: str | None) -> None:
    """Show the artifact NAME (an exact match) and its versions."""
    settings = state.settings()
    items = run_async(get_artifact(settings, name, registry=registry, notify=state.notice))
    _echo(render_listing(ArtifactListing("artifacts", items), settings.output_format))


@artifact_group.command("create")
@global_options()
def create_command() -> None:
    """Artifacts are created by pushing them (this only says so, as the Go CLI)."""
    raise UsageError(CREATE_MESSAGE)


@artifact_group.command("delete")
@click.argument("pattern")
@click.option("--registry", required=True, help="Registry identifier.")
@click.option("--version", "version_pattern", default="", help="Delete only versions matching this pattern.")
@click.option("--force", is_flag=True, help="Delete even what is in use (asks again).")
@click.option("--dry-run", is_flag=True, help="Only show what would be deleted.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@global_options()
@pass_state
def delete_command(
    state: CliState, pattern: str, registry: str, version_pattern: str, force: bool, dry_run: bool, yes: bool
) -> None:
    """Delete the packages (or, with --version, the versions) matching PATTERN (wildcards * and ?).

    A dry run shows what matches first; then hc asks before deleting (--yes skips the question).
    """
    settings = state.settings()
    delete = functools.partial(
        bulk_delete,
        settings,
        registry=registry,
        packages=pattern,
        versions=version_pattern,
        force=force,
        notify=state.notice,
    )
    preview = run_async(delete(dry_run=True))
    as_table = settings.output_format is OutputFormat.TABLE
    stop = dry_run or (not preview.success_packages and preview.success == 0)
    if as_table:
        _echo("\n".join(delete_lines(preview)))
    elif stop or not yes:
        # JSON/YAML: one document per run when --yes goes straight to the deletion
        _echo(render.render_items([preview.to_json()], columns=(), output_format=settings.output_format))
    if stop:
        return
    if not yes:
        noun = _kind(preview)
        if not prompt_allowed():
            raise UsageError(f"refusing to delete the {noun.lower()} above without confirmation: pass --yes")
        if force and not click.confirm(
            "Are you sure you want to proceed with force delete ?", default=False, err=True
        ):
            raise HcError("force delete cancelled by user")
        if not click.confirm(
            f"Above {noun} will be soft deleted. Do you want to proceed?", default=False, err=True
        ):
            raise HcError("bulk delete cancelled by user: nothing was deleted")
    done = run_async(delete(dry_run=False))
    if as_table:
        _echo(f"Deleted        : {done.success} / {done.total} (failed: {done.failed})")
        for name in done.failed_packages:
            _echo(f"  failed: {render.format_cell(name)}")
    else:
        _echo(render.render_items([done.to_json()], columns=(), output_format=settings.output_format))
    if done.failed:
        raise HcError(f"bulk delete: {done.failed} of {done.total} could not be deleted")
    if as_table and not settings.quiet:
        _echo("✅ Bulk delete completed successfully")


@artifact_group.group("metadata", cls=AliasGroup)
@global_options()
def metadata_group() -> None:
    """Get, set or delete the metadata of a package or version (key:value pairs)."""


def _metadata_target_options(func: _F) -> _F:
    for decorate in reversed(
        [
            click.option("--registry", required=True, help="Registry identifier."),
            click.option("--package", required=True, help="Package name."),
            click.option("--version", help="Version (default: the package itself)."),
            click.option(
                "--artifact-key", metavar="K=V[,K2=V2…]", help="Narrow to one artifact of the version."
            ),
        ]
    ):
        func = decorate(func)
    return func


_metadata_option = click.option(
    "--metadata", required=True, metavar="K:V[,K2:V2…]", help="Pairs, e.g. 'team:core,tier:gold'."
)


def _target_text(registry: str, package: str, version: str | None) -> str:
    what = f"package {package!r}" if version is None else f"version {package}/{version}"
    return f"{what} in registry {registry!r}"


@metadata_group.command("get")
@_metadata_target_options
@global_options()
@pass_state
def metadata_get_command(
    state: CliState, registry: str, package: str, version: str | None, artifact_key: str | None
) -> None:
    """Show the metadata of a package or version."""
    settings = state.settings()
    items = run_async(
        metadata_get(
            settings,
            registry=registry,
            package=package,
            version=version,
            artifact_key=parse_artifact_key(artifact_key) or None,
            notify=state.notice,
        )
    )
    _echo(
        render.render_items(
            items,
            columns=render.METADATA_COLUMNS,
            output_format=settings.output_format,
            empty_message="No metadata found",
        )
    )


def _pairs_output(pairs: Sequence[MetadataPair], settings: Settings, message: str) -> None:
    if settings.output_format is OutputFormat.TABLE:
        if not settings.quiet:
            _echo(message)
        return
    _echo(
        render.render_items(
            [p.to_json() for p in pairs],
            columns=render.METADATA_COLUMNS,
            output_format=settings.output_format,
        )
    )


def _bulk_options(func: _F) -> _F:
    """The flags of every bulk command (tagging, copy)."""
    for decorate in reversed(
        [
            click.option(
                "--concurrency",
                type=click.IntRange(1, 1024),
                default=16,
                show_default=True,
                help="Requests in flight at once (one limit for the whole job).",
            ),
            click.option("--shard", metavar="K/N", help="Do only shard K of N (K is 0-based: 0/4 … 3/4)."),
            click.option(
                "--dry-run", is_flag=True, help="Print exactly which targets would change; change nothing."
            ),
            click.option(
                "--results",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Write one JSON line per target (target, status, action, attempts, error).",
            ),
            click.option(
                "--progress",
                type=click.Choice([m.value for m in ProgressMode]),
                default=ProgressMode.AUTO.value,
                show_default=True,
                help="A status line every few seconds on a terminal (auto), always (plain), or none.",
            ),
        ]
    ):
        func = decorate(func)
    return func


def _bulk_selectors(func: _F) -> _F:
    for decorate in reversed(
        [
            click.option("--registry", required=True, help="Registry identifier."),
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
        ]
    ):
        func = decorate(func)
    return func


def _bulk_wanted(
    *,
    package: str | None,
    version: str | None,
    all_versions: bool,
    where: Sequence[str],
    from_file: Path | None,
    shard: str | None,
    dry_run: bool,
    results: Path | None,
) -> bool:
    """The single-target form (exact --package, optional --version, no bulk flag) keeps its old
    behaviour and output; anything else is a bulk job."""
    return bool(
        has_wildcards(package or "")
        or has_wildcards(version or "")
        or all_versions
        or where
        or from_file is not None
        or shard
        or dry_run
        or results is not None
    )


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
    concurrency: int,
    shard: str | None,
    dry_run: bool,
    results: Path | None,
    progress: str,
) -> None:
    settings = state.settings()
    bulk = _bulk_wanted(
        package=package,
        version=version,
        all_versions=all_versions,
        where=where,
        from_file=from_file,
        shard=shard,
        dry_run=dry_run,
        results=results,
    )
    verb = "delete" if delete else "set"
    if not bulk:
        if package is None:
            raise UsageError(
                "--package is required (or select targets with --from, --all-versions or --where)"
            )
        single = metadata_delete if delete else metadata_set
        pairs = run_async(
            single(
                settings,
                registry=registry,
                package=package,
                version=version,
                metadata=metadata,
                artifact_key=parse_artifact_key(artifact_key) or None,
                notify=state.notice,
            )
        )
        noun = "pair" if len(pairs) == 1 else "pairs"
        message = (
            f"Deleted {len(pairs)} metadata {noun} from {_target_text(registry, package, version)}"
            if delete
            else f"Set {len(pairs)} metadata {noun} on {_target_text(registry, package, version)}"
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
    options = BulkOptions(
        concurrency=concurrency,
        dry_run=dry_run,
        results=results,
        shard=Shard.parse(shard) if shard else None,
        progress=ProgressMode(progress),
    )
    shown = ",".join(f"{p.key}:{p.value}" for p in pairs)
    report = BulkReport(
        label=f"metadata {verb}",
        options=options,
        output_format=settings.output_format,
        quiet=settings.quiet,
        verbose=settings.verbose,
        plan_text=f"would {verb} {shown} {'from' if delete else 'on'}",
    )
    details = {"command": f"metadata {verb}", "registry": registry}
    try:
        summary = run_async(tag_metadata(settings, request, options, report))
    except KeyboardInterrupt:
        raise report.interrupted(details=details) from None
    finally:
        report.close()
    report.finish(summary, details=details)


@metadata_group.command("set")
@_bulk_selectors
@_metadata_option
@_bulk_options
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
@_bulk_selectors
@_metadata_option
@_bulk_options
@global_options()
@pass_state
def metadata_delete_command(state: CliState, **flags: Any) -> None:
    """Delete metadata pairs from a package or version, or from many at once (selectors as for set)."""
    _run_tagging(state, delete=True, **flags)


@artifact_group.command("copy")
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
@_bulk_options
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
    concurrency: int,
    shard: str | None,
    dry_run: bool,
    results: Path | None,
    progress: str,
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
    bulk = (
        dest is not None
        or create_registry
        or _bulk_wanted(
            package=parsed.package,
            version=parsed.version,
            all_versions=False,
            where=(),
            from_file=None,
            shard=shard,
            dry_run=dry_run,
            results=results,
        )
    )
    if not bulk:
        run_async(
            copy_artifact(
                settings,
                parsed,
                dest_registry,
                artifact_type=artifact_type,
                artifact_key=parse_artifact_key(artifact_key) or None,
                notify=state.notice,
            )
        )
        if settings.output_format is OutputFormat.TABLE:
            if not settings.quiet:
                _echo(f"✅ Successfully Copied package from  {source} to {dest_registry}")
        else:
            document = {
                "copied": {"registry": parsed.registry, "package": parsed.package, "version": parsed.version},
                "to": dest_registry,
            }
            _echo(render.render_items([document], columns=(), output_format=settings.output_format))
        return
    if dest is not None and (artifact_type or artifact_key):
        raise UsageError("--artifact-type and --artifact-key apply to a copy on one server only")
    options = BulkOptions(
        concurrency=concurrency,
        dry_run=dry_run,
        results=results,
        shard=Shard.parse(shard) if shard else None,
        progress=ProgressMode(progress),
    )
    request = CopyRequest(
        src_registry=parsed.registry,
        package=parsed.package,
        version=parsed.version,
        dest_registry=dest_registry,
        create_registry=create_registry,
        artifact_type=artifact_type,
        artifact_key=parse_artifact_key(artifact_key) or None,
    )
    report = BulkReport(
        label="copy",
        options=options,
        output_format=settings.output_format,
        quiet=settings.quiet,
        verbose=settings.verbose,
        plan_text=f"would copy to {dest_registry}:",
    )
    details = {"command": "copy", "source": source, "to": dest_registry, "cross_server": dest is not None}
    try:
        summary = run_async(copy_versions(settings, dest, request, options, report))
    except KeyboardInterrupt:
        raise report.interrupted(details=details) from None
    finally:
        report.close()
    report.finish(summary, details=details)
