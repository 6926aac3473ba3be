"""hc.api against a small real aiohttp server on 127.0.0.1 that records what it receives.

The server scripts answers per request, so these tests pin the wire format (paths, escaping, query
arrays, headers, bodies) and the error mapping (statuses, bodies, Retry-After, retries).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hc.api import USER_AGENT, Endpoint, RegistryClient, RetryPolicy, connect
from hc.api._http import parse_retry_after, pkg_headers, server_message
from hc.errors import (
    AuthError,
    ConfigError,
    Conflict,
    ExitCode,
    HcError,
    NotFound,
    PermissionDenied,
    RateLimited,
    RemoteError,
    TransientError,
    UsageError,
)
from hc.protocol.metadata import MetadataPair
from hc.protocol.retry import Backoff

TOKEN = "pat.acct1.keyid.s3cr3t"
FAST = RetryPolicy(max_attempts=4, backoff=Backoff(base=0.0, cap=0.0))

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    method: str
    raw_path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Recorder:
    seen: list[Seen] = field(default_factory=list)
    # answers consumed in order; when empty, `default` answers
    script: list[web.Response] = field(default_factory=list)
    default: Handler | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.seen.append(
            Seen(
                method=request.method,
                raw_path=request.raw_path.split("?")[0],
                query=list(request.query.items()),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=json.loads(raw) if raw else None,
            )
        )
        if self.script:
            return self.script.pop(0)
        if self.default is not None:
            return await self.default(request)
        return web.json_response({"status": "SUCCESS", "data": {}})


@pytest.fixture
async def recorder(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> AsyncIterator[tuple[Recorder, str]]:
    rec = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    yield rec, str(server.make_url("")).rstrip("/")


def _endpoint(base: str, **kw: Any) -> Endpoint:
    return Endpoint(api_url=base, pkg_url=base, account="acct1", token=TOKEN, **kw)


def _envelope(data: dict[str, Any]) -> web.Response:
    return web.json_response({"status": "SUCCESS", "data": data})


async def test_list_page_sends_the_go_request(recorder: tuple[Recorder, str]) -> None:
    rec, base = recorder
    rec.script.append(
        _envelope({"registries": [{"identifier": "r1"}], "pageCount": 3, "pageIndex": 2, "itemCount": 21})
    )
    async with connect(_endpoint(base, org="org1", project="proj1")) as client:
        page = await client.list_registries_page(page=2, size=10, package_types=["GENERIC", "NPM"])
    assert (page.index, page.count, page.total) == (2, 3, 21)
    assert [item.identifier for item in page.items] == ["r1"]
    (seen,) = rec.seen
    assert seen.method == "GET"
    # the whole scope is one path parameter: '/' inside it is sent as %2F
    assert seen.raw_path == "/gateway/har/api/v1/spaces/acct1%2Forg1%2Fproj1/+/registries"
    assert seen.query == [("size", "10"), ("page", "2"), ("package_type", "GENERIC"), ("package_type", "NPM")]
    assert seen.headers["x-api-key"] == TOKEN
    assert seen.headers["user-agent"] == USER_AGENT == "hc/0.1.0 (python)"
    assert "authorization" not in seen.headers


async def test_first_page_omits_page_param_like_go(recorder: tuple[Recorder, str]) -> None:
    rec, base = recorder
    rec.script.append(_envelope({"registries": [], "pageCount": 0}))
    async with connect(_endpoint(base)) as client:
        await client.list_registries_page(page=0, size=10)
    assert rec.seen[0].query == [("size", "10")]
    assert rec.seen[0].raw_path == "/gateway/har/api/v1/spaces/acct1/+/registries"


async def test_iter_registries_walks_every_page_in_order(recorder: tuple[Recorder, str]) -> None:
    rec, base = recorder
    names = [f"r{i:03d}" for i in range(47)]

    async def pages(request: web.Request) -> web.Response:
        size = int(request.query["size"])
        index = int(request.query.get("page", "0"))
        chunk = names[index * size : (index + 1) * size]
        return _envelope(
            {
                "registries": [{"identifier": n} for n in chunk],
                "pageIndex": index,
                "pageCount": (len(names) + size - 1) // size,
                "itemCount": len(names),
            }
        )

    rec.default = pages
    async with connect(_endpoint(base)) as client:
        got = [item.identifier async for item in client.iter_registries(page_size=5, lookahead=3)]
    assert got == names
    assert sorted(int(dict(s.query).get("page", "0")) for s in rec.seen) == list(range(10))


async def test_get_create_delete_registry(recorder: tuple[Recorder, str]) -> None:
    rec, base = recorder
    registry = {"identifier": "r1", "packageType": "GENERIC", "config": {"type": "VIRTUAL"}, "url": "u"}
    rec.script += [
        _envelope(registry),
        web.json_response({"status": "SUCCESS", "data": registry}, status=201),
    ]
    rec.script.append(web.json_response({"status": "SUCCESS"}))
    async with connect(_endpoint(base, org="o")) as client:
        assert (await client.get_registry("r1")).to_json() == registry
        created = await client.create_registry("r1", package_type="GENERIC", description="d")
        assert created.to_json() == registry
        await client.delete_registry("r1")
    get, create, delete = rec.seen
    assert (get.method, get.raw_path) == ("GET", "/gateway/har/api/v1/registry/acct1%2Fo%2Fr1/+")
    assert (create.method, create.raw_path, create.query) == (
        "POST",
        "/gateway/har/api/v1/registry",
        [("space_ref", "acct1/o")],
    )
    assert create.body == {
        "identifier": "r1",
        "packageType": "GENERIC",
        "description": "d",
        "config": {"type": "VIRTUAL"},
        "parentRef": "acct1/o",
    }
    assert (delete.method, delete.raw_path) == ("DELETE", "/gateway/har/api/v1/registry/acct1%2Fo%2Fr1/+")


async def test_unknown_registry_is_a_named_not_found(recorder: tuple[Recorder, str]) -> None:
    rec, base = recorder
    rec.default = _respond(404, {"code": "404", "message": "registry doesn't exist"})
    async with connect(_endpoint(base)) as client:
        with pytest.raises(NotFound) as info:
            await client.get_registry("nope")
        assert str(info.value) == "registry 'nope' not found"
        assert info.value.exit_code == ExitCode.FAILED
        with pytest.raises(NotFound, match="registry 'nope' not found"):
            await client.delete_registry("nope")
    assert len(rec.seen) == 2  # a 404 is not retried


async def test_bad_identifier_is_refused_before_any_request(recorder: tuple[Recorder, str]) -> None:
    rec, base = recorder
    async with connect(_endpoint(base)) as client:
        for bad in ("", "Upper", "a/b", "1abc", "x" * 200, "a b"):
            with pytest.raises(UsageError, match="invalid registry identifier"):
                await client.get_registry(bad)
    assert rec.seen == []


async def test_metadata_calls(recorder: tuple[Recorder, str]) -> None:
    rec, base = recorder
    items = [{"id": 1, "key": "team", "value": "core", "type": "MANUAL"}]
    rec.script += [_envelope({"metadata": items}), _envelope({"metadata": items}), web.json_response({})]
    pairs = [MetadataPair("team", "core"), MetadataPair("tier", "gold")]
    async with connect(_endpoint(base)) as client:
        got = await client.get_metadata(registry="r1", filters=[MetadataPair("os", "linux")])
        assert [item.to_json() for item in got] == items
        assert [item.to_json() for item in await client.set_metadata(registry="r1", pairs=pairs)] == items
        await client.delete_metadata(registry="r1", pairs=pairs[:1], package="p", version="1.0")
    get, post, delete = rec.seen
    assert (get.method, get.raw_path) == ("GET", "/gateway/har/api/v2/metadata")
    assert get.query == [
        ("account_identifier", "acct1"),
        ("registry_identifier", "r1"),
        ("filters", "os:linux"),
    ]
    assert (post.method, post.query) == ("POST", [("account_identifier", "acct1")])
    assert post.body == {
        "registryIdentifier": "r1",
        "metadata": [{"key": "team", "value": "core"}, {"key": "tier", "value": "gold"}],
    }
    assert delete.method == "DELETE"
    assert delete.body == {
        "registryIdentifier": "r1",
        "metadata": [{"key": "team", "value": "core"}],
        "package": "p",
        "version": "1.0",
    }


async def test_system_info_and_account_check(recorder: tuple[Recorder, str]) -> None:
    rec, base = recorder
    rec.script += [
        web.json_response({"accountIdentifier": "acct1"}),
        _envelope({"registryUrl": "https://pkg.example/"}),
    ]
    async with connect(_endpoint(base)) as client:
        assert await client.check_account() == {"accountIdentifier": "acct1"}
        assert await client.package_url() == "https://pkg.example"
    check, info = rec.seen
    assert check.raw_path == "/ng/api/accounts/acct1"
    assert check.headers["x-api-key"] == TOKEN
    assert (info.raw_path, info.query) == (
        "/gateway/har/api/v3/system/info",
        [("account_identifier", "acct1")],
    )


def _respond(status: int, body: object, headers: dict[str, str] | None = None) -> Handler:
    async def handler(_: web.Request) -> web.Response:
        if isinstance(body, str):
            return web.Response(status=status, text=body, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    return handler


@pytest.mark.parametrize(
    ("status", "body", "error", "message", "exit_code"),
    [
        (401, {"code": "401", "message": "Invalid API key"}, AuthError, "Invalid API key", ExitCode.AUTH),
        (401, "", AuthError, "the server refused the key", ExitCode.AUTH),
        (
            403,
            {"error": {"type": "PERMISSION_ERROR", "message": "no access"}},
            PermissionDenied,
            "no access",
            3,
        ),
        (409, {"code": "409", "message": "already exists"}, Conflict, "already exists", ExitCode.FAILED),
        (400, {"code": "400", "message": "bad package type"}, RemoteError, "bad package type", 1),
        (501, {"message": "not implemented"}, RemoteError, "not implemented", ExitCode.FAILED),
        (422, "plain text reason\nsecond line", RemoteError, "plain text reason", ExitCode.FAILED),
        (400, "<html><body>proxy</body></html>", RemoteError, "HTTP 400", ExitCode.FAILED),
    ],
)
async def test_status_mapping(
    recorder: tuple[Recorder, str],
    status: int,
    body: object,
    error: type[HcError],
    message: str,
    exit_code: int,
) -> None:
    rec, base = recorder
    rec.default = _respond(status, body)
    async with connect(_endpoint(base), retry=FAST) as client:
        with pytest.raises(error) as info:
            await client.list_registries_page()
    text = str(info.value)
    assert message in text and "\n" not in text and TOKEN not in text
    assert info.value.exit_code == exit_code
    assert len(rec.seen) == 1  # refusals are not retried


async def test_transient_failures_are_retried_then_succeed(recorder: tuple[Recorder, str]) -> None:
    rec, base = recorder
    rec.script += [
        web.json_response({"message": "busy"}, status=503),
        web.json_response({"message": "slow down"}, status=429, headers={"Retry-After": "0"}),
        web.json_response({"message": "oops"}, status=500),
        _envelope({"registries": [{"identifier": "r1"}], "pageCount": 1}),
    ]
    async with connect(_endpoint(base), retry=FAST) as client:
        page = await client.list_registries_page()
    assert [item.identifier for item in page.items] == ["r1"]
    assert len(rec.seen) == 4


async def test_retries_run_out_with_a_transient_error(recorder: tuple[Recorder, str]) -> None:
    rec, base = recorder
    rec.default = _respond(502, {"message": "bad gateway"})
    async with connect(_endpoint(base), retry=FAST) as client:
        with pytest.raises(TransientError, match="HTTP 502"):
            await client.list_registries_page()
    assert len(rec.seen) == 4  # 1 try + 3 retries


async def test_writes_are_not_retried(recorder: tuple[Recorder, str]) -> None:
    rec, base = recorder
    rec.default = _respond(503, {"message": "busy"})
    async with connect(_endpoint(base), retry=FAST) as client:
        with pytest.raises(TransientError):
            await client.create_registry("r1", package_type="GENERIC")
    assert len(rec.seen) == 1


async def test_long_retry_after_is_not_waited_for(recorder: tuple[Recorder, str]) -> None:
    rec, base = recorder
    rec.default = _respond(429, {"message": "later"}, headers={"Retry-After": "3600"})
    async with connect(_endpoint(base), retry=FAST) as client:
        with pytest.raises(RateLimited) as info:
            await client.list_registries_page()
    assert info.value.retry_after == 3600
    assert len(rec.seen) == 1


async def test_non_json_success_is_a_remote_error(recorder: tuple[Recorder, str]) -> None:
    rec, base = recorder
    rec.default = _respond(200, "<html>login page</html>")
    async with connect(_endpoint(base), retry=FAST) as client:
        with pytest.raises(RemoteError, match="did not answer with JSON"):
            await client.list_registries_page()


async def test_connection_refused_is_transient(unused_tcp_port: int) -> None:
    endpoint = _endpoint(f"http://127.0.0.1:{unused_tcp_port}")
    async with connect(endpoint, retry=RetryPolicy(max_attempts=2, backoff=Backoff(base=0.0))) as client:
        with pytest.raises(TransientError, match=f"cannot connect to 127.0.0.1:{unused_tcp_port}"):
            await client.list_registries_page()


async def test_tls_failure_against_plain_http_is_reported(recorder: tuple[Recorder, str]) -> None:
    _, base = recorder
    endpoint = _endpoint(base.replace("http://", "https://"))
    async with connect(endpoint, retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises((RemoteError, TransientError, ConfigError)) as info:
            await client.list_registries_page()
    assert TOKEN not in str(info.value)


def test_repr_hides_the_token() -> None:
    endpoint = _endpoint("http://127.0.0.1:1")
    assert TOKEN not in repr(endpoint)
    assert TOKEN not in repr(RegistryClient(session=None, endpoint=endpoint))  # type: ignore[arg-type]


def test_pkg_headers_follow_the_go_cli() -> None:
    assert pkg_headers(TOKEN) == {"x-api-key": TOKEN}
    assert pkg_headers("CIManager eyJhbGciOi") == {"Authorization": "CIManager eyJhbGciOi"}


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("120", 120.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),
        ("Wed, 21 Oct 2015 07:26:00 GMT", 0.0),  # in the past: now
        ("soon", None),
    ],
)
def test_parse_retry_after(value: str, seconds: float | None) -> None:
    now = 1445412420.0  # Wed, 21 Oct 2015 07:27:00 GMT
    assert parse_retry_after(value, now=now) == seconds


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"code":"400","message":"bad"}', "bad"),
        (b'{"error":{"type":"API_ERROR","message":"v3 bad"}}', "v3 bad"),
        (b'{"error":"plain"}', "plain"),
        (b'{"status":"FAILURE"}', None),
        (b"", None),
        (b'{"message":"evil\\u001b[2Jclear"}', "evil [2Jclear"),
    ],
)
def test_server_message(body: bytes, message: str | None) -> None:
    assert server_message(body) == message
