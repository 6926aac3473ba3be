"""v1 management API: registries, artifacts, versions; refs escaped as the Go client sends them."""

from __future__ import annotations

import pytest

from .conftest import V1, Api


async def test_registry_lifecycle(api: Api) -> None:
    created = await api.json(
        "POST",
        f"{V1}/registry?space_ref=local",
        json={"identifier": "gen", "packageType": "GENERIC", "description": "d", "labels": ["a"]},
        status=201,
    )
    data = created["data"]
    assert (data["identifier"], data["packageType"], data["description"], data["labels"]) == (
        "gen",
        "GENERIC",
        "d",
        ["a"],
    )
    assert data["url"] == f"{api.base}/pkg/local/gen"
    got = await api.json("GET", f"{V1}/registry/local%2Fgen/+")
    assert got["data"]["uuid"] == data["uuid"]
    modified = await api.json(
        "PUT",
        f"{V1}/registry/local/gen/+",
        json={"identifier": "gen", "description": "new", "packageType": "GENERIC"},
    )
    assert modified["data"]["description"] == "new"
    assert modified["data"]["labels"] == ["a"]
    await api.json("DELETE", f"{V1}/registry/local%2Fgen/+")
    await api.json("GET", f"{V1}/registry/local%2Fgen/+", status=404)


@pytest.mark.parametrize("identifier", ["", "9abc", "Upper", "has space", "a/b", "x" * 129, "-lead"])
async def test_invalid_identifiers_are_400(api: Api, identifier: str) -> None:
    body = await api.json(
        "POST",
        f"{V1}/registry?space_ref=local",
        json={"identifier": identifier, "packageType": "GENERIC"},
        status=400,
    )
    assert body["code"] == "INVALID_REQUEST"
    assert "identifier" in body["message"]


async def test_a_lone_surrogate_in_a_json_body_is_400_not_500(api: Api) -> None:
    """``"\\udcff"`` is valid JSON but not Unicode text: SQLite cannot store it, so it is the
    request's fault (400), never a server error."""
    body = await api.json(
        "POST",
        f"{V1}/registry?space_ref=local",
        data=b'{"identifier": "gen", "packageType": "GENERIC", "description": "\\udcff"}',
        headers={"Content-Type": "application/json"},
        status=400,
    )
    assert "surrogate" in body["message"]
    await api.json("GET", f"{V1}/registry/local%2Fgen/+", status=404)


async def test_registry_identifiers_are_unique_per_account_across_spaces(api: Api) -> None:
    await api.create_registry("gen", space="local/org1/proj1")
    body = await api.json(
        "POST",
        f"{V1}/registry?space_ref=local",
        json={"identifier": "gen", "packageType": "GENERIC"},
        status=409,
    )
    assert "already exists" in body["message"]


async def test_bad_package_type_and_upstream_config_are_refused(api: Api) -> None:
    await api.json(
        "POST", f"{V1}/registry?space_ref=local", json={"identifier": "x", "packageType": "NOPE"}, status=400
    )
    body = await api.json(
        "POST",
        f"{V1}/registry?space_ref=local",
        json={
            "identifier": "x",
            "packageType": "GENERIC",
            "config": {"type": "UPSTREAM", "authType": "Anonymous"},
        },
        status=400,
    )
    assert "upstream" in body["message"]


async def test_list_registries_pages_are_zero_based_with_totals(api: Api) -> None:
    for name in ["r1", "r2", "r3", "r4", "r5"]:
        await api.create_registry(name)
    await api.create_registry("pyreg", "PYTHON")
    page0 = await api.json("GET", f"{V1}/spaces/local/+/registries?size=2&package_type=GENERIC")
    data = page0["data"]
    assert [r["identifier"] for r in data["registries"]] == ["r1", "r2"]
    assert (data["itemCount"], data["pageCount"], data["pageIndex"], data["pageSize"]) == (5, 3, 0, 2)
    page2 = await api.json("GET", f"{V1}/spaces/local/+/registries?size=2&page=2&package_type=GENERIC")
    assert [r["identifier"] for r in page2["data"]["registries"]] == ["r5"]
    desc = await api.json(
        "GET", f"{V1}/spaces/local/+/registries?sort_field=identifier&sort_order=DESC&size=1"
    )
    assert desc["data"]["registries"][0]["identifier"] == "r5"
    searched = await api.json("GET", f"{V1}/spaces/local/+/registries?search_term=py")
    assert [r["identifier"] for r in searched["data"]["registries"]] == ["pyreg"]
    assert searched["data"]["registries"][0]["path"] == "local/pyreg"


async def test_scopes_of_registry_listing(api: Api) -> None:
    await api.create_registry("top")
    await api.create_registry("inorg", space="local/org")
    await api.create_registry("inproj", space="local/org/proj")

    async def names(query: str, space: str = "local%2Forg") -> list[str]:
        body = await api.json("GET", f"{V1}/spaces/{space}/+/registries{query}")
        return sorted(r["identifier"] for r in body["data"]["registries"])

    assert await names("") == ["inorg"]
    assert await names("?scope=ancestors") == ["inorg", "top"]
    assert await names("?scope=descendants") == ["inorg", "inproj"]
    assert await names("?recursive=true", space="local") == ["inorg", "inproj", "top"]
    # a project can resolve its org's registry through its own ref, not a sibling's
    await api.json("GET", f"{V1}/registry/local%2Forg%2Fproj%2Finorg/+")
    await api.json("GET", f"{V1}/registry/local%2Fother%2Finproj/+", status=404)


async def test_artifacts_versions_and_deletes(api: Api) -> None:
    await api.create_registry("gen")
    for path in ["a/1.0/f", "a/2.0/f", "b/1.0/f"]:
        await api.put("gen", path, path.encode())
    listed = await api.json("GET", f"{V1}/spaces/local/+/artifacts?reg_identifier=gen")
    rows = sorted((a["name"], a["version"]) for a in listed["data"]["artifacts"])
    assert rows == [("a", "1.0"), ("a", "2.0"), ("b", "1.0")]
    assert all(
        a["registryIdentifier"] == "gen" and a["packageType"] == "GENERIC"
        for a in listed["data"]["artifacts"]
    )
    latest = await api.json("GET", f"{V1}/spaces/local/+/artifacts?reg_identifier=gen&latest_version=true")
    assert {a["name"]: a["latestVersion"] for a in latest["data"]["artifacts"]} == {"a": "2.0", "b": "1.0"}
    searched = await api.json("GET", f"{V1}/spaces/local/+/artifacts?search_term=b")
    assert [a["name"] for a in searched["data"]["artifacts"]] == ["b"]
    none = await api.json("GET", f"{V1}/spaces/local/+/artifacts?reg_identifier=missing")
    assert none["data"]["artifacts"] == []
    by_registry = await api.json("GET", f"{V1}/registry/local%2Fgen/+/artifacts")
    assert [a["name"] for a in by_registry["data"]["artifacts"]] == ["a", "b"]
    versions = await api.json("GET", f"{V1}/registry/local%2Fgen/+/artifact/a/+/versions")
    assert [v["name"] for v in versions["data"]["artifactVersions"]] == ["1.0", "2.0"]

    await api.json("DELETE", f"{V1}/registry/local%2Fgen/+/artifact/a/+/version/1.0")
    await api.json("DELETE", f"{V1}/registry/local%2Fgen/+/artifact/a/+/version/1.0", status=404)
    assert (await api.get_bytes("gen", "a/1.0/f"))[0] == 404
    assert (await api.get_bytes("gen", "a/2.0/f"))[1] == b"a/2.0/f"
    await api.json("DELETE", f"{V1}/registry/local%2Fgen/+/artifact/a/+")
    await api.json("GET", f"{V1}/registry/local%2Fgen/+/artifact/a/+/versions", status=404)
    assert len(api.stored_blobs()) == 1  # only b's bytes remain


async def test_bad_paging_parameters_are_400(api: Api) -> None:
    await api.json("GET", f"{V1}/spaces/local/+/registries?size=0", status=400)
    await api.json("GET", f"{V1}/spaces/local/+/registries?page=x", status=400)
    await api.json("GET", f"{V1}/spaces/local/+/registries?sort_order=sideways", status=400)
