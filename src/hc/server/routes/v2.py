"""v2 API (``/gateway/har/api/v2``): metadata on registries, packages and versions, and copy.

Metadata limits are the spec's (1–50 pairs, keys 1–128 and values 1–256 characters) and are
enforced with a 400 naming the offending item, because the Go CLI prints the server's message.
``filters`` (Debian artifact keys) are accepted and ignored: no hc package type has artifact keys.

Copy is server-side and shares blobs: it writes rows only, in one transaction, so a copied version
appears whole or not at all, and costs no bytes however large it is.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hc.errors import UsageError
from hc.protocol.models import MetadataItem
from hc.protocol.routes import V2

from ..metadata import Catalog, RegistryRow
from . import _common as c

routes = web.RouteTableDef()

MAX_ITEMS = 50
MAX_KEY = 128
MAX_VALUE = 256


def parse_metadata_items(raw: Any) -> list[tuple[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise UsageError(f"'metadata' must be a list of 1 to {MAX_ITEMS} {{key, value}} objects")
    if len(raw) > MAX_ITEMS:
        raise UsageError(f"too many metadata pairs: {len(raw)} (at most {MAX_ITEMS} per request)")
    items = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise UsageError(f"metadata[{i}] must be an object with 'key' and 'value'")
        key, value = item.get("key"), item.get("value")
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY:
            raise UsageError(f"metadata[{i}].key must be a string of 1 to {MAX_KEY} characters")
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_VALUE:
            raise UsageError(f"metadata[{i}].value must be a string of 1 to {MAX_VALUE} characters")
        items.append((key, value))
    return items


async def _target(
    request: web.Request, registry_identifier: str, package: str | None, version: str | None
) -> tuple[RegistryRow, int | None, int | None]:
    space = c.v3_space(request)
    registry = await c.registry_by_name(request, space.account, registry_identifier)
    package_id, version_id = await c.state(request).db.run(Catalog.entity_ids, registry.id, package, version)
    return registry, package_id, version_id


async def _metadata_response(
    request: web.Request, registry: RegistryRow, package_id: int | None, version_id: int | None
) -> web.Response:
    rows = await c.state(request).db.run(Catalog.get_metadata, registry.id, package_id, version_id)
    items = [MetadataItem(id=r.uuid, key=r.key, value=r.value, type=r.type).to_json() for r in rows]
    return c.ok({"metadata": items})


@routes.get(V2 + "/metadata")
async def get_metadata(request: web.Request) -> web.Response:
    registry_identifier = c.query_str(request, "registry_identifier", required=True)
    assert registry_identifier is not None
    registry, package_id, version_id = await _target(
        request, registry_identifier, c.query_str(request, "package"), c.query_str(request, "version")
    )
    return await _metadata_response(request, registry, package_id, version_id)


async def _metadata_input(
    request: web.Request,
) -> tuple[RegistryRow, int | None, int | None, list[tuple[str, str]]]:
    data = await c.json_body(request)
    registry_identifier = c.body_str(data, "registryIdentifier", required=True)
    assert registry_identifier is not None
    items = parse_metadata_items(data.get("metadata"))
    registry, package_id, version_id = await _target(
        request, registry_identifier, c.body_str(data, "package") or None, c.body_str(data, "version") or None
    )
    return registry, package_id, version_id, items


@routes.post(V2 + "/metadata")
async def set_metadata(request: web.Request) -> web.Response:
    registry, package_id, version_id, items = await _metadata_input(request)
    await c.state(request).db.run(Catalog.set_metadata, registry.id, package_id, version_id, items)
    return await _metadata_response(request, registry, package_id, version_id)


@routes.delete(V2 + "/metadata")
async def delete_metadata(request: web.Request) -> web.Response:
    registry, package_id, version_id, items = await _metadata_input(request)
    await c.state(request).db.run(
        Catalog.delete_metadata, registry.id, package_id, version_id, [key for key, _ in items]
    )
    return c.ok()


@routes.post(V2 + "/copy")
async def copy_version(request: web.Request) -> web.Response:
    space = c.v3_space(request)
    names = {
        name: c.query_str(request, name, required=True)
        for name in ("src_registry_identifier", "target_registry_identifier", "src_artifact", "src_version")
    }
    src = await c.registry_by_name(request, space.account, names["src_registry_identifier"] or "")
    dst = await c.registry_by_name(request, space.account, names["target_registry_identifier"] or "")
    if src.id == dst.id:
        raise UsageError("the source and target registries are the same")
    if src.package_type != dst.package_type:
        raise UsageError(
            f"cannot copy a {src.package_type} package into {dst.identifier!r}, a {dst.package_type} registry"
        )
    await c.state(request).db.run(
        Catalog.copy_version, src, dst, names["src_artifact"] or "", names["src_version"] or ""
    )
    return c.ok()


__all__ = ["parse_metadata_items", "routes"]
