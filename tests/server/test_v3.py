"""v3 listings (hasMore paging, filters) and bulk delete."""

from __future__ import annotations

from typing import Any

from .conftest import V2, V3, Api


async def _populate(api: Api) -> None:
    await api.create_registry("gen")
    await api.create_registry("other")
    for path in ["alpha/1.0/a", "alpha/1.1/a", "alpha/2.0/a", "beta/1.0/b", "beta/1.0/c", "gamma/0.1/g"]:
        await api.put("gen", path, path.encode())
    await api.put("other", "alpha/9.0/z", b"z")


async def _items(api: Api, path: str) -> list[dict[str, Any]]:
    return list((await api.json("GET", f"{V3}{path}"))["items"])


async def test_has_more_paging_covers_everything_once(api: Api) -> None:
    await _populate(api)
    seen: list[str] = []
    page = 0
    while True:
        body = await api.json(
            "GET", f"{V3}/versions?account_identifier=local&size=2&page={page}&sort=name:asc"
        )
        assert body["page"] == page and body["size"] == 2
        seen.extend(f"{v['packageName']}@{v['name']}" for v in body["items"])
        if not body["hasMore"]:
            break
        page += 1
    assert sorted(seen) == sorted(
        ["alpha@1.0", "alpha@1.1", "alpha@2.0", "beta@1.0", "gamma@0.1", "alpha@9.0"]
    )
    assert len(seen) == len(set(seen))


async def test_registry_and_package_filters(api: Api) -> None:
    await _populate(api)
    registries = {r["name"]: r for r in await _items(api, "/registries?account_identifier=local")}
    assert registries["gen"]["packageCount"] == 3
    assert registries["gen"]["path"] == "local/gen"
    gen_id = registries["gen"]["id"]
    packages = await _items(api, f"/packages?account_identifier=local&registry_ids={gen_id}")
    assert {p["name"]: p["latestVersion"] for p in packages} == {
        "alpha": "2.0",
        "beta": "1.0",
        "gamma": "0.1",
    }
    alpha = next(p for p in packages if p["name"] == "alpha")
    versions = await _items(api, f"/versions?account_identifier=local&package_ids={alpha['id']}")
    assert sorted(v["name"] for v in versions) == ["1.0", "1.1", "2.0"]
    beta = next(
        v
        for v in await _items(api, f"/versions?account_identifier=local&registry_ids={gen_id}")
        if v["packageName"] == "beta"
    )
    assert (beta["fileCount"], beta["size"]) == (2, str(len(b"beta/1.0/b") * 2))
    files = await _items(api, f"/files?account_identifier=local&registry_id={gen_id}&version_id={beta['id']}")
    assert sorted(f["path"] for f in files) == ["/b", "/c"]
    assert all(f["downloadUrl"].startswith(f"{api.base}/pkg/local/gen/files/beta/1.0/") for f in files)
    searched = await _items(api, "/packages?account_identifier=local&search_term=amm")
    assert [p["name"] for p in searched] == ["gamma"]
    desc = await _items(api, f"/packages?account_identifier=local&registry_ids={gen_id}&sort=name:desc")
    assert [p["name"] for p in desc] == ["gamma", "beta", "alpha"]
    unknown = await _items(
        api, "/packages?account_identifier=local&registry_ids=00000000-0000-0000-0000-000000000000"
    )
    assert unknown == []


async def test_metadata_filters(api: Api) -> None:
    await _populate(api)
    await api.json(
        "POST",
        f"{V2}/metadata?account_identifier=local",
        json={"registryIdentifier": "gen", "package": "beta", "metadata": [{"key": "tier", "value": "gold"}]},
    )
    await api.json(
        "POST",
        f"{V2}/metadata?account_identifier=local",
        json={
            "registryIdentifier": "gen",
            "package": "alpha",
            "version": "1.1",
            "metadata": [{"key": "tier", "value": "gold"}],
        },
    )
    assert [
        p["name"] for p in await _items(api, "/packages?account_identifier=local&metadata=tier:gold")
    ] == ["beta"]
    versions = await _items(api, "/versions?account_identifier=local&metadata=tier:gold")
    assert [(v["packageName"], v["name"]) for v in versions] == [("alpha", "1.1")]
    await api.json("GET", f"{V3}/packages?account_identifier=local&metadata=nocolon", status=400)


async def test_include_meta_and_errors(api: Api) -> None:
    await _populate(api)
    body = await api.json("GET", f"{V3}/packages?account_identifier=local&include_meta=true&size=1")
    assert body["meta"] == {"activeCount": 4, "deletedCount": 0}
    assert body["hasMore"] is True
    error = await api.json("GET", f"{V3}/packages?account_identifier=local&sort=color:asc", status=400)
    assert error["error"]["type"] == "INVALID_REQUEST_ERROR"
    missing = await api.json("GET", f"{V3}/packages", status=400)
    assert "account_identifier" in missing["error"]["message"]


def _bulk(packages: str, versions: str = "", *, dry_run: bool, registry: str = "gen") -> dict[str, Any]:
    return {
        "packages": packages,
        "versions": versions,
        "registry": registry,
        "force": False,
        "dryRun": dry_run,
    }


async def test_bulk_delete_dry_run_then_real(api: Api) -> None:
    await _populate(api)
    dry = await api.json(
        "POST", f"{V3}/bulkdelete?account_identifier=local", json=_bulk("al*", "1.?", dry_run=True)
    )
    assert dry["dryRun"] is True
    assert sorted(dry["successPackages"]) == ["alpha@1.0", "alpha@1.1"]
    assert (dry["total"], dry["success"], dry["failed"]) == (2, 2, 0)
    assert (dry["registry"], dry["pattern"], dry["versionPattern"]) == ("gen", "al*", "1.?")
    assert dry["message"]
    assert (await api.get_bytes("gen", "alpha/1.0/a"))[0] == 200  # dry run deleted nothing
    real = await api.json(
        "POST", f"{V3}/bulkdelete?account_identifier=local", json=_bulk("al*", "1.?", dry_run=False)
    )
    assert real["dryRun"] is False and real["success"] == 2
    assert (await api.get_bytes("gen", "alpha/1.0/a"))[0] == 404
    assert (await api.get_bytes("gen", "alpha/2.0/a"))[0] == 200
    assert (await api.get_bytes("other", "alpha/9.0/z"))[0] == 200  # other registry untouched
    whole = await api.json(
        "POST", f"{V3}/bulkdelete?account_identifier=local", json=_bulk("?eta", dry_run=False)
    )
    assert whole["successPackages"] == ["beta"]
    assert (await api.get_bytes("gen", "beta/1.0/b"))[0] == 404
    nothing = await api.json(
        "POST", f"{V3}/bulkdelete?account_identifier=local", json=_bulk("zzz*", dry_run=True)
    )
    assert (nothing["successPackages"], nothing["total"]) == ([], 0)


async def test_bulk_delete_refuses_bad_patterns_and_registries(api: Api) -> None:
    await _populate(api)
    bad = await api.json(
        "POST", f"{V3}/bulkdelete?account_identifier=local", json=_bulk("a[bc]", dry_run=True), status=400
    )
    assert "wildcards" in bad["error"]["message"]
    await api.json(
        "POST",
        f"{V3}/bulkdelete?account_identifier=local",
        json=_bulk("a*", dry_run=True, registry="nope"),
        status=404,
    )


async def _walk_files(api: Api, query: str, size: int) -> list[str]:
    paths: list[str] = []
    page = 0
    while True:
        body = await api.json("GET", f"{V3}/files?account_identifier=local&{query}&size={size}&page={page}")
        paths.extend(f["path"] for f in body["items"])
        if not body["hasMore"]:
            return paths
        page += 1


async def test_a_versions_files_page_in_order_and_a_write_between_pages_is_seen(api: Api) -> None:
    await api.create_registry("gen")
    names = [f"d{i % 3}/f{i:03d}" for i in range(40)]
    for name in names:
        await api.put("gen", f"pkg/1.0/{name}", name.encode() * (1 + len(name) % 4))
    gen_id = (await _items(api, "/registries?account_identifier=local"))[0]["id"]
    version = (await _items(api, f"/versions?account_identifier=local&registry_ids={gen_id}"))[0]["id"]
    query = f"registry_id={gen_id}&version_id={version}"
    expected = ["/" + n for n in sorted(names)]
    assert await _walk_files(api, query, 7) == expected
    assert await _walk_files(api, query + "&sort=name:desc", 6) == expected[::-1]
    by_size = await _walk_files(api, query + "&sort=size:asc", 5)
    assert sorted(by_size) == expected and len(by_size) == len(set(by_size))
    assert await _walk_files(api, query + "&search_term=d1/", 4) == [p for p in expected if "/d1/" in p]

    # Page 0, then a file that sorts first, then page 1: page 1 is rows 7..13 of the new listing
    # (what LIMIT/OFFSET over the current rows gives), not a continuation of the old page 0.
    first = await api.json("GET", f"{V3}/files?account_identifier=local&{query}&size=7&page=0")
    assert [f["path"] for f in first["items"]] == expected[:7]
    await api.put("gen", "pkg/1.0/a-first", b"new")
    second = await api.json("GET", f"{V3}/files?account_identifier=local&{query}&size=7&page=1")
    assert [f["path"] for f in second["items"]] == (["/a-first", *expected])[7:14]
    meta = await api.json("GET", f"{V3}/files?account_identifier=local&{query}&size=7&include_meta=true")
    assert meta["meta"]["activeCount"] == len(names) + 1
