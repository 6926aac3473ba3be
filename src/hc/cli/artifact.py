"""``hc artifact`` (alias ``art``): the group, and list, get, delete and create.

Each command is parse → call → render. The async functions take ``Settings`` and are tested
without click. The heavier subcommands live in their own modules, imported only when they run:
push and pull in ``artifact_push_pull`` (the transfer engine), metadata and copy in
``artifact_bulk`` (bulk jobs). A listing is written while it arrives (``write_listing``), so
listing a version of a million files takes no more memory than listing ten.

Exit codes: 0 all done, 1 some items failed (or the server refused), 2 bad arguments or
configuration, 3 authentication, 130 interrupted (a push or pull can then be resumed by running the
same command again).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import click

from hc.api.artifacts import ArtifactClient, ListPage
from hc.api.files import HarnessRemote
from hc.cli import render
from hc.cli._group import AliasGroup, LazyCommand, echo_text, global_options, pass_state, prompt_allowed
from hc.cli._options import page_option
from hc.cli.context import CliState, Notify, open_client, run_async
from hc.config import OutputFormat, Settings
from hc.errors import HcError, NotFound, RemoteError, UsageError
from hc.protocol.digest import hex_digest
from hc.protocol.identifiers import validate_registry_identifier, validate_version_name
from hc.protocol.models import BulkDeleteResult, FileV3

__all__ = [
    "ARTIFACT_COLUMNS",
    "FILE_COLUMNS",
    "VERSION_COLUMNS",
    "ArtifactListing",
    "CopySource",
    "artifact_group",
    "bulk_delete",
    "delete_lines",
    "get_artifact",
    "open_listing",
    "parse_artifact_key",
    "parse_copy_source",
    "validate_pattern",
    "write_listing",
]

JSONObject = dict[str, Any]
_T = TypeVar("_T")

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
_WELL_FORMED_DIGESTS: Final = re.compile(r"[0-9a-f]{32}:[0-9a-f]{40}:[0-9a-f]{64}:[0-9a-f]{128}")
#: v3 file-listing page sizes when listing everything: hc registries allow 1000 a page; Harness is
#: asked for its usual 100 (as the transfer engine's listings do).
FILES_PAGE_SIZE_HC: Final = 1000
FILES_PAGE_SIZE: Final = 100


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
    """What ``list`` finds: ``kind`` is artifacts, versions or files; ``page`` set for one page.

    ``items`` arrive while they are written out (a version may hold a million files), so a listing
    is only good inside ``open_listing``, whose connection fetches them."""

    kind: str
    items: AsyncGenerator[JSONObject, None]
    page: ListPage[Any] | None = None
    has_more: bool | None = None


@asynccontextmanager
async def open_listing(
    settings: Settings,
    *,
    registry: str | None = None,
    package: str | None = None,
    version: str | None = None,
    page: int | None = None,
    page_size: int | None = None,
    notify: Notify = _quiet_notify,
) -> AsyncIterator[ArtifactListing]:
    """Artifacts (of a registry), the versions of a package, or the files of a version. Every page
    (fetched concurrently) unless ``page`` or ``page_size`` asks for one page, as the Go CLI."""
    if registry is not None:
        validate_registry_identifier(registry)
    if package is not None and registry is None:
        raise UsageError("--package needs --registry")
    if version is not None and package is None:
        raise UsageError("--version needs --package")
    if version is not None:
        validate_version_name(version)
    one_page = page is not None or page_size is not None
    index, size = page or 0, page_size or GO_DEFAULT_PAGE_SIZE
    async with open_client(settings, notify=notify) as client:
        artifacts = ArtifactClient(client)
        if package is None:
            registries = [registry] if registry else []
            if one_page:
                found = await artifacts.list_artifacts_page(registries=registries, page=index, size=size)
                yield ArtifactListing("artifacts", _each([a.to_json() for a in found.items]), page=found)
            else:
                found_all = artifacts.iter_artifacts(registries=registries)
                yield ArtifactListing("artifacts", _as_json(found_all, lambda a: a.to_json()))
            return
        assert registry is not None
        if version is None:
            if one_page:
                try:
                    listed = await artifacts.list_versions_page(registry, package, page=index, size=size)
                except NotFound as exc:
                    raise _no_artifact(registry, package) from exc
                yield ArtifactListing("versions", _each([v.to_json() for v in listed.items]), page=listed)
            else:
                versions = artifacts.iter_versions(registry, package)
                missing = _no_artifact(registry, package)
                yield ArtifactListing("versions", _as_json(versions, lambda v: v.to_json(), missing=missing))
            return
        # Straight from the v3 listing to output rows, not through the engine's file entries:
        # this is the hot path of listing a large version.
        remote = await HarnessRemote.open(client, registry)
        registry_id = await remote.registry_id()
        found_package = await artifacts.find_package(registry_id, package)
        found_version = (
            await artifacts.find_version(registry_id, found_package.id, version)
            if found_package is not None and found_package.id
            else None
        )
        if found_version is None or not found_version.id:
            raise NotFound(f"version {package}/{version} not found in registry {registry!r}")
        if one_page:
            files_page = await artifacts.files_page(
                registry_id=registry_id, version_id=found_version.id, page=index, size=size
            )
            rows = [_file_item(f) for f in files_page.items]
            yield ArtifactListing("files", _each(rows), has_more=files_page.has_more)
        else:
            files = artifacts.iter_files(
                registry_id=registry_id,
                version_id=found_version.id,
                page_size=FILES_PAGE_SIZE_HC if remote.capabilities.hc_server else FILES_PAGE_SIZE,
                expected_count=found_version.file_count,
            )
            yield ArtifactListing("files", _as_json(files, _file_item))


def _no_artifact(registry: str, package: str) -> NotFound:
    return NotFound(f"artifact {package!r} not found in registry {registry!r}")


async def _as_json(
    found: AsyncIterator[_T], to_json: Callable[[_T], JSONObject], *, missing: NotFound | None = None
) -> AsyncGenerator[JSONObject, None]:
    """The items of a listing as JSON objects; NotFound becomes ``missing`` when given."""
    try:
        async for item in found:
            yield to_json(item)
    except NotFound as exc:
        if missing is None:
            raise
        raise missing from exc
    finally:
        # A listing that stops early (a closed pipe, Ctrl-C) closes its source now, on its
        # connection, instead of leaving it to be closed at loop shutdown.
        close = getattr(found, "aclose", None)
        if close is not None:
            await close()


async def _each(items: Iterable[JSONObject]) -> AsyncGenerator[JSONObject, None]:
    for item in items:
        yield item


def _file_item(file: FileV3) -> JSONObject:
    """A listed file as hc shows it: the path inside the version (no leading ``/``), the size as
    a number, digests as lower-case hex or null when malformed (as the transfer engine reads a
    listing), ``createdAt`` in epoch milliseconds or null."""
    path = str(file.path or file.name).lstrip("/")
    try:
        size = int(str(file.size).strip())
    except ValueError:
        raise RemoteError(f"the listing gave {file.path!r} a size of {file.size!r}") from None
    md5: str | None = file.md5
    sha1: str | None = file.sha1
    sha256: str | None = file.sha256
    sha512: str | None = file.sha512
    # One match for the usual case (four well-formed digests) instead of four checks.
    if not (
        type(md5) is str
        and type(sha1) is str
        and type(sha256) is str
        and type(sha512) is str
        and _WELL_FORMED_DIGESTS.fullmatch(f"{md5}:{sha1}:{sha256}:{sha512}")
    ):
        md5, sha1 = hex_digest(md5, "md5"), hex_digest(sha1, "sha1")
        sha256, sha512 = hex_digest(sha256, "sha256"), hex_digest(sha512, "sha512")
    return {
        "path": path,
        "name": path.rsplit("/", 1)[-1],
        "size": size,
        "md5": md5,
        "sha1": sha1,
        "sha256": sha256,
        "sha512": sha512,
        "createdAt": file.created_at if isinstance(file.created_at, int) else None,
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


def format_timestamp(value: object) -> str:
    """Epoch milliseconds (a number or digit string, as Harness sends them) as UTC date and time."""
    millis: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        millis = value
    elif isinstance(value, str) and value.strip().isdecimal():
        millis = int(value.strip())
    if millis is None:
        return render.format_cell(value)
    text = _utc_second(millis // 1000)
    return render.format_cell(value) if text is None else text


@functools.lru_cache(maxsize=4096)
def _utc_second(seconds: int) -> str | None:
    """An epoch second as UTC date and time (None when out of range). Cached: the files of a
    listing were mostly made in the same few seconds, and formatting dates is slow."""
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return None


#: Listing output is written in pieces of about this many characters.
_WRITE_BATCH: Final = 64 * 1024


def _listing_style(kind: str) -> tuple[Sequence[render.Column], dict[str, render.CellFormatter], str]:
    """Columns, cell formatters and the empty-table message of one kind of listing."""
    if kind == "artifacts":
        return ARTIFACT_COLUMNS, {}, "No artifacts found"
    if kind == "versions":
        return (
            VERSION_COLUMNS,
            {"size": render.format_size, "lastModified": format_timestamp},
            "No versions found",
        )
    return FILE_COLUMNS, {"size": render.format_size, "createdAt": format_timestamp}, "No files found"


async def write_listing(
    listing: ArtifactListing, output_format: OutputFormat, *, write: Callable[[str], None] | None = None
) -> int:
    """Write a listing while its items arrive (constant memory; see ``render.ItemStream``), with
    the Go CLI's page footer under a one-page table. Returns how many items were written.

    ``write`` (stdout by default) runs in a worker thread: a reader that stops reading (a pager)
    must not stall the event loop, which also runs the connection's timers and, without an
    account, the embedded registry."""
    emit = write or _write_stdout
    columns, formatters, empty = _listing_style(listing.kind)
    one_page = listing.page is not None or listing.has_more is not None
    stream = render.ItemStream(
        output_format, columns=columns, formatters=formatters, empty_message=None if one_page else empty
    )
    pending: list[str] = []
    size = 0
    async with aclosing(listing.items) as items:
        async for item in items:
            text = stream.add(item)
            pending.append(text)
            size += len(text)
            if size >= _WRITE_BATCH:
                await asyncio.to_thread(emit, "".join(pending))
                pending.clear()
                size = 0
    pending.append(stream.close())
    footer = _page_footer(listing) if output_format is OutputFormat.TABLE else None
    if footer:
        pending.append(f"{footer}\n")
    if any(pending):
        await asyncio.to_thread(emit, "".join(pending))
    return stream.count


def _page_footer(listing: ArtifactListing) -> str | None:
    if listing.page is not None:
        page = listing.page
        return render.page_line(index=page.index, count=page.count, total=page.total)
    if listing.has_more is not None:
        return "More files on the next page" if listing.has_more else "Last page"
    return None


def _write_stdout(text: str) -> None:
    click.echo(text, nl=False)


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


# -- commands --------------------------------------------------------------------------------------------


@click.group("artifact", cls=AliasGroup)
@global_options()
def artifact_group() -> None:
    """Push, pull and manage artifacts (alias: art)."""


# Push and pull import the transfer engine, metadata and copy the bulk machinery: each is loaded
# only when it runs, so ``hc artifact list`` starts without them.
SUBCOMMANDS: Final[dict[str, LazyCommand]] = {
    "push": LazyCommand("hc.cli.artifact_push_pull", "push_group", "Push artifacts to a registry."),
    "pull": LazyCommand("hc.cli.artifact_push_pull", "pull_group", "Pull artifacts from a registry."),
    "metadata": LazyCommand(
        "hc.cli.artifact_bulk",
        "metadata_group",
        "Get, set or delete the metadata of a package or version (key:value pairs).",
    ),
    "copy": LazyCommand(
        "hc.cli.artifact_bulk",
        "copy_command",
        "Copy versions to another registry: on the server when both are on one server (no bytes go "
        "through this machine), streamed file by file (no disk, verified) to another server.",
    ),
}
assert isinstance(artifact_group, AliasGroup)
for _name, _command in SUBCOMMANDS.items():
    artifact_group.add_lazy(_name, _command)


@artifact_group.command("list")
@click.option("--registry", help="Only this registry.")
@click.option("--package", help="List the versions of this package (needs --registry).")
@click.option("--version", help="List the files of this version (needs --package).")
@page_option
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
    query = {"registry": registry, "package": package, "version": version}
    run_async(_print_listing(settings, notify=state.notice, page=page, page_size=page_size, **query))


async def _print_listing(settings: Settings, **query: Any) -> None:
    async with open_listing(settings, **query) as listing:
        await write_listing(listing, settings.output_format)


@artifact_group.command("get")
@click.argument("name")
@click.option("--registry", help="Only in this registry.")
@global_options()
@pass_state
def get_command(state: CliState, name: str, registry: str | None) -> None:
    """Show the artifact NAME (an exact match) and its versions."""
    settings = state.settings()

    async def show() -> None:
        items = await get_artifact(settings, name, registry=registry, notify=state.notice)
        await write_listing(ArtifactListing("artifacts", _each(items)), settings.output_format)

    run_async(show())


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
        echo_text("\n".join(delete_lines(preview)))
    elif stop or not yes:
        # JSON/YAML: one document per run when --yes goes straight to the deletion
        echo_text(render.render_items([preview.to_json()], columns=(), output_format=settings.output_format))
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
        echo_text(f"Deleted        : {done.success} / {done.total} (failed: {done.failed})")
        for name in done.failed_packages:
            echo_text(f"  failed: {render.format_cell(name)}")
    else:
        echo_text(render.render_items([done.to_json()], columns=(), output_format=settings.output_format))
    if done.failed:
        raise HcError(f"bulk delete: {done.failed} of {done.total} could not be deleted")
    if as_table and not settings.quiet:
        echo_text("✅ Bulk delete completed successfully")
