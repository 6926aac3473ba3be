"""``hc.api.artifacts``: the requests the artifact commands send (as the Go CLI) and how answers
are read, against a recording server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hc.api import Endpoint, RegistryClient
from hc.api._http import NO_RETRY
from hc.api.artifacts import ArtifactClient
from hc.errors import NotFound, RemoteError

TOKEN = "pat.acct.key.secret"


@dataclass
class Seen:
    method: str
    raw_path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Script:
    """Answers by path with JSON documents (a list of answers is served in turn)."""

    answers: dict[str, Any] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            Seen(request.method, request.raw_path, list(request.query.items()), dict(request.headers), body)
        )
        answer = self.answers.get(request.path, {"status": "SUCCESS"})
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        if isinstance(answer, web.StreamResponse):
            return answer
        if callable(answer):
            return web.json_response(answer(request))
        return web.json_response(answer)


@pytest.fixture
async def served(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> AsyncIterator[tuple[Script, ArtifactClient]]:
    script = Script()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", script.handle)
    server = await aiohttp_server(app)
    url = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        endpoint = Endpoint(api_url=url, pkg_url=url, account="acct", token=TOKEN, org="o1", project="p1")
        yield script, ArtifactClient(RegistryClient(session=session, endpoint=endpoint, retry=NO_RETRY))


V1 = "/gateway/har/api/v1"
V2 = "/gateway/har/api/v2"
V3 = "/gateway/har/api/v3"


def _v1(
    key: str, items: list[dict[str, Any]], *, index: int = 0, count: int = 1, total: int = 0
) -> dict[str, Any]:
    data = {key: items, "pageIndex": index, "pageCount": count, "itemCount": total, "pageSize": 10}
    return {"status": "SUCCESS", "data": data}


async def test_artifact_pages_send_the_go_query(served: tuple[Script, ArtifactClient]) -> None:
    script, client = served
    path = f"{V1}/spaces/acct/o1/p1/+/artifacts"
    script.answers[path] = _v1("artifacts", [{"name": "a", "version": "1"}], total=1)
    page = await client.list_artifacts_page(registries=["gen"], search_term="a b", page=0, size=10)
    assert [a.name for a in page.items] == ["a"] and page.total == 1
    seen = script.seen[-1]
    assert seen.raw_path.startswith(f"{V1}/spaces/acct%2Fo1%2Fp1/+/artifacts?")
    assert seen.query == [("reg_identifier", "gen"), ("size", "10"), ("search_term", "a b")]
    assert seen.headers["x-api-key"] == TOKEN
    await client.list_artifacts_page(page=2, size=5)
    assert script.seen[-1].query == [("size", "5"), ("page", "2")]


async def test_every_page_is_fetched_and_yielded_in_order(served: tuple[Script, ArtifactClient]) -> None:
    script, client = served

    def answer(request: web.Request) -> dict[str, Any]:
        index = int(request.query.get("page", "0"))
        return _v1("artifacts", [{"name": f"a{index}-{i}"} for i in range(2)], index=index, count=3, total=6)

    script.answers[f"{V1}/spaces/acct/o1/p1/+/artifacts"] = answer
    names = [a.name async for a in client.iter_artifacts(page_size=2)]
    assert names == ["a0-0", "a0-1", "a1-0", "a1-1", "a2-0", "a2-1"]


async def test_versions_path_escapes_the_package(served: tuple[Script, ArtifactClient]) -> None:
    script, client = served
    script.answers[f"{V1}/registry/acct/o1/p1/gen/+/artifact/@scope/name/+/versions"] = _v1(
        "artifactVersions", [{"name": "1.0", "size": "1.00KB", "fileCount": 2}]
    )
    page = await client.list_versions_page("gen", "@scope/name")
    assert [(v.name, v.file_count) for v in page.items] == [("1.0", 2)]
    assert script.seen[-1].raw_path.startswith(
        f"{V1}/registry/acct%2Fo1%2Fp1%2Fgen/+/artifact/@scope%2Fname/+/versions"
    )


async def test_v3_lookups_pick_the_exact_name_across_pages(served: tuple[Script, ArtifactClient]) -> None:
    script, client = served
    script.answers[f"{V3}/registries"] = [
        {"page": 0, "size": 100, "hasMore": True, "items": [{"id": "u1", "name": "gen-old"}]},
        {"page": 1, "size": 100, "hasMore": False, "items": [{"id": "u2", "name": "gen"}]},
    ]
    found = await client.find_registry("gen")
    assert found is not None and found.id == "u2"
    first, second = script.seen[-2:]
    assert first.query == [
        ("account_identifier", "acct"),
        ("org_identifier", "o1"),
        ("project_identifier", "p1"),
        ("search_term", "gen"),
        ("scope", "ancestors"),
        ("page", "0"),
        ("size", "100"),
    ]
    assert dict(second.query)["page"] == "1"

    script.answers[f"{V3}/versions"] = {
        "hasMore": False,
        "items": [
            {"id": "v9", "name": "1.0", "packageId": "other"},
            {"id": "v1", "name": "1.0.1", "packageId": "pk"},
            {"id": "v2", "name": "1.0", "packageId": "pk"},
        ],
    }
    version = await client.find_version("u2", "pk", "1.0")
    assert version is not None and version.id == "v2"
    assert await client.find_version("u2", "pk", "9") is None


async def test_an_empty_page_ends_a_listing_whatever_has_more_says(
    served: tuple[Script, ArtifactClient],
) -> None:
    script, client = served
    script.answers[f"{V3}/files"] = {"hasMore": True, "items": []}
    assert [f async for f in client.iter_files(registry_id="r", version_id="v")] == []
    assert len(script.seen) == 1


async def test_bulk_delete_sends_the_go_body(served: tuple[Script, ArtifactClient]) -> None:
    script, client = served
    script.answers[f"{V3}/bulkdelete"] = {
        "dryRun": True,
        "force": False,
        "registry": "gen",
        "pattern": "app*",
        "versionPattern": "",
        "total": "3",
        "success": 3,
        "failed": 0,
        "successPackages": ["app", "app2", "app3"],
        "failedPackages": None,
        "message": "3 match",
    }
    result = await client.bulk_delete(registry="gen", packages="app*", dry_run=True)
    assert (result.total, result.success, result.failed) == (3, 3, 0)
    assert list(result.success_packages) == ["app", "app2", "app3"] and list(result.failed_packages) == []
    seen = script.seen[-1]
    assert seen.method == "POST"
    assert seen.query == [
        ("account_identifier", "acct"),
        ("org_identifier", "o1"),
        ("project_identifier", "p1"),
    ]
    assert json.loads(seen.body) == {
        "dryRun": True,
        "force": False,
        "packages": "app*",
        "registry": "gen",
        "versions": "",
    }


async def test_copy_is_query_only(served: tuple[Script, ArtifactClient]) -> None:
    script, client = served
    await client.copy_version(
        src_registry="a",
        package="@s/n",
        version="1",
        dest_registry="b",
        artifact_type="model",
        artifact_key={"arch": "amd64"},
    )
    seen = script.seen[-1]
    assert (seen.method, seen.body) == ("POST", b"")
    assert "Content-Type" not in seen.headers
    assert seen.query == [
        ("account_identifier", "acct"),
        ("src_registry_identifier", "a"),
        ("target_registry_identifier", "b"),
        ("src_artifact", "@s/n"),
        ("src_version", "1"),
        ("artifact_type", "model"),
        ("filters", "arch:amd64"),
    ]
    script.answers[f"{V2}/copy"] = {"status": "FAILURE"}
    with pytest.raises(RemoteError, match="could not copy"):
        await client.copy_version(src_registry="a", package="p", version="1", dest_registry="b")
    script.answers[f"{V2}/copy"] = web.json_response(
        {"code": "NOT_FOUND", "message": "no version"}, status=404
    )
    with pytest.raises(NotFound, match="no version"):
        await client.copy_version(src_registry="a", package="p", version="1", dest_registry="b")


async def test_metadata_sends_artifact_keys(served: tuple[Script, ArtifactClient]) -> None:
    from hc.protocol.metadata import parse_metadata

    script, artifacts = served
    client = artifacts._client
    await client.set_metadata(
        registry="gen", pairs=parse_metadata("k:v"), package="p", version="1", artifact_key={"a": "b"}
    )
    assert json.loads(script.seen[-1].body) == {
        "registryIdentifier": "gen",
        "metadata": [{"key": "k", "value": "v"}],
        "package": "p",
        "version": "1",
        "artifactKeyFilters": {"a": "b"},
    }
    script.answers[f"{V2}/metadata"] = {"status": "SUCCESS", "data": {"metadata": []}}
    await client.get_metadata(registry="gen", package="p", artifact_key={"a": "b"})
    assert script.seen[-1].query == [
        ("account_identifier", "acct"),
        ("registry_identifier", "gen"),
        ("package", "p"),
        ("filters", "a:b"),
    ]
