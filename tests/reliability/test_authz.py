"""Authorization, walked from the route table: every route of ``create_app(...)`` refuses a missing
key (401), a bad key (401) and another account's key (403), and the other account's attempts
change nothing.

The routes are not listed by hand: the test builds one synthetic request per (method, route) of
the app's router, with every path parameter filled in with the victim's names, the query and body
naming the victim's account, registry, package and version. A route added without auth fails
this test; so does a route with a path parameter the test does not know yet (add a value below,
after checking that the new route compares that account with the key's).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from aiohttp import web
from yarl import URL

from hc.protocol.routes import path_escape
from hc.server.app import create_app
from hc.server.embedded import create_api_key

VICTIM, ATTACKER = "victim", "attacker"

#: A value for every path parameter a route may have, naming the victim's things.
PATH_PARAMS = {
    "account": VICTIM,
    "registry": "reg",
    "registry_ref": path_escape(f"{VICTIM}/reg"),
    "space_ref": VICTIM,
    "artifact": "pkg",
    "version": "1",
    "filepath": "pkg/1/f.txt",
    "upload_id": "0123456789abcdef0123456789abcdef",
}
QUERY = {
    "account_identifier": VICTIM,
    "space_ref": VICTIM,
    "registry_identifier": "reg",
    "src_registry_identifier": "reg",
    "target_registry_identifier": "dst",
    "src_artifact": "pkg",
    "src_version": "1",
    "package": "pkg",
    "version": "1",
}
BODY = {
    "identifier": "stolen",
    "packageType": "GENERIC",
    "parentRef": VICTIM,
    "registryIdentifier": "reg",
    "registry": "reg",
    "package": "pkg",
    "version": "1",
    "path": "g.txt",
    "size": 1,
    "sha256": "0" * 64,
    "packages": "*",
    "metadata": [{"key": "k", "value": "v"}],
}


def _routes(app: web.Application) -> list[tuple[str, Any]]:
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        found.append((route.method, info))
    return found


def _fill(info: dict[str, Any]) -> str:
    if "path" in info:
        return str(info["path"])
    formatter = str(info["formatter"])
    names = re.findall(r"{([^}]+)}", formatter)
    unknown = [name for name in names if name not in PATH_PARAMS]
    assert not unknown, (
        f"route {formatter} has path parameter(s) {unknown} this test does not know: add a value "
        "to PATH_PARAMS (and check the route refuses another account)"
    )
    return formatter.format(**{name: PATH_PARAMS[name] for name in names})


async def _seed(client: Any, victim: str) -> None:
    headers = {"x-api-key": victim}
    for identifier in ("reg", "dst"):
        created = await client.post(
            f"/gateway/har/api/v1/registry?space_ref={VICTIM}",
            json={"identifier": identifier, "packageType": "GENERIC"},
            headers=headers,
        )
        assert created.status == 201, await created.text()
    put = await client.put("/pkg/victim/reg/files/pkg/1/f.txt", data=b"victim's bytes", headers=headers)
    assert put.status == 201, await put.text()
    meta = await client.post(
        "/gateway/har/api/v2/metadata",
        params={"account_identifier": VICTIM},
        json={"registryIdentifier": "reg", "package": "pkg", "metadata": [{"key": "owner", "value": VICTIM}]},
        headers=headers,
    )
    assert meta.status == 200, await meta.text()


async def _victim_state(client: Any, victim: str) -> tuple[bytes, Any, Any]:
    headers = {"x-api-key": victim}
    got = await client.get("/pkg/victim/reg/files/pkg/1/f.txt", headers=headers)
    meta = await client.get(
        "/gateway/har/api/v2/metadata",
        params={"account_identifier": VICTIM, "registry_identifier": "reg", "package": "pkg"},
        headers=headers,
    )
    registries = await client.get(f"/gateway/har/api/v1/spaces/{VICTIM}/+/registries", headers=headers)
    items = (await registries.json())["data"]["registries"]
    return await got.read(), (await meta.json())["data"], sorted(r["identifier"] for r in items)


async def _walk(client: Any, app: web.Application, victim: str, attacker: str) -> tuple[list[str], list[str]]:
    """(routes checked, problems found): one synthetic request per route and kind of key."""
    forged = f"pat.{VICTIM}.{'0' * 24}.not-the-secret"
    checked: list[str] = []
    problems: list[str] = []
    for method, info in _routes(app):
        path = _fill(info)
        url = URL(path, encoded=True).with_query(QUERY)
        data = json.dumps(BODY).encode()
        for label, headers, expected in (
            ("no key", {}, 401),
            ("forged key", {"x-api-key": forged}, 401),
            ("bad bearer", {"Authorization": "Bearer nonsense"}, 401),
            ("another account's key", {"x-api-key": attacker}, 403),
            ("another account's key as Basic", {"Authorization": _basic(attacker)}, 403),
        ):
            response = await client.request(
                method, url, data=data, headers={**headers, "Content-Type": "application/json"}
            )
            if response.status != expected:
                body = "" if method == "HEAD" else (await response.text())[:200]
                problems.append(f"{method} {path} with {label}: {response.status} (want {expected}) {body}")
        checked.append(f"{method} {path}")
    return checked, problems


async def test_every_route_refuses_missing_bad_and_foreign_keys(aiohttp_client: Any, tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    victim = create_api_key(data_dir, VICTIM)
    attacker = create_api_key(data_dir, ATTACKER)
    app = create_app(data_dir=data_dir)
    client = await aiohttp_client(app)
    await _seed(client, victim)
    before = await _victim_state(client, victim)
    checked, problems = await _walk(client, app, victim, attacker)
    assert not problems, "\n".join(problems)
    # every API family is in the walk (a broken walk would check nothing)
    for family in (
        "/gateway/har/api/v1/",
        "/gateway/har/api/v2/",
        "/gateway/har/api/v3/",
        "/pkg/",
        "/ng/api/",
    ):
        assert any(family in line for line in checked), family
    assert len(checked) >= 20, checked
    assert await _victim_state(client, victim) == before  # nothing the others sent changed anything


async def test_the_walk_catches_a_route_that_forgets_the_account(aiohttp_client: Any, tmp_path: Path) -> None:
    """The walk itself: a route that never compares the named account with the key's is reported."""
    data_dir = tmp_path / "store"
    victim = create_api_key(data_dir, VICTIM)
    attacker = create_api_key(data_dir, ATTACKER)
    app = create_app(data_dir=data_dir)

    async def careless(request: web.Request) -> web.Response:
        return web.json_response({"account": request.match_info["account"]})

    app.router.add_get("/pkg/{account}/{registry}/careless", careless)
    client = await aiohttp_client(app)
    await _seed(client, victim)
    _, problems = await _walk(client, app, victim, attacker)
    assert problems and all("/careless" in line for line in problems), problems
    assert any("another account's key: 200" in line for line in problems)


def _basic(token: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"user:{token}".encode()).decode()


async def test_the_key_of_one_account_cannot_see_the_other_accounts_things_in_listings(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """Routes scoped by the key alone (no account named) list only the key's own account."""
    data_dir = tmp_path / "store"
    victim = create_api_key(data_dir, VICTIM)
    attacker = create_api_key(data_dir, ATTACKER)
    client = await aiohttp_client(create_app(data_dir=data_dir))
    await _seed(client, victim)
    headers = {"x-api-key": attacker}
    own = await client.post(
        "/gateway/har/api/v1/registry", json={"identifier": "mine", "packageType": "GENERIC"}, headers=headers
    )
    assert own.status == 201, await own.text()
    for path in ("registries", "packages", "versions", "files"):
        response = await client.get(
            f"/gateway/har/api/v3/{path}", params={"account_identifier": ATTACKER}, headers=headers
        )
        assert response.status == 200, await response.text()
        text = await response.text()
        assert "victim" not in text and '"reg"' not in text and "f.txt" not in text, text
