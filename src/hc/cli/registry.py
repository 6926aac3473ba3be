"""``hc registry`` (alias ``reg``): list, get, create, delete, and metadata get/set/delete.

Each command is parse → call → render. The async functions here take ``Settings`` and do the
call, so they are tested without click; the click commands only parse options and print.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import click

from hc.api import RegistryPage
from hc.cli import render
from hc.cli._group import AliasGroup, LazyCommand, global_options, pass_state, prompt_allowed
from hc.cli._options import page_option
from hc.cli.context import CliState, Notify, open_client, run_async
from hc.config import OutputFormat, Settings
from hc.errors import HcError, UsageError
from hc.protocol.identifiers import validate_registry_identifier
from hc.protocol.metadata import MetadataPair, parse_metadata
from hc.protocol.models import RegistryV1

__all__ = [
    "RegistryListing",
    "create_registry",
    "delete_metadata",
    "delete_registry",
    "get_metadata",
    "get_registry",
    "list_registries",
    "registry_group",
    "render_registries",
    "set_metadata",
]

JSONObject = dict[str, Any]

#: The Go CLI's default page size for ``--page``; listing everything uses bigger pages.
GO_DEFAULT_PAGE_SIZE: Final = 10
LIST_ALL_PAGE_SIZE: Final = 100
_PACKAGE_TYPE_RE: Final = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")


def _quiet_notify(_: str) -> None:
    return None


# -- operations (no click) -----------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryListing:
    """Registries found; ``page`` is set when one page was asked for (for the page footer)."""

    items: list[JSONObject]
    page: RegistryPage | None = None


def normalize_package_type(value: str) -> str:
    """``generic`` → ``GENERIC``; anything that cannot be a package type is a UsageError."""
    text = value.strip().upper()
    if not _PACKAGE_TYPE_RE.fullmatch(text):
        raise UsageError(f"invalid package type {value!r}: expected a name like GENERIC, DOCKER or NPM")
    return text


async def list_registries(
    settings: Settings,
    *,
    page: int | None = None,
    page_size: int | None = None,
    package_types: Sequence[str] = (),
    notify: Notify = _quiet_notify,
) -> RegistryListing:
    """One page (``page`` given) or every registry in scope (pages fetched concurrently)."""
    types = [normalize_package_type(t) for t in package_types]
    async with open_client(settings, notify=notify) as client:
        if page is not None:
            one = await client.list_registries_page(
                page=page, size=page_size or GO_DEFAULT_PAGE_SIZE, package_types=types
            )
            return RegistryListing(items=[item.to_json() for item in one.items], page=one)
        items = [
            item.to_json()
            async for item in client.iter_registries(
                page_size=page_size or LIST_ALL_PAGE_SIZE, package_types=types
            )
        ]
        return RegistryListing(items=items)


async def get_registry(settings: Settings, identifier: str, *, notify: Notify = _quiet_notify) -> JSONObject:
    """The registry with exactly this identifier, shaped like a list item (``type`` at the top)."""
    validate_registry_identifier(identifier)
    async with open_client(settings, notify=notify) as client:
        return _as_list_item(await client.get_registry(identifier))


async def create_registry(
    settings: Settings,
    identifier: str,
    *,
    package_type: str,
    description: str | None = None,
    notify: Notify = _quiet_notify,
) -> JSONObject:
    validate_registry_identifier(identifier)
    kind = normalize_package_type(package_type)
    async with open_client(settings, notify=notify) as client:
        created = await client.create_registry(identifier, package_type=kind, description=description)
        return _as_list_item(created)


async def delete_registry(settings: Settings, identifier: str, *, notify: Notify = _quiet_notify) -> None:
    validate_registry_identifier(identifier)
    async with open_client(settings, notify=notify) as client:
        await client.delete_registry(identifier)


async def get_metadata(
    settings: Settings, *, registry: str, notify: Notify = _quiet_notify
) -> list[JSONObject]:
    validate_registry_identifier(registry)
    async with open_client(settings, notify=notify) as client:
        return [item.to_json() for item in await client.get_metadata(registry=registry)]


async def set_metadata(
    settings: Settings, *, registry: str, metadata: str, notify: Notify = _quiet_notify
) -> tuple[MetadataPair, ...]:
    """Parse ``k:v,k2:v2`` strictly (before anything starts), then set the pairs."""
    validate_registry_identifier(registry)
    pairs = parse_metadata(metadata)
    async with open_client(settings, notify=notify) as client:
        await client.set_metadata(registry=registry, pairs=pairs)
    return pairs


async def delete_metadata(
    settings: Settings, *, registry: str, metadata: str, notify: Notify = _quiet_notify
) -> tuple[MetadataPair, ...]:
    validate_registry_identifier(registry)
    pairs = parse_metadata(metadata)
    async with open_client(settings, notify=notify) as client:
        await client.delete_metadata(registry=registry, pairs=pairs)
    return pairs


def _as_list_item(registry: RegistryV1) -> JSONObject:
    # GET/POST /registry return the full Registry (registry type under config.type); list items
    # carry it as "type". Show both kinds the same way.
    item = registry.to_json()
    config = item.get("config")
    if "type" not in item and isinstance(config, dict) and config.get("type"):
        item["type"] = config["type"]
    return item


# -- rendering -----------------------------------------------------------------------------------


def render_registries(listing: RegistryListing, output_format: OutputFormat) -> str:
    text = render.render_items(
        listing.items,
        columns=render.REGISTRY_COLUMNS,
        output_format=output_format,
        formatters={"registrySize": render.format_size},
        empty_message=None if listing.page else "No registries found",
    )
    if listing.page is not None and output_format is OutputFormat.TABLE:
        page = listing.page
        footer = render.page_line(index=page.index, count=page.count, total=page.total)
        text = f"{text}\n{footer}" if text else footer
    return text


def _render_pairs(pairs: Sequence[MetadataPair], output_format: OutputFormat, message: str) -> str:
    if output_format is OutputFormat.TABLE:
        return message
    return render.render_metadata([p.to_json() for p in pairs], output_format)


def _echo(text: str) -> None:
    if text:
        click.echo(text)


# -- commands ------------------------------------------------------------------------------------


@click.group("registry", cls=AliasGroup)
@global_options()
def registry_group() -> None:
    """Manage registries (alias: reg)."""


@registry_group.command("list")
@page_option
@click.option(
    "--page-size",
    type=click.IntRange(min=1, max=1000),
    help=f"Items per page [default: {GO_DEFAULT_PAGE_SIZE} with --page].",
)
@click.option("--package-type", "package_types", multiple=True, help="Only this package type (repeatable).")
@global_options()
@pass_state
def list_command(
    state: CliState, page: int | None, page_size: int | None, package_types: tuple[str, ...]
) -> None:
    """List registries (all pages unless --page is given)."""
    settings = state.settings()
    listing = run_async(
        list_registries(
            settings, page=page, page_size=page_size, package_types=package_types, notify=state.notice
        )
    )
    _echo(render_registries(listing, settings.output_format))


@registry_group.command("get")
@click.argument("identifier")
@global_options()
@pass_state
def get_command(state: CliState, identifier: str) -> None:
    """Show the registry IDENTIFIER (an exact match)."""
    settings = state.settings()
    item = run_async(get_registry(settings, identifier, notify=state.notice))
    _echo(render_registries(RegistryListing(items=[item]), settings.output_format))


@registry_group.command("create")
@click.argument("identifier")
@click.option("--package-type", required=True, help="GENERIC, DOCKER, NPM, MAVEN, PYTHON, …")
@click.option("--description", help="A description shown in listings.")
@global_options()
@pass_state
def create_command(state: CliState, identifier: str, package_type: str, description: str | None) -> None:
    """Create the registry IDENTIFIER."""
    settings = state.settings()
    item = run_async(
        create_registry(
            settings, identifier, package_type=package_type, description=description, notify=state.notice
        )
    )
    _echo(render_registries(RegistryListing(items=[item]), settings.output_format))


@registry_group.command("delete")
@click.argument("identifier")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@global_options()
@pass_state
def delete_command(state: CliState, identifier: str, yes: bool) -> None:
    """Delete the registry IDENTIFIER and everything in it."""
    settings = state.settings()
    validate_registry_identifier(identifier)
    if not yes:
        if not prompt_allowed():
            raise UsageError(f"refusing to delete registry {identifier!r} without confirmation: pass --yes")
        if not click.confirm(f"Delete registry {identifier!r} and everything in it?", default=False):
            raise HcError(f"cancelled: registry {identifier!r} was not deleted")
    run_async(delete_registry(settings, identifier, notify=state.notice))
    if settings.output_format is OutputFormat.TABLE:
        if not settings.quiet:
            click.echo(f"Deleted registry {identifier!r}")
    else:
        result = [{"deleted": identifier}]
        _echo(render.render_items(result, columns=(), output_format=settings.output_format))


@registry_group.group("metadata", cls=AliasGroup)
@global_options()
def metadata_group() -> None:
    """Get, set or delete a registry's metadata (key:value pairs)."""


_registry_option = click.option("--registry", required=True, help="Registry identifier.")
_metadata_option = click.option(
    "--metadata", required=True, metavar="K:V[,K2:V2…]", help="Pairs, e.g. 'team:core,tier:gold'."
)


@metadata_group.command("get")
@_registry_option
@global_options()
@pass_state
def metadata_get_command(state: CliState, registry: str) -> None:
    """Show the registry's metadata."""
    settings = state.settings()
    items = run_async(get_metadata(settings, registry=registry, notify=state.notice))
    _echo(render.render_metadata(items, settings.output_format))


@metadata_group.command("set")
@_registry_option
@_metadata_option
@global_options()
@pass_state
def metadata_set_command(state: CliState, registry: str, metadata: str) -> None:
    """Add or overwrite metadata pairs on the registry."""
    settings = state.settings()
    pairs = run_async(set_metadata(settings, registry=registry, metadata=metadata, notify=state.notice))
    message = f"Set {len(pairs)} metadata {'pair' if len(pairs) == 1 else 'pairs'} on registry {registry!r}"
    if settings.output_format is not OutputFormat.TABLE or not settings.quiet:
        _echo(_render_pairs(pairs, settings.output_format, message))


@metadata_group.command("delete")
@_registry_option
@_metadata_option
@global_options()
@pass_state
def metadata_delete_command(state: CliState, registry: str, metadata: str) -> None:
    """Delete metadata pairs from the registry."""
    settings = state.settings()
    pairs = run_async(delete_metadata(settings, registry=registry, metadata=metadata, notify=state.notice))
    noun = "pair" if len(pairs) == 1 else "pairs"
    message = f"Deleted {len(pairs)} metadata {noun} from registry {registry!r}"
    if settings.output_format is not OutputFormat.TABLE or not settings.quiet:
        _echo(_render_pairs(pairs, settings.output_format, message))


# Loaded only when it runs: it brings the migration engine and the transfer engine with it.
registry_group.add_lazy(
    "migrate",
    LazyCommand(
        "hc.cli.migrate",
        "migrate_command",
        "Migrate artifacts from another registry (HAR, or an HTTP/WebDAV file tree) into Harness or an hc "
        "registry, as the config file's mappings say.",
    ),
)
