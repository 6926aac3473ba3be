"""Helpers the handlers share: query parsing, scopes, registry lookup, JSON bodies, URLs."""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from hc.errors import NotFound, UsageError
from hc.protocol.identifiers import is_utf8_text, split_space_ref, validate_scope_identifier
from hc.protocol.routes import PKG_PREFIX, generic_file_path, path_escape

from ..metadata import Catalog, FileRow, ListQuery, RegistryRow, Space
from ..middlewares import require_account
from ..state import STATE, ServerState

MAX_PAGE_SIZE = 1000


def state(request: web.Request) -> ServerState:
    return request.app[STATE]


def base_url(request: web.Request) -> str:
    """This server as the client reached it (scheme and Host), e.g. ``http://127.0.0.1:3000``."""
    return f"{request.scheme}://{request.host}"


def registry_url(request: web.Request, registry: RegistryRow) -> str:
    return f"{base_url(request)}/pkg/{registry.account}/{registry.identifier}"


#: RAW registries address files by path alone; their files live in this one package and version.
RAW_PACKAGE = "default"
RAW_VERSION = "default"


#: a path that path_escape leaves as it is, segment by segment (quote's always-safe characters,
#: Go's PathEscape extras, and the separator)
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_.~!$&'()*+,;=:@/-]*")


def _escape_path(path: str) -> str:
    """``path_escape`` of each segment, joined by ``/``; a listing page has a thousand of these,
    and most paths need no escaping at all, which a regex says far faster than quote()."""
    if _PLAIN_PATH.fullmatch(path):
        return path
    return "/".join(path_escape(segment) for segment in path.split("/"))


@functools.lru_cache(maxsize=1024)
def _version_files_path(account: str, registry: str, package: str, version: str) -> str:
    """generic_file_path up to the file's own path (it ends with ``/``): the same for every file
    of a listing page, so it is built once, not once a row."""
    return generic_file_path(account, registry, package, version, "")


def file_url(request: web.Request, registry: RegistryRow, package: str, version: str, path: str) -> str:
    """The download URL of a file (``/pkg/{account}/{registry}/files/...``)."""
    return file_urls(request)(registry, package, version, path)


FileUrl = Callable[[RegistryRow, str, str, str], str]


def file_urls(request: web.Request) -> FileUrl:
    """``file_url`` for many files of one request: the server's own URL is worked out once (a
    listing page makes a thousand of these)."""
    base = base_url(request)

    def url(registry: RegistryRow, package: str, version: str, path: str) -> str:
        if registry.package_type == "RAW":
            return f"{base}{PKG_PREFIX}/{registry.account}/{registry.identifier}/files/{_escape_path(path)}"
        return (
            base
            + _version_files_path(registry.account, registry.identifier, package, version)
            + _escape_path(path)
        )

    return url


# ------------------------------------------------------------------------------------ query values


def query_str(request: web.Request, name: str, *, required: bool = False) -> str | None:
    value = request.query.get(name)
    if value is None or value == "":
        if required:
            raise UsageError(f"missing required query parameter {name!r}")
        return None
    return value


def query_list(request: web.Request, name: str) -> list[str]:
    """A repeated (``a=1&a=2``) or comma-separated (``a=1,2``) list parameter."""
    out: list[str] = []
    for raw in request.query.getall(name, []):
        out.extend(part for part in raw.split(",") if part)
    return out


def query_int(request: web.Request, name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"query parameter {name!r} must be an integer, not {raw!r}") from None
    if not minimum <= value <= maximum:
        raise UsageError(f"query parameter {name!r} must be between {minimum} and {maximum}")
    return value


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise UsageError(f"query parameter {name!r} must be true or false, not {raw!r}")


def package_types(values: list[str]) -> list[str]:
    """Package-type filters, upper-cased. An unknown type is not an error (Harness adds types over
    time, and the enum is declared extensible): it simply matches nothing."""
    return [v.upper() for v in values]


def metadata_filters(values: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for raw in values:
        key, sep, value = raw.partition(":")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"malformed metadata filter {raw!r}: expected key:value")
        pairs.append((key.strip(), value.strip()))
    return pairs


_SORT_ALIASES = {
    "name": "name",
    "identifier": "name",
    "createdat": "createdAt",
    "created": "createdAt",
    "modifiedat": "modifiedAt",
    "lastmodified": "modifiedAt",
    "updatedat": "modifiedAt",
    "updated": "modifiedAt",
    "size": "size",
}


def sort_field(raw: str | None) -> str:
    if raw is None or raw == "":
        return "name"
    field = _SORT_ALIASES.get(raw.lower())
    if field is None:
        raise UsageError(f"cannot sort by {raw!r}: use name, createdAt or lastModified")
    return field


def v1_query(request: web.Request) -> ListQuery:
    """v1 paging: 0-based ``page`` (as the Go CLI sends), ``size``, ``sort_field``, ``sort_order``."""
    page = query_int(request, "page", 0, minimum=0, maximum=1_000_000_000)
    size = query_int(request, "size", 20, minimum=1, maximum=MAX_PAGE_SIZE)
    order = (query_str(request, "sort_order") or "ASC").upper()
    if order not in ("ASC", "DESC"):
        raise UsageError("sort_order must be ASC or DESC")
    return ListQuery(
        offset=page * size,
        limit=size,
        search=query_str(request, "search_term"),
        sort=sort_field(query_str(request, "sort_field")),
        descending=order == "DESC",
    )


def v3_query(request: web.Request) -> ListQuery:
    """v3 paging: 0-based ``page``, ``size``, ``sort=field:asc|desc``; asks for one extra row."""
    page = query_int(request, "page", 0, minimum=0, maximum=1_000_000_000)
    size = query_int(request, "size", 20, minimum=1, maximum=MAX_PAGE_SIZE)
    sort = query_str(request, "sort") or "name:asc"
    field, _, direction = sort.partition(":")
    direction = (direction or "asc").lower()
    if direction not in ("asc", "desc"):
        raise UsageError("sort must be field:asc or field:desc")
    return ListQuery(
        offset=page * size,
        limit=size + 1,
        search=query_str(request, "search_term"),
        sort=sort_field(field),
        descending=direction == "desc",
        count_total=False,
    )


def page_count(total: int, size: int) -> int:
    return math.ceil(total / size) if size else 0


# ----------------------------------------------------------------------------------------- scopes


def v3_space(request: web.Request) -> Space:
    """The scope of a v3/v2 request: ``account_identifier`` (required) plus optional org/project."""
    account = query_str(request, "account_identifier", required=True)
    assert account is not None
    validate_scope_identifier(account, kind="account")
    require_account(request, account)
    org = query_str(request, "org_identifier")
    project = query_str(request, "project_identifier")
    if org:
        validate_scope_identifier(org, kind="org")
    if project:
        validate_scope_identifier(project, kind="project")
        if not org:
            raise UsageError("project_identifier needs org_identifier")
    return Space(account, org or "", project or "")


def space_from_ref(request: web.Request, ref: str) -> Space:
    account, org, project = split_space_ref(ref)
    require_account(request, account)
    return Space(account, org or "", project or "")


def related(space: Space) -> Callable[[Space], bool]:
    """Registries listed under a space: those above it (visible from it) and those below it."""
    return lambda other: other.contains(space) or space.contains(other)


async def registry_from_ref(request: web.Request, ref: str, *, stats: bool = False) -> RegistryRow:
    """Resolve ``account[/org[/project]]/registry``. Identifiers are unique per account, so the
    lookup is by account and identifier; the registry must live in the named space, above it (a
    project sees its org's registries) or below it (an account-level ref reaches every registry of
    the account, as the Go client sends when no org/project is configured)."""
    parts = [p for p in ref.strip("/").split("/") if p]
    if len(parts) < 2 or len(parts) > 4:
        raise UsageError(f"invalid registry reference {ref!r}: expected account[/org[/project]]/registry")
    space = space_from_ref(request, "/".join(parts[:-1]))
    registry = await state(request).db.run(Catalog.get_registry, space.account, parts[-1], stats=stats)
    if registry is None or (not registry.space.contains(space) and not space.contains(registry.space)):
        raise NotFound(f"registry {parts[-1]!r} not found")
    return registry


REGISTRY_CACHE_TTL = 2.0


async def cached_registry(request: web.Request, account: str, identifier: str) -> RegistryRow:
    """``registry_by_name`` through a short-lived cache, for the per-file endpoints."""
    st = state(request)
    key = (account, identifier)
    hit = st.registry_cache.get(key)
    now = time.monotonic()
    if hit is not None and hit[1] > now:
        return hit[0]
    registry = await registry_by_name(request, account, identifier)
    if len(st.registry_cache) > 1024:
        st.registry_cache.clear()
    st.registry_cache[key] = (registry, now + REGISTRY_CACHE_TTL)
    return registry


def forget_registry(request: web.Request, account: str, identifier: str) -> None:
    state(request).registry_cache.pop((account, identifier), None)


async def registry_by_name(request: web.Request, account: str, identifier: str) -> RegistryRow:
    registry = await state(request).db.run(Catalog.get_registry, account, identifier)
    if registry is None:
        raise NotFound(f"registry {identifier!r} not found")
    return registry


# -------------------------------------------------------------------------------------- JSON bodies


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise UsageError("the request body must be a JSON object")
    if not _is_unicode_text(data):
        raise UsageError("the request body holds a lone surrogate (\\ud800-\\udfff): not Unicode text")
    return data


def _is_unicode_text(value: Any) -> bool:
    """JSON may escape half of a surrogate pair on its own (``"\\udcff"``): Python then holds a string
    that SQLite (UTF-8) cannot store, which would be a 500 instead of this request's fault (400)."""
    if isinstance(value, str):
        return is_utf8_text(value)
    if isinstance(value, dict):
        return all(_is_unicode_text(k) and _is_unicode_text(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_unicode_text(item) for item in value)
    return True


def body_str(data: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise UsageError(f"missing required field {key!r}")
        return None
    if not isinstance(value, str):
        raise UsageError(f"field {key!r} must be a string")
    return value


def body_str_list(data: dict[str, Any], key: str) -> list[str] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"field {key!r} must be a list of strings")
    return list(value)


def body_bool(data: dict[str, Any], key: str, default: bool = False) -> bool:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise UsageError(f"field {key!r} must be true or false")
    return value


def ms_str(value: int) -> str:
    return str(value)


def checksum_strings(row: FileRow) -> list[str]:
    return [f"SHA-512: {row.sha512}", f"SHA-256: {row.sha256}", f"SHA-1: {row.sha1}", f"MD5: {row.md5}"]


def ok(data: Any = None, *, status: int = 200) -> web.Response:
    body: dict[str, Any] = {"status": "SUCCESS"}
    if data is not None:
        body["data"] = data
    return web.json_response(body, status=status)
