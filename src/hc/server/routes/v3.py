"""v3 API (``/gateway/har/api/v3``): listings with ``hasMore`` paging, bulk delete, system info.

v3 pages carry no totals: the handler asks the catalog for ``size + 1`` rows and reports
``hasMore`` when the extra row exists, so a page costs one query whatever the store's size.
``include_meta=true`` adds the counts (one more query). Nothing is soft-deleted here, so
``deleted=only`` is always empty and ``deletedCount`` always 0.

Scopes: ``/registries`` obeys ``scope`` (none/ancestors/descendants); the other listings cover the
registries above and below the given org/project, as the migration code expects when it derives
org/project from a registry's path.

Bulk delete matches ``*``/``?`` patterns (the only wildcards the Go CLI allows) and deletes what
matched in one transaction; ``force`` is accepted and has no effect, since nothing in this registry
is ever "in use". Matches are listed as ``pkg`` or ``pkg@version``, up to 1000 of them.

``/system/info`` tells the client where the package endpoints are (``registryUrl``, this server as
the client reached it) and what this server can do beyond Harness (``hc`` capabilities), so a
client can use an extension when present and fall back cleanly when not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

import hc
from hc.errors import UsageError
from hc.protocol.digest import CHECKSUM_HEADERS
from hc.protocol.models import (
    BulkDeleteResult,
    FileV3,
    PackageV3,
    PageV3,
    RegistryV3,
    VersionV3,
)
from hc.protocol.routes import V3

from ..metadata import Catalog, ListQuery, Space
from . import _common as c
from . import batchread, batchwrite

routes = web.RouteTableDef()

_WILDCARD_OK = re.compile(r"^[^\[\]{}]*$")


def _page(items: Sequence[Any], query: ListQuery, total: int | None, include_meta: bool) -> web.Response:
    size = query.limit - 1
    page: PageV3[Any] = PageV3(
        items=list(items[:size]),
        page=query.offset // size,
        size=size,
        has_more=len(items) > size,
        meta={"activeCount": total or 0, "deletedCount": 0} if include_meta else None,
    )
    return web.json_response(page.to_json(), dumps=_encode)


#: json.dumps' output, without its check for cycles (a listing page holds a thousand dicts, which
#: are plain rows and cannot nest).
_encode = json.JSONEncoder(check_circular=False).encode


def _listing_query(request: web.Request) -> tuple[ListQuery, bool, bool]:
    """(query, include_meta, only_deleted)."""
    query = c.v3_query(request)
    include_meta = c.query_bool(request, "include_meta")
    deleted = (c.query_str(request, "deleted") or "exclude").lower()
    if deleted not in ("exclude", "include", "only"):
        raise UsageError("deleted must be exclude, include or only")
    if include_meta:
        query = ListQuery(
            offset=query.offset,
            limit=query.limit,
            search=query.search,
            sort=query.sort,
            descending=query.descending,
            count_total=True,
        )
    return query, include_meta, deleted == "only"


def _scope(space: Space, scope: str) -> Callable[[Space], bool]:
    if scope == "descendants":
        return space.contains
    if scope == "ancestors":
        return lambda other: other.contains(space)
    return lambda other: other == space


async def _registry_ids(request: web.Request, account: str, uuids: list[str]) -> list[int] | None:
    """Registry ids for ``registry_ids``; None when some were asked for and none exist."""
    if not uuids:
        return []
    ids = await c.state(request).db.run(Catalog.registry_ids_for_uuids, account, uuids)
    return ids or None


@routes.get(V3 + "/registries")
async def list_registries(request: web.Request) -> web.Response:
    space = c.v3_space(request)
    query, include_meta, only_deleted = _listing_query(request)
    scope = (c.query_str(request, "scope") or "none").lower()
    if scope not in ("none", "ancestors", "descendants"):
        raise UsageError("scope must be none, ancestors or descendants")
    if only_deleted or (c.query_str(request, "type") or "VIRTUAL").upper() == "UPSTREAM":
        return _page([], query, 0, include_meta)
    rows, total = await c.state(request).db.run(
        Catalog.list_registries,
        space.account,
        spaces=_scope(space, scope),
        package_types=c.package_types(c.query_list(request, "package_types")),
        metadata=c.metadata_filters(c.query_list(request, "metadata")),
        query=query,
    )
    items = [
        RegistryV3(
            id=r.uuid,
            name=r.identifier,
            package_type=r.package_type,
            type="VIRTUAL",
            is_public=False,
            url=c.registry_url(request, r),
            path=r.path,
            description=r.description,
            size=str(r.size),
            artifacts_count=r.package_count,
            package_count=r.package_count,
            download_count=0,
            modified_at=r.modified_at,
        )
        for r in rows
    ]
    return _page(items, query, total, include_meta)


@routes.get(V3 + "/packages")
async def list_packages(request: web.Request) -> web.Response:
    space = c.v3_space(request)
    query, include_meta, only_deleted = _listing_query(request)
    registry_ids = await _registry_ids(request, space.account, c.query_list(request, "registry_ids"))
    if only_deleted or registry_ids is None:
        return _page([], query, 0, include_meta)
    rows, total = await c.state(request).db.run(
        Catalog.list_packages,
        space.account,
        spaces=c.related(space),
        registry_ids=registry_ids,
        package_types=c.package_types(c.query_list(request, "package_types")),
        metadata=c.metadata_filters(c.query_list(request, "metadata")),
        query=query,
    )
    items = [
        PackageV3(
            id=p.uuid,
            name=p.name,
            package_type=p.registry.package_type,
            registry_id=p.registry.uuid,
            registry_name=p.registry.identifier,
            is_public=False,
            latest_version=p.latest_version,
            download_count=0,
            modified_at=p.modified_at,
        )
        for p in rows
    ]
    return _page(items, query, total, include_meta)


@routes.get(V3 + "/versions")
async def list_versions(request: web.Request) -> web.Response:
    space = c.v3_space(request)
    query, include_meta, only_deleted = _listing_query(request)
    registry_ids = await _registry_ids(request, space.account, c.query_list(request, "registry_ids"))
    if only_deleted or registry_ids is None:
        return _page([], query, 0, include_meta)
    rows, total = await c.state(request).db.run(
        Catalog.list_versions,
        space.account,
        spaces=c.related(space),
        registry_ids=registry_ids,
        package_uuids=c.query_list(request, "package_ids"),
        package_types=c.package_types(c.query_list(request, "package_types")),
        metadata=c.metadata_filters(c.query_list(request, "metadata")),
        query=query,
    )
    items = [
        VersionV3(
            id=v.uuid,
            name=v.name,
            package_id=v.package_uuid,
            package_name=v.package_name,
            package_type=v.registry.package_type,
            registry_id=v.registry.uuid,
            registry_name=v.registry.identifier,
            registry_type="VIRTUAL",
            size=str(v.size),
            file_count=v.file_count,
            download_count=0,
            created_at=v.created_at,
            modified_at=v.modified_at,
        )
        for v in rows
    ]
    return _page(items, query, total, include_meta)


@routes.get(V3 + "/files")
async def list_files(request: web.Request) -> web.Response:
    space = c.v3_space(request)
    query, include_meta, _ = _listing_query(request)
    db = c.state(request).db
    registry_uuid = c.query_str(request, "registry_id")
    registry_ids: list[int] = []
    if registry_uuid:
        found = await _registry_ids(request, space.account, [registry_uuid])
        if found is None:
            return _page([], query, 0, include_meta)
        registry_ids = found
    version_id = None
    version_uuid = c.query_str(request, "version_id")
    if version_uuid:
        version = await db.run(Catalog.version_by_uuid, space.account, version_uuid)
        if version is None:
            return _page([], query, 0, include_meta)
        version_id = version[0]
    rows, total = await db.run(
        Catalog.list_files,
        account=space.account,
        spaces=c.related(space),
        registry_ids=registry_ids,
        version_id=version_id,
        package_uuid=c.query_str(request, "package_id"),
        query=query,
    )
    file_url = c.file_urls(request)
    # FileV3's fields in order: id, name, path, size, md5, sha1, sha256, sha512, createdAt,
    # downloadUrl (rows rather than objects: this is the listing hot path).
    items = FileV3.json_rows(
        (
            str(f.id),
            f.path.rpartition("/")[2],  # posixpath.basename, without its call overhead
            "/" + f.path,
            str(f.size),
            f.md5,
            f.sha1,
            f.sha256,
            f.sha512,
            f.created_at,
            file_url(r, f.package_name, f.version_name, f.path),
        )
        for f, r in rows
    )
    return _page(items, query, total, include_meta)


def _check_wildcard(value: str, what: str) -> str:
    if not _WILDCARD_OK.match(value):
        raise UsageError(f"invalid {what} pattern {value!r}: only the wildcards * and ? are supported")
    return value


@routes.post(V3 + "/bulkdelete")
async def bulk_delete(request: web.Request) -> web.Response:
    space = c.v3_space(request)
    data = await c.json_body(request)
    packages = _check_wildcard(c.body_str(data, "packages", required=True) or "", "package")
    versions = _check_wildcard(c.body_str(data, "versions") or "", "version")
    registry_name = c.body_str(data, "registry", required=True) or ""
    if not packages:
        raise UsageError("'packages' must be a non-empty pattern")
    force = c.body_bool(data, "force")
    dry_run = c.body_bool(data, "dryRun")
    registry = await c.registry_by_name(request, space.account, registry_name)
    matched = await c.state(request).db.run(
        Catalog.bulk_delete, registry.id, packages, versions, dry_run=dry_run
    )
    kind = "versions" if versions else "packages"
    if dry_run:
        message = f"{len(matched)} {kind} match and would be deleted (dry run)"
    else:
        message = f"{len(matched)} {kind} deleted"
    result = BulkDeleteResult(
        dry_run=dry_run,
        force=force,
        registry=registry.identifier,
        pattern=packages,
        version_pattern=versions,
        total=len(matched),
        success=len(matched),
        failed=0,
        success_packages=matched[: BulkDeleteResult.MAX_LISTED],
        failed_packages=[],
        message=message,
    )
    return web.json_response(result.to_json())


@routes.get(V3 + "/system/info")
async def system_info(request: web.Request) -> web.Response:
    c.v3_space(request)
    return c.ok(
        {
            "registryUrl": c.base_url(request),
            "hc": {
                "server": "hc-embedded",
                "version": hc.__version__,
                **c.state(request).uploads.capabilities().to_json(),
                "overwrite": ["query:overwrite=true", "header:X-Hc-Overwrite"],
                "checksumHeaders": list(CHECKSUM_HEADERS.values()),
                # every upload is hashed while stored and refused (CHECKSUM_MISMATCH, nothing
                # stored) when it misses a declared digest: copies lean on it (hc.api.files)
                "verifiesChecksums": True,
                "rangeRequests": True,
                "copySharesBlobs": True,
                **batchread.LIMITS.to_json(),
                **batchwrite.LIMITS.to_json(),
            },
        }
    )


__all__ = ["routes"]
