"""The async client for the registry management API (v1, v2, v3) and the login check.

One method per operation; each builds its path from ``hc.protocol.routes`` (path parameters escaped
like Go's ``url.PathEscape``, query arrays repeating the key), sends what the Go ``hc`` sends, and
returns plain data. Errors arrive as ``hc.errors`` (see ``_http``). GETs and the writes that are
safe to repeat (metadata set/delete) are retried on transient failures; a write that could act
twice (create, delete) is sent once. A success body is read up to ``MAX_JSON_BODY``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from hc.api._http import (
    NO_RETRY,
    RetryPolicy,
    is_loopback_url,
    keep_credentials_home,
    management_headers,
    map_http_errors,
    open_session,
    raise_for_status,
    safe_url,
    with_retries,
)
from hc.api.pagination import NumberedPage, iter_numbered_pages
from hc.errors import ConfigError, NotFound, RemoteError
from hc.protocol.identifiers import validate_registry_identifier
from hc.protocol.metadata import MetadataPair
from hc.protocol.models import MetadataItem, RegistryMetadataV1, RegistryV1
from hc.protocol.routes import ACCOUNT_CHECK, V1Paths, V2Paths, V3Paths, path_escape, space_ref

__all__ = ["Endpoint", "RegistryClient", "RegistryPage", "connect", "untrusted_package_url"]

log = logging.getLogger("hc.api")

#: The login check is quick or broken; the Go CLI gives it 10 s.
_CHECK_TIMEOUT: Final = aiohttp.ClientTimeout(total=10)
#: Management calls are small; a stuck one should not hang a command forever.
_MANAGEMENT_TIMEOUT: Final = aiohttp.ClientTimeout(total=120, sock_connect=30)
#: Page size used when hc walks every page itself (the Go default of 10 would mean many round trips).
LIST_ALL_PAGE_SIZE: Final = 100
#: The largest management (JSON) answer hc reads. The largest legitimate one is a listing page: hc
#: asks for at most 1000 rows, about 1 KiB each with four digests and a download URL, so ~1 MiB; a
#: user's --page-size can ask for more, but a 64x margin covers any page a registry would serve.
#: Beyond it the answer is refused rather than read: a body costs its size in memory, and as much
#: again (several times, as Python objects) once decoded.
MAX_JSON_BODY: Final = 64 * 1024 * 1024
_READ_CHUNK: Final = 256 * 1024

JSONObject = dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """Where and as whom to talk: API base, package base, scope and key (never shown in repr)."""

    api_url: str
    pkg_url: str
    account: str
    token: str = field(repr=False)
    org: str | None = None
    project: str | None = None

    def __post_init__(self) -> None:
        # A user:password@ in a base URL would be sent as a second credential (aiohttp turns it
        # into Basic auth) and shown wherever the URL is; the key is the token.
        for url in (self.api_url, self.pkg_url):
            if "@" in (urlsplit(url).netloc):
                raise ConfigError(
                    f"the registry URL {safe_url(url)} has a user:password@ part; "
                    "remove it (the API key authenticates)"
                )

    @property
    def space_ref(self) -> str:
        return space_ref(self.account, self.org, self.project)

    def registry_ref(self, identifier: str) -> str:
        return space_ref(self.account, self.org, self.project, identifier)


@dataclass(frozen=True)
class RegistryPage:
    """One page of ``GET v1 /spaces/{space}/+/registries``."""

    items: list[RegistryMetadataV1]
    index: int
    count: int
    total: int | None
    size: int | None


class RegistryClient:
    """Registry management operations over one aiohttp session (owned by the caller)."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        endpoint: Endpoint,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._session = session
        self.endpoint = endpoint
        self._retry = retry or RetryPolicy()

    def __repr__(self) -> str:
        return f"RegistryClient({self.endpoint!r})"

    @property
    def session(self) -> aiohttp.ClientSession:
        """The HTTP session (shared with the package-endpoint client of the same command)."""
        return self._session

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retries for requests that are safe to repeat (for sibling clients' own loops)."""
        return self._retry

    def with_endpoint(self, endpoint: Endpoint) -> RegistryClient:
        """A client for another endpoint (a scope, a package URL) on this one's session and retries."""
        return RegistryClient(session=self._session, endpoint=endpoint, retry=self._retry)

    # -- registries (v1) ---------------------------------------------------------------------

    async def list_registries_page(
        self,
        *,
        page: int = 0,
        size: int = 10,
        package_types: Sequence[str] = (),
        search_term: str | None = None,
    ) -> RegistryPage:
        """One page of registries in the endpoint's scope; ``page`` is 0-based as in the Go CLI."""
        params: list[tuple[str, str]] = []
        if size > 0:
            params.append(("size", str(size)))
        if page > 0:
            params.append(("page", str(page)))
        params.extend(("package_type", t) for t in package_types)
        if search_term:
            params.append(("search_term", search_term))
        path = V1Paths.space_registries.format(space_ref=path_escape(self.endpoint.space_ref))
        body = await self._call("GET", path, params=params)
        data = _data_object(body, what="registry list")
        items = data.get("registries") or []
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise RemoteError("unexpected registry list from the server: 'registries' is not a list")
        return RegistryPage(
            items=[RegistryMetadataV1.from_json(item) for item in items],
            index=_as_int(data.get("pageIndex"), default=page),
            count=_as_int(data.get("pageCount"), default=1),
            total=_as_optional_int(data.get("itemCount")),
            size=_as_optional_int(data.get("pageSize")),
        )

    async def iter_registries(
        self,
        *,
        page_size: int = LIST_ALL_PAGE_SIZE,
        package_types: Sequence[str] = (),
        lookahead: int = 8,
    ) -> AsyncIterator[RegistryMetadataV1]:
        """Every registry in scope, pages fetched concurrently (bounded) and yielded in order."""

        async def fetch(index: int) -> NumberedPage[RegistryMetadataV1]:
            page = await self.list_registries_page(page=index, size=page_size, package_types=package_types)
            return NumberedPage(page.items, index=index, count=page.count, total=page.total)

        pages = iter_numbered_pages(fetch, lookahead=lookahead)
        try:
            async for numbered in pages:
                for item in numbered.items:
                    yield item
        finally:
            await pages.aclose()

    async def get_registry(self, identifier: str) -> RegistryV1:
        """The registry with exactly this identifier (``GET v1 /registry/{ref}/+``)."""
        validate_registry_identifier(identifier)
        path = V1Paths.registry.format(registry_ref=path_escape(self.endpoint.registry_ref(identifier)))
        try:
            body = await self._call("GET", path)
        except NotFound as exc:
            raise NotFound(f"registry {identifier!r} not found", status=exc.status) from exc
        return RegistryV1.from_json(_data_object(body, what="registry"))

    async def create_registry(
        self, identifier: str, *, package_type: str, description: str | None = None
    ) -> RegistryV1:
        """Create a local (``VIRTUAL`` in Harness terms) registry in the endpoint's scope."""
        validate_registry_identifier(identifier)
        request: JSONObject = {
            "identifier": identifier,
            "packageType": package_type,
            "config": {"type": "VIRTUAL"},
            "parentRef": self.endpoint.space_ref,
        }
        if description:
            request["description"] = description
        body = await self._call(
            "POST",
            V1Paths.registry_create,
            params=[("space_ref", self.endpoint.space_ref)],
            json_body=request,
            retry=NO_RETRY,
        )
        return RegistryV1.from_json(_data_object(body, what="created registry"))

    async def delete_registry(self, identifier: str) -> None:
        """Delete the registry and everything in it."""
        validate_registry_identifier(identifier)
        path = V1Paths.registry.format(registry_ref=path_escape(self.endpoint.registry_ref(identifier)))
        try:
            await self._call("DELETE", path, retry=NO_RETRY)
        except NotFound as exc:
            raise NotFound(f"registry {identifier!r} not found", status=exc.status) from exc

    # -- metadata (v2) -----------------------------------------------------------------------

    async def get_metadata(
        self,
        *,
        registry: str,
        package: str | None = None,
        version: str | None = None,
        filters: Sequence[MetadataPair] = (),
        artifact_key: Mapping[str, str] | None = None,
    ) -> list[MetadataItem]:
        """Metadata of a registry (or of a package / version in it): ``[{key, value, ...}]``.
        ``artifact_key`` pairs go out as ``filters=k:v`` (as the Go CLI sends them)."""
        filters = [*filters, *(MetadataPair(k, v) for k, v in (artifact_key or {}).items())]
        validate_registry_identifier(registry)
        params = [("account_identifier", self.endpoint.account), ("registry_identifier", registry)]
        if package:
            params.append(("package", package))
        if version:
            params.append(("version", version))
        params.extend(("filters", f"{f.key}:{f.value}") for f in filters)
        body = await self._metadata_call("GET", registry, params=params, package=package)
        return _metadata_list(body)

    async def set_metadata(
        self,
        *,
        registry: str,
        pairs: Sequence[MetadataPair],
        package: str | None = None,
        version: str | None = None,
        artifact_key: Mapping[str, str] | None = None,
    ) -> list[MetadataItem]:
        """Add or overwrite metadata pairs; returns the metadata the server reports afterwards.
        ``artifact_key`` narrows the target to one artifact of a version (``artifactKeyFilters``)."""
        body = await self._metadata_call(
            "POST",
            registry,
            params=[("account_identifier", self.endpoint.account)],
            json_body=_metadata_input(
                registry=registry, pairs=pairs, package=package, version=version, artifact_key=artifact_key
            ),
            package=package,
        )
        return _metadata_list(body) if isinstance(body, dict) and isinstance(body.get("data"), dict) else []

    async def delete_metadata(
        self,
        *,
        registry: str,
        pairs: Sequence[MetadataPair],
        package: str | None = None,
        version: str | None = None,
        artifact_key: Mapping[str, str] | None = None,
    ) -> None:
        """Delete metadata pairs (matched by key and value, as the v2 API does)."""
        await self._metadata_call(
            "DELETE",
            registry,
            params=[("account_identifier", self.endpoint.account)],
            json_body=_metadata_input(
                registry=registry, pairs=pairs, package=package, version=version, artifact_key=artifact_key
            ),
            package=package,
        )

    async def _metadata_call(
        self,
        method: str,
        registry: str,
        *,
        params: list[tuple[str, str]],
        json_body: JSONObject | None = None,
        package: str | None = None,
    ) -> Any:
        validate_registry_identifier(registry)
        try:
            # Every metadata call is retried like a GET, writes included: POST sets the pairs it
            # names (overwriting by key) and DELETE removes them, so sending either again after an
            # answer was lost leaves the registry as one success would; the Go CLI's
            # go-retryablehttp retries them too.
            return await self._call(method, V2Paths.metadata, params=params, json_body=json_body)
        except NotFound as exc:
            if package:  # the package or version may be what is missing: keep the server's word
                raise
            raise NotFound(f"registry {registry!r} not found", status=exc.status) from exc

    # -- system and account ------------------------------------------------------------------

    async def system_info(self) -> JSONObject:
        """``GET v3 /system/info``: the ``data`` object (``registryUrl`` is the package base URL)."""
        params = [("account_identifier", self.endpoint.account)]
        body = await self._call("GET", V3Paths.system_info, params=params)
        return _data_object(body, what="system info")

    async def package_url(self) -> str | None:
        """The package base URL the server advertises, if any. Not one that would take the key
        off TLS (``http://`` advertised by an ``https://`` API, loopback aside) or carries a
        ``user:password@``: the key then stays on the API URL."""
        value = (await self.system_info()).get("registryUrl")
        if not isinstance(value, str) or not value.strip():
            return None
        url = value.strip().rstrip("/")
        refused = untrusted_package_url(self.endpoint.api_url, url)
        if refused:
            log.warning("not using the package URL %s the server advertises: %s", safe_url(url), refused)
            return None
        return url

    async def check_account(self) -> JSONObject:
        """Validate the key: ``GET {api}/ng/api/accounts/{account}`` must answer 200 with JSON."""
        path = ACCOUNT_CHECK.format(account=path_escape(self.endpoint.account))
        # Quick or broken (as the Go CLI's 10 s check): a mistyped URL at login should fail in
        # seconds, not wait out a registry restart.
        quick = replace(self._retry, outage_budget=0.0)
        body = await self._call("GET", path, timeout=_CHECK_TIMEOUT, retry=quick)
        if not isinstance(body, dict):
            raise RemoteError("the account check did not answer with a JSON object")
        return body

    # -- plumbing ----------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        json_body: JSONObject | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """One management request (``path`` already escaped) → decoded JSON; for sibling clients
        in ``hc.api`` (artifacts, files) that share this client's session, key and retries."""
        return await self._call(method, path, params=params, json_body=json_body, retry=retry)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        json_body: JSONObject | None = None,
        retry: RetryPolicy | None = None,
        timeout: aiohttp.ClientTimeout = _MANAGEMENT_TIMEOUT,
    ) -> Any:
        """Send one management request and decode its JSON body (``None`` for an empty body).

        ``retry=None`` means the client's policy (for idempotent requests); pass ``NO_RETRY`` for
        writes. The path is already escaped, so the URL is built with ``encoded=True`` (otherwise
        yarl would turn the ``%2F`` inside a parameter back into ``/``).
        """
        url = URL(self.endpoint.api_url + path, encoded=True)
        if params:
            url = url.extend_query(list(params))
        policy = self._retry if retry is None else retry

        async def once() -> Any:
            started = time.monotonic()
            with map_http_errors(method, str(url)):
                async with self._session.request(
                    method,
                    url,
                    json=json_body,
                    headers=management_headers(self.endpoint.token),
                    timeout=timeout,
                    # A request without a body says nothing about one (the Go CLI's copy POST).
                    skip_auto_headers=() if json_body is not None else ("Content-Type",),
                    middlewares=keep_credentials_home(),
                ) as response:
                    log.debug(
                        "%s %s -> %d in %.0f ms",
                        method,
                        safe_url(url),
                        response.status,
                        (time.monotonic() - started) * 1000,
                    )
                    await raise_for_status(response)
                    raw = await _read_capped(response, method=method, url=url)
            return _decode_json(raw, method=method, url=url)

        return await with_retries(once, policy=policy, what=f"{method} {url.path}")


def untrusted_package_url(api_url: str, package_url: str) -> str | None:
    """Why an advertised package URL must not get the key, or None when it may."""
    api, pkg = urlsplit(api_url), urlsplit(package_url)
    if pkg.scheme not in ("http", "https") or not pkg.hostname:
        return "not an http(s) URL"
    if "@" in pkg.netloc:
        return "it has a user:password@ part"
    if api.scheme == "https" and pkg.scheme == "http" and not is_loopback_url(package_url):
        return "plain http while the API is https (the key would travel unencrypted)"
    return None


@asynccontextmanager
async def connect(
    endpoint: Endpoint,
    *,
    insecure: bool = False,
    ca_bundle: Path | None = None,
    retry: RetryPolicy | None = None,
    connections: int | None = None,
) -> AsyncIterator[RegistryClient]:
    """A client with its own session, closed on exit. Proxy settings are ignored for loopback.

    ``connections`` is how many requests the caller may run at once (a transfer's concurrency):
    the pool is sized above it, with room for listings, so requests never queue for a socket."""
    extra = 0 if connections is None else connections + 8
    async with open_session(
        insecure=insecure,
        ca_bundle=ca_bundle,
        proxy_for=(endpoint.api_url, endpoint.pkg_url),
        limit=max(64, extra),
        limit_per_host=max(32, extra),
    ) as session:
        yield RegistryClient(session=session, endpoint=endpoint, retry=retry)


async def _read_capped(response: aiohttp.ClientResponse, *, method: str, url: URL) -> bytearray:
    """The body, read in chunks up to ``MAX_JSON_BODY``; RemoteError (nothing more is read, the
    connection is dropped) as soon as it is known to be larger."""
    too_big = RemoteError(
        f"{method} {url.with_query(None)}: the answer is larger than {MAX_JSON_BODY >> 20} MiB, "
        "far more than any page; refused"
    )
    if response.content_length is not None and response.content_length > MAX_JSON_BODY:
        raise too_big
    body = bytearray()
    async for chunk in response.content.iter_chunked(_READ_CHUNK):
        body += chunk
        if len(body) > MAX_JSON_BODY:
            raise too_big
    return body


def _decode_json(raw: bytes | bytearray, *, method: str, url: URL) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise RemoteError(f"{method} {url.with_query(None)}: the server did not answer with JSON") from None


def _data_object(body: Any, *, what: str) -> JSONObject:
    """The ``data`` object of a ``{status, data}`` envelope."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise RemoteError(f"unexpected {what} response from the server: no 'data' object")
    return data


def _metadata_list(body: Any) -> list[MetadataItem]:
    data = _data_object(body, what="metadata")
    items = data.get("metadata") or []
    if not isinstance(items, list):
        raise RemoteError("unexpected metadata response from the server: 'metadata' is not a list")
    return [MetadataItem.from_json(item) for item in items if isinstance(item, dict)]


def _metadata_input(
    *,
    registry: str,
    pairs: Sequence[MetadataPair],
    package: str | None,
    version: str | None,
    artifact_key: Mapping[str, str] | None = None,
) -> JSONObject:
    body: JSONObject = {"registryIdentifier": registry, "metadata": [p.to_json() for p in pairs]}
    if package:
        body["package"] = package
    if version:
        body["version"] = version
    if artifact_key:
        body["artifactKeyFilters"] = dict(artifact_key)
    return body


def _as_int(value: object, *, default: int) -> int:
    result = _as_optional_int(value)
    return default if result is None else result


def _as_optional_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None
