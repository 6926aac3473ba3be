"""Every route needs a key; a key opens its own account only; errors have the documented shapes."""

from __future__ import annotations

import base64
from pathlib import Path

import aiohttp
import pytest

from hc.server.embedded import EmbeddedServer, create_api_key

from .conftest import V1, V2, V3, Api

ROUTES = [
    ("GET", "/ng/api/accounts/local"),
    ("GET", f"{V3}/system/info?account_identifier=local"),
    ("GET", f"{V1}/spaces/local/+/registries"),
    ("GET", f"{V2}/metadata?account_identifier=local&registry_identifier=x"),
    ("GET", f"{V3}/registries?account_identifier=local"),
    ("PUT", "/pkg/local/gen/files/p/1/x"),
    ("GET", "/no/such/route"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "headers", [{}, {"x-api-key": "pat.local.nope.nope"}, {"Authorization": "Bearer junk"}]
)
async def test_missing_or_bad_key_is_401(
    embedded_server: EmbeddedServer, method: str, path: str, headers: dict[str, str]
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, embedded_server.base_url + path, headers=headers, data=b"x") as response,
    ):
        assert response.status == 401
        body = await response.json()
    if path.startswith(V3):
        assert body["error"]["type"] == "AUTHENTICATION_ERROR"
        assert body["error"]["message"]
    else:
        assert body["code"] == "UNAUTHORIZED"
        assert "API key" in body["message"]


def _basic(token: str) -> str:
    return "Basic " + base64.b64encode(f"harness:{token}".encode()).decode()


@pytest.mark.parametrize(
    "make_headers",
    [
        lambda t: {"x-api-key": t},
        lambda t: {"Authorization": t},
        lambda t: {"Authorization": f"Bearer {t}"},
        lambda t: {"Authorization": _basic(t)},
    ],
    ids=["x-api-key", "raw-authorization", "bearer", "basic"],
)
async def test_every_way_of_presenting_the_key_works(embedded_server: EmbeddedServer, make_headers) -> None:  # type: ignore[no-untyped-def]
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            embedded_server.base_url + "/ng/api/accounts/local", headers=make_headers(embedded_server.token)
        ) as response,
    ):
        assert response.status == 200
        body = await response.json()
    assert body == {
        "status": "SUCCESS",
        "data": {"identifier": "local", "name": "local", "accountName": "local"},
    }


async def test_another_accounts_resources_are_403(api: Api, data_dir: Path) -> None:
    await api.create_registry("gen")
    other = create_api_key(data_dir, "other")
    async with aiohttp.ClientSession(headers={"x-api-key": other}) as session:
        for method, path in [
            ("GET", "/ng/api/accounts/local"),
            ("GET", f"{V1}/spaces/local/+/registries"),
            ("GET", f"{V1}/registry/local%2Fgen/+"),
            ("GET", f"{V3}/registries?account_identifier=local"),
            ("GET", f"{V2}/metadata?account_identifier=local&registry_identifier=gen"),
            ("PUT", "/pkg/local/gen/files/p/1/x"),
            ("GET", "/pkg/local/gen/files/p/1/x"),
        ]:
            async with session.request(method, api.url(path), data=b"x") as response:
                assert response.status == 403, (method, path)
        # the other account's own space works, and does not see local's registries
        async with session.get(api.url(f"{V1}/spaces/other/+/registries")) as response:
            assert response.status == 200
            assert (await response.json())["data"]["registries"] == []


async def test_unknown_route_is_a_json_404(api: Api) -> None:
    body = await api.json("GET", "/gateway/har/api/v1/nothing-here", status=404)
    assert body["code"] == "NOT_FOUND"


async def test_system_info_reports_this_servers_url_and_capabilities(api: Api) -> None:
    body = await api.json("GET", f"{V3}/system/info?account_identifier=local")
    assert body["data"]["registryUrl"] == api.base
    assert body["data"]["hc"]["uploadSessions"] is True  # resumable sessions: see test_uploads.py
