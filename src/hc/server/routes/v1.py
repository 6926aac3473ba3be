"""v1 management API (``/gateway/har/api/v1``): registries, artifacts, versions, files.

Path parameters arrive as Go's ``url.PathEscape`` sends them (``acct%2Forg%2Freg/+``) or with plain
slashes; aiohttp matches on the path with ``%2F`` kept escaped and unescapes the captured values,
so one pattern per route serves both. ``/+`` ends a ref, so a ref is "anything without ``/+``".

Pages are 0-based as the Go CLI sends them (the spec's ``default: 1`` notwithstanding), and the
envelope carries ``itemCount``/``pageCount``/``pageIndex``/``pageSize`` so the Go client's
"stop when pageIndex+1 >= pageCount" works.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from hc.errors import NotFound, UsageError
from hc.protocol.identifiers import validate_registry_identifier
from hc.protocol.models import (
    ALL_PACKAGE_TYPES,
    ArtifactV1,
    ArtifactVersionV1,
    FileDetailV1,
    PageV1,
    RegistryMetadataV1,
    RegistryV1,
    format_bytesize,
)
from hc.protocol.routes import V1

from ..metadata import Catalog, ListQuery, PackageRow, RegistryRow, Space, VersionRow
from ..state import ACCOUNT
from . import _common as c

REF = r"{registry_ref:(?:(?!/\+).)+}"
SPACE = r"{space_ref:(?:(?!/\+).)+}"
ART = r"{artifact:(?:(?!/\+).)+}"

routes = web.RouteTableDef()


def registry_v1(request: web.Request, r: RegistryRow) -> RegistryV1:
    return RegistryV1(
        identifier=r.identifier,
        name=r.identifier,
        type="VIRTUAL",
        package_type=r.package_type,
        url=c.registry_url(request, r),
        uuid=r.uuid,
        description=r.description,
        labels=r.labels,
        allowed_pattern=r.allowed_pattern,
        blocked_pattern=r.blocked_pattern,
        config={"type": "VIRTUAL", "upstreamProxies": []},
        created_at=c.ms_str(r.created_at),
        modified_at=c.ms_str(r.modified_at),
    )


def registry_metadata_v1(request: web.Request, r: RegistryRow) -> RegistryMetadataV1:
    return RegistryMetadataV1(
        identifier=r.identifier,
        package_type=r.package_type,
        type="VIRTUAL",
        url=c.registry_url(request, r),
        path=r.path,
        description=r.description,
        labels=r.labels,
        registry_size=format_bytesize(r.size),
        artifacts_count=r.package_count,
        downloads_count=0,
        last_modified=c.ms_str(r.modified_at),
    )


def _v1_page(items: Sequence[Any], total: int | None, query: ListQuery, key: str) -> web.Response:
    count = total or 0
    page: PageV1[Any] = PageV1(
        items=list(items),
        item_count=count,
        page_count=c.page_count(count, query.limit),
        page_index=query.offset // query.limit,
        page_size=query.limit,
        items_key=key,
    )
    return web.json_response(page.to_json())


# ------------------------------------------------------------------------------------- registries


@dataclass(frozen=True, slots=True)
class _RegistryFields:
    package_type: str | None
    description: str | None
    labels: list[str] | None
    allowed_pattern: list[str] | None
    blocked_pattern: list[str] | None


def _registry_request(data: dict[str, Any]) -> _RegistryFields:
    config = data.get("config")
    if config is not None:
        if not isinstance(config, dict):
            raise UsageError("field 'config' must be an object")
        if str(config.get("type", "VIRTUAL")).upper() == "UPSTREAM":
            raise UsageError("upstream (proxy) registries are not supported by the embedded registry")
    package_type = c.body_str(data, "packageType")
    if package_type is not None:
        package_type = package_type.upper()
        if package_type not in ALL_PACKAGE_TYPES:
            raise UsageError(f"unknown package type {package_type!r}")
    return _RegistryFields(
        package_type=package_type,
        description=c.body_str(data, "description"),
        labels=c.body_str_list(data, "labels"),
        allowed_pattern=c.body_str_list(data, "allowedPattern"),
        blocked_pattern=c.body_str_list(data, "blockedPattern"),
    )


@routes.post(V1 + "/registry")
async def create_registry(request: web.Request) -> web.Response:
    data = await c.json_body(request)
    identifier = c.body_str(data, "identifier", required=True)
    assert identifier is not None
    validate_registry_identifier(identifier)
    fields = _registry_request(data)
    if fields.package_type is None:
        raise UsageError("missing required field 'packageType'")
    ref = c.query_str(request, "space_ref") or c.body_str(data, "parentRef") or request[ACCOUNT]
    space = c.space_from_ref(request, ref)
    registry = await c.state(request).db.run(
        Catalog.create_registry,
        space,
        identifier,
        package_type=fields.package_type,
        description=fields.description or "",
        labels=fields.labels or (),
        allowed_pattern=fields.allowed_pattern or (),
        blocked_pattern=fields.blocked_pattern or (),
    )
    return c.ok(registry_v1(request, registry).to_json(), status=201)


@routes.get(V1 + f"/registry/{REF}/+")
async def get_registry(request: web.Request) -> web.Response:
    registry = await c.registry_from_ref(request, request.match_info["registry_ref"])
    return c.ok(registry_v1(request, registry).to_json())


@routes.put(V1 + f"/registry/{REF}/+")
async def modify_registry(request: web.Request) -> web.Response:
    registry = await c.registry_from_ref(request, request.match_info["registry_ref"])
    data = await c.json_body(request)
    identifier = c.body_str(data, "identifier")
    if identifier is not None and identifier != registry.identifier:
        raise UsageError("a registry cannot be renamed")
    fields = _registry_request(data)
    if fields.package_type is not None and fields.package_type != registry.package_type:
        raise UsageError(f"a registry's package type cannot change (it is {registry.package_type})")
    db = c.state(request).db
    await db.run(
        Catalog.update_registry,
        registry.id,
        description=fields.description,
        labels=fields.labels,
        allowed_pattern=fields.allowed_pattern,
        blocked_pattern=fields.blocked_pattern,
    )
    updated = await db.run(Catalog.get_registry, registry.account, registry.identifier)
    if updated is None:
        raise NotFound(f"registry {registry.identifier!r} not found")
    return c.ok(registry_v1(request, updated).to_json())


@routes.delete(V1 + f"/registry/{REF}/+")
async def delete_registry(request: web.Request) -> web.Response:
    registry = await c.registry_from_ref(request, request.match_info["registry_ref"])
    await c.state(request).db.run(Catalog.delete_registry, registry.id)
    c.forget_registry(request, registry.account, registry.identifier)
    return c.ok()


def _scope_predicate(space: Space, scope: str, recursive: bool) -> Callable[[Space], bool]:
    if recursive or scope == "descendants":
        return space.contains
    if scope == "ancestors":
        return lambda other: other.contains(space)
    return lambda other: other == space


@routes.get(V1 + f"/spaces/{SPACE}/+/registries")
async def list_registries(request: web.Request) -> web.Response:
    space = c.space_from_ref(request, request.match_info["space_ref"])
    query = c.v1_query(request)
    scope = (c.query_str(request, "scope") or "none").lower()
    if scope not in ("none", "ancestors", "descendants"):
        raise UsageError("scope must be none, ancestors or descendants")
    if (c.query_str(request, "type") or "VIRTUAL").upper() == "UPSTREAM":
        return _v1_page([], 0, query, "registries")
    rows, total = await c.state(request).db.run(
        Catalog.list_registries,
        space.account,
        spaces=_scope_predicate(space, scope, c.query_bool(request, "recursive")),
        package_types=c.package_types(c.query_list(request, "package_type")),
        query=query,
    )
    return _v1_page([registry_metadata_v1(request, r) for r in rows], total, query, "registries")


# -------------------------------------------------------------------------------------- artifacts


def _artifact_from_version(v: VersionRow) -> ArtifactV1:
    return ArtifactV1(
        name=v.package_name,
        version=v.name,
        latest_version=v.latest_version,
        registry_identifier=v.registry.identifier,
        registry_path=v.registry.path,
        package_type=v.registry.package_type,
        downloads_count=0,
        last_modified=c.ms_str(v.modified_at),
        labels=[],
    )


def _artifact_from_package(p: PackageRow, *, with_version: bool) -> ArtifactV1:
    return ArtifactV1(
        name=p.name,
        version=p.latest_version if with_version else None,
        latest_version=p.latest_version,
        registry_identifier=p.registry.identifier,
        registry_path=p.registry.path,
        package_type=p.registry.package_type,
        downloads_count=0,
        last_modified=c.ms_str(p.modified_at),
        labels=[],
    )


@routes.get(V1 + f"/spaces/{SPACE}/+/artifacts")
async def list_space_artifacts(request: web.Request) -> web.Response:
    """One row per version (``latest_version=true``: one per package, with its latest version)."""
    space = c.space_from_ref(request, request.match_info["space_ref"])
    query = c.v1_query(request)
    db = c.state(request).db
    wanted = c.query_list(request, "reg_identifier")
    registry_ids: list[int] = []
    for identifier in wanted:
        registry = await db.run(Catalog.get_registry, space.account, identifier)
        if registry is not None:
            registry_ids.append(registry.id)
    if wanted and not registry_ids:
        return _v1_page([], 0, query, "artifacts")
    types = c.package_types(c.query_list(request, "package_type"))
    if c.query_bool(request, "latest_version"):
        packages, total = await db.run(
            Catalog.list_packages,
            space.account,
            spaces=c.related(space),
            registry_ids=registry_ids,
            package_types=types,
            query=query,
        )
        items = [_artifact_from_package(p, with_version=True) for p in packages]
        return _v1_page(items, total, query, "artifacts")
    versions, total = await db.run(
        Catalog.list_versions,
        space.account,
        spaces=c.related(space),
        registry_ids=registry_ids,
        package_types=types,
        query=query,
        search_package_names=True,
    )
    return _v1_page([_artifact_from_version(v) for v in versions], total, query, "artifacts")


@routes.get(V1 + f"/registry/{REF}/+/artifacts")
async def list_registry_artifacts(request: web.Request) -> web.Response:
    registry = await c.registry_from_ref(request, request.match_info["registry_ref"])
    query = c.v1_query(request)
    packages, total = await c.state(request).db.run(
        Catalog.list_packages,
        registry.account,
        spaces=lambda _: True,
        registry_ids=[registry.id],
        query=query,
    )
    return _v1_page(
        [_artifact_from_package(p, with_version=False) for p in packages], total, query, "artifacts"
    )


@routes.delete(V1 + f"/registry/{REF}/+/artifact/{ART}/+")
async def delete_artifact(request: web.Request) -> web.Response:
    registry = await c.registry_from_ref(request, request.match_info["registry_ref"])
    artifact = request.match_info["artifact"]
    if not await c.state(request).db.run(Catalog.delete_package, registry.id, artifact):
        raise NotFound(f"artifact {artifact!r} not found in registry {registry.identifier!r}")
    return c.ok()


# --------------------------------------------------------------------------------------- versions


async def _package_id(request: web.Request, registry: RegistryRow, artifact: str) -> int:
    package_id = await c.state(request).db.run(Catalog.find_package, registry.id, artifact)
    if package_id is None:
        raise NotFound(f"artifact {artifact!r} not found in registry {registry.identifier!r}")
    return package_id


@routes.get(V1 + f"/registry/{REF}/+/artifact/{ART}/+/versions")
async def list_versions(request: web.Request) -> web.Response:
    registry = await c.registry_from_ref(request, request.match_info["registry_ref"])
    package_id = await _package_id(request, registry, request.match_info["artifact"])
    query = c.v1_query(request)
    versions, total = await c.state(request).db.run(
        Catalog.list_versions,
        registry.account,
        spaces=lambda _: True,
        registry_ids=[registry.id],
        package_id=package_id,
        query=query,
    )
    items = [
        ArtifactVersionV1(
            name=v.name,
            registry_identifier=registry.identifier,
            registry_path=registry.path,
            latest_version=v.latest_version,
            package_type=registry.package_type,
            size=format_bytesize(v.size),
            file_count=v.file_count,
            downloads_count=0,
            last_modified=c.ms_str(v.modified_at),
        )
        for v in versions
    ]
    return _v1_page(items, total, query, "artifactVersions")


@routes.delete(V1 + f"/registry/{REF}/+/artifact/{ART}/+/version/{{version}}")
async def delete_version(request: web.Request) -> web.Response:
    registry = await c.registry_from_ref(request, request.match_info["registry_ref"])
    artifact, version = request.match_info["artifact"], request.match_info["version"]
    if not await c.state(request).db.run(Catalog.delete_version, registry.id, artifact, version):
        raise NotFound(f"version {artifact}@{version} not found in registry {registry.identifier!r}")
    return c.ok()


@routes.get(V1 + f"/registry/{REF}/+/artifact/{ART}/+/version/{{version}}/files")
async def list_files(request: web.Request) -> web.Response:
    registry = await c.registry_from_ref(request, request.match_info["registry_ref"])
    artifact, version = request.match_info["artifact"], request.match_info["version"]
    db = c.state(request).db
    found = await db.run(Catalog.find_version, registry.id, artifact, version)
    if found is None:
        raise NotFound(f"version {artifact}@{version} not found in registry {registry.identifier!r}")
    query = c.v1_query(request)
    rows, total = await db.run(
        Catalog.list_files,
        account=registry.account,
        spaces=lambda _: True,
        registry_ids=[registry.id],
        version_id=found[1],
        query=query,
    )
    items = []
    for row, _ in rows:
        url = c.file_url(request, registry, artifact, version, row.path)
        items.append(
            FileDetailV1(
                name=row.path,
                size=format_bytesize(row.size),
                checksums=c.checksum_strings(row),
                download_command=f"curl --location '{url}' --header 'x-api-key: <API_KEY>' -J -O",
                created_at=c.ms_str(row.created_at),
            )
        )
    return _v1_page(items, total, query, "files")


__all__ = ["registry_v1", "routes"]
