"""hc.api under failure, against small real servers on 127.0.0.1: which writes are retried and how
a copy's 409 after a lost answer reads, riding out a registry that is down for a while, the size cap
on JSON answers, keys echoed by a server, and file listings that list a row twice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import hc.api.client as client_module
from hc.api import Endpoint, RegistryClient, RetryPolicy, connect
from hc.api._http import NO_RETRY, ConnectFailed, remember_secret, server_message
from hc.api.artifacts import ArtifactClient
from hc.errors import AuthError, Conflict, RemoteError, TransientError
from hc.protocol.metadata import MetadataPair
from hc.protocol.retry import Backoff, classify
from hc.protocol.routes import V2Paths, V3Paths

TOKEN = "pat.acct.keyid0123456789.ReliabilitySecretTail42"
FAST = RetryPolicy(max_attempts=4, backoff=Backoff(base=0.0, cap=0.0))

Answer = Callable[[web.Request], web.StreamResponse]


@dataclass
class Script:
    """Answers per path, consumed in order (the last one repeats); records every request."""

    answers: dict[str, list[Answer]] = field(default_factory=dict)
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.seen.append((request.method, request.path, dict(request.query)))
        queue = self.answers.get(request.path)
        if not queue:
            return web.json_response({"status": "SUCCESS", "data": {}})
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer(request)

    def count(self, path: str) -> int:
        return sum(1 for _, p, _ in self.seen if p == path)


@pytest.fixture
async def served(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> AsyncIterator[tuple[Script, str]]:
    script = Script()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", script.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    yield script, str(server.make_url("")).rstrip("/")


def _endpoint(base: str) -> Endpoint:
    return Endpoint(api_url=base, pkg_url=base, account="acct", token=TOKEN)


def _status(status: int, message: str = "no", headers: dict[str, str] | None = None) -> Answer:
    return lambda _r: web.json_response(
        {"code": str(status), "message": message}, status=status, headers=headers
    )


def _ok(data: dict[str, Any] | None = None) -> Answer:
    return lambda _r: web.json_response({"status": "SUCCESS", "data": data or {}})


async def _copy(client: RegistryClient) -> None:
    await ArtifactClient(client).copy_version(
        src_registry="src", package="pkg", version="1", dest_registry="dst"
    )


# -- the retry policy (pure) ----------------------------------------------------------------------


# The policy's table (outages, budgets, attempts) is tested once, in tests/unit/test_pacer.py: the
# management requests use the same hc.protocol.retry rule. Here: what is special to them.


def test_management_errors_classify_as_the_engine_expects() -> None:
    for below_http in (ConnectFailed("cannot connect"), TransientError("connection reset")):
        assert classify(below_http).outage
    for status in (502, 503, 504):  # a gateway with no registry behind it
        assert classify(TransientError("gateway", status=status)).outage
    assert not classify(TransientError("oops", status=500)).outage
    # NO_RETRY must not retry even a refused connection
    assert NO_RETRY.gives_up(1, classify(ConnectFailed("x")), 0.0)


def test_the_default_rides_out_more_than_the_go_cli() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts >= 5  # go-retryablehttp: 1 try + 4 retries
    assert policy.outage_budget >= 15.0  # go-retryablehttp: 1+2+4+8 s


async def test_a_registry_down_for_a_while_is_ridden_out(unused_tcp_port: int) -> None:
    """Nothing listens on the port for the first half second (a restart), then a registry does:
    the listing call keeps reconnecting (past its two attempts) and succeeds."""

    async def registries(_request: web.Request) -> web.Response:
        return web.json_response({"status": "SUCCESS", "data": {"registries": [{"identifier": "r1"}]}})

    app = web.Application()
    app.router.add_get("/{tail:.*}", registries)
    runner = web.AppRunner(app)
    await runner.setup()

    async def start_later() -> None:
        await asyncio.sleep(0.5)
        await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()

    policy = RetryPolicy(max_attempts=2, backoff=Backoff(base=0.05, cap=0.1), outage_budget=20.0)
    starter = asyncio.ensure_future(start_later())
    try:
        async with connect(_endpoint(f"http://127.0.0.1:{unused_tcp_port}"), retry=policy) as client:
            page = await client.list_registries_page()
        assert [r.identifier for r in page.items] == ["r1"]
    finally:
        await starter
        await runner.cleanup()


# -- metadata writes --------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [503, 502, 500])
async def test_a_metadata_write_is_retried(served: tuple[Script, str], failure: int) -> None:
    script, base = served
    answer = {"metadata": [{"key": "team", "value": "core"}]}
    script.answers[V2Paths.metadata] = [_status(failure), _status(failure), _ok(answer)]
    async with connect(_endpoint(base), retry=FAST) as client:
        items = await client.set_metadata(registry="gen", pairs=[MetadataPair("team", "core")], package="pkg")
        assert [(m.key, m.value) for m in items] == [("team", "core")]
        script.answers[V2Paths.metadata] = [_status(failure), _ok()]
        await client.delete_metadata(registry="gen", pairs=[MetadataPair("team", "core")], package="pkg")
    assert script.count(V2Paths.metadata) == 5


# -- copy --------------------------------------------------------------------------------------------


async def test_a_copy_refused_before_the_server_acted_is_retried(served: tuple[Script, str]) -> None:
    script, base = served
    script.answers[V2Paths.copy] = [
        _status(503),
        _status(429, headers={"Retry-After": "0"}),
        _ok(),
    ]
    async with connect(_endpoint(base), retry=FAST) as client:
        await _copy(client)
    assert script.count(V2Paths.copy) == 3


async def test_a_conflict_after_a_lost_copy_answer_says_the_copy_may_be_done(
    served: tuple[Script, str],
) -> None:
    script, base = served
    script.answers[V2Paths.copy] = [_status(502, "bad gateway"), _status(409, "version exists")]
    async with connect(_endpoint(base), retry=FAST) as client:
        with pytest.raises(Conflict) as caught:
            await _copy(client)
    text = str(caught.value)
    assert "version exists" in text and "may have copied pkg/1 already" in text and "HTTP 502" in text
    assert "\n" not in text


async def test_a_conflict_after_a_refusal_is_a_plain_conflict(served: tuple[Script, str]) -> None:
    script, base = served
    script.answers[V2Paths.copy] = [_status(503, "busy"), _status(409, "version exists")]
    async with connect(_endpoint(base), retry=FAST) as client:
        with pytest.raises(Conflict) as caught:
            await _copy(client)
    assert "version exists" in str(caught.value) and "may have copied" not in str(caught.value)


async def test_a_copy_refused_for_good_is_not_retried(served: tuple[Script, str]) -> None:
    script, base = served
    script.answers[V2Paths.copy] = [_status(400, "different package types")]
    async with connect(_endpoint(base), retry=FAST) as client:
        with pytest.raises(RemoteError, match="different package types"):
            await _copy(client)
    assert script.count(V2Paths.copy) == 1


# -- the size of a JSON answer ----------------------------------------------------------------------


def _big(size: int, *, chunked: bool) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def answer(request: web.Request) -> web.StreamResponse:
        body = json.dumps({"status": "SUCCESS", "data": {"registries": [], "pad": "x" * size}}).encode()
        if not chunked:
            return web.Response(body=body, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), 1000):
            await response.write(body[start : start + 1000])
        await response.write_eof()
        return response

    return answer


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_json_answer_over_the_cap_is_refused(
    aiohttp_server: Callable[..., Awaitable[TestServer]], monkeypatch: pytest.MonkeyPatch, chunked: bool
) -> None:
    monkeypatch.setattr(client_module, "MAX_JSON_BODY", 10_000)
    app = web.Application()
    app.router.add_get("/gateway/har/api/v1/spaces/{tail:.*}", _big(20_000, chunked=chunked))
    app.router.add_get("/gateway/har/api/v1/registry/{tail:.*}", _big(5_000, chunked=chunked))
    server = await aiohttp_server(app, host="127.0.0.1")
    async with connect(_endpoint(str(server.make_url("")).rstrip("/")), retry=FAST) as client:
        with pytest.raises(RemoteError, match="larger than") as caught:
            await client.list_registries_page()
        assert "\n" not in str(caught.value)
        # an answer under the cap is read as usual
        registry_body = await client.request("GET", "/gateway/har/api/v1/registry/x")
    assert len(registry_body["data"]["pad"]) == 5_000


# -- keys echoed by a server --------------------------------------------------------------------------


async def test_a_key_echoed_in_an_error_is_blanked(served: tuple[Script, str]) -> None:
    script, base = served
    tail = TOKEN.rsplit(".", 1)[-1]
    path = "/gateway/har/api/v1/spaces/acct/+/registries"
    for message in (f"invalid key {TOKEN}", f"bad secret {tail}!", "x" * 280 + TOKEN):
        script.answers[path] = [_status(401, message)]
        async with connect(_endpoint(base), retry=FAST) as client:
            with pytest.raises(AuthError) as caught:
                await client.list_registries_page()
        text = str(caught.value)
        assert TOKEN not in text and tail[:8] not in text, text


def test_server_message_blanks_every_remembered_credential() -> None:
    jwt = "CIManager eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjaSJ9.SignaturePartOfTheJwt0123"
    remember_secret(jwt)
    message = server_message(
        json.dumps({"message": f"token {jwt} / {jwt.split(' ', 1)[1]} refused"}).encode()
    )
    assert message is not None and "eyJ" not in message and "SignaturePart" not in message, message
    assert server_message(b'{"message": "an ordinary message"}') == "an ordinary message"


# -- file listings ------------------------------------------------------------------------------------


def _file(path: str) -> dict[str, Any]:
    return {"id": path, "path": path, "size": "1", "sha256": "0" * 64}


async def test_a_row_listed_again_on_a_later_page_is_yielded_once(served: tuple[Script, str]) -> None:
    """Offset paging while files are added: the end of page 0 shows up again on page 1."""
    script, base = served

    def files(request: web.Request) -> web.StreamResponse:
        page = int(request.query.get("page", "0"))
        pages = [
            {"items": [_file("/a"), _file("/b"), _file("/c")], "hasMore": True},
            {"items": [_file("/b"), _file("/c"), _file("/d")], "hasMore": True},
            {"items": [_file("/e")], "hasMore": False},
        ]
        return web.json_response(pages[page] if page < len(pages) else {"items": [], "hasMore": False})

    script.answers[V3Paths.files] = [files]
    async with connect(_endpoint(base), retry=FAST) as client:
        listed = [
            f.path
            async for f in ArtifactClient(client).iter_files(registry_id="r", version_id="v", page_size=3)
        ]
    assert listed == ["/a", "/b", "/c", "/d", "/e"]
