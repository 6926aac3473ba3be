"""v2: metadata at registry, package and version level, with the spec's limits; server-side copy."""

from __future__ import annotations

import os
from typing import Any

import pytest

from .conftest import V2, Api


async def _setup(api: Api) -> None:
    await api.create_registry("gen")
    await api.put("gen", "pkg/1.0/file.bin", b"content")


@pytest.mark.parametrize(
    ("target", "query"),
    [
        ({}, ""),
        ({"package": "pkg"}, "&package=pkg"),
        ({"package": "pkg", "version": "1.0"}, "&package=pkg&version=1.0"),
    ],
    ids=["registry", "package", "version"],
)
async def test_metadata_set_get_delete(api: Api, target: dict[str, str], query: str) -> None:
    await _setup(api)
    body: dict[str, Any] = {
        "registryIdentifier": "gen",
        **target,
        "metadata": [{"key": "env", "value": "prod"}, {"key": "team", "value": "core"}],
    }
    set_response = await api.json("POST", f"{V2}/metadata?account_identifier=local", json=body)
    assert {(m["key"], m["value"]) for m in set_response["data"]["metadata"]} == {
        ("env", "prod"),
        ("team", "core"),
    }
    body["metadata"] = [{"key": "env", "value": "staging"}]
    await api.json("POST", f"{V2}/metadata?account_identifier=local", json=body)
    got = await api.json("GET", f"{V2}/metadata?account_identifier=local&registry_identifier=gen{query}")
    items = got["data"]["metadata"]
    assert [(m["key"], m["value"], m["type"]) for m in items] == [
        ("env", "staging", "MANUAL"),
        ("team", "core", "MANUAL"),
    ]
    assert all(m["id"] for m in items)
    await api.json("DELETE", f"{V2}/metadata?account_identifier=local", json=body)
    got = await api.json("GET", f"{V2}/metadata?account_identifier=local&registry_identifier=gen{query}")
    assert [m["key"] for m in got["data"]["metadata"]] == ["team"]


async def test_metadata_levels_are_separate(api: Api) -> None:
    await _setup(api)
    await api.json(
        "POST",
        f"{V2}/metadata?account_identifier=local",
        json={"registryIdentifier": "gen", "package": "pkg", "metadata": [{"key": "k", "value": "package"}]},
    )
    registry_level = await api.json("GET", f"{V2}/metadata?account_identifier=local&registry_identifier=gen")
    assert registry_level["data"]["metadata"] == []


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        ([], "1 to 50"),
        ([{"key": f"k{i}", "value": "v"} for i in range(51)], "at most 50"),
        ([{"key": "", "value": "v"}], "key"),
        ([{"key": "k" * 129, "value": "v"}], "1 to 128"),
        ([{"key": "k", "value": ""}], "value"),
        ([{"key": "k", "value": "v" * 257}], "1 to 256"),
        ([{"key": "k"}], "value"),
    ],
)
async def test_metadata_limits_are_400_with_a_clear_message(api: Api, metadata: Any, fragment: str) -> None:
    await _setup(api)
    body = await api.json(
        "POST",
        f"{V2}/metadata?account_identifier=local",
        json={"registryIdentifier": "gen", "metadata": metadata},
        status=400,
    )
    assert fragment in body["message"]


async def test_metadata_limits_at_the_edges_are_accepted(api: Api) -> None:
    await _setup(api)
    items = [{"key": f"{i:03d}" + "k" * 125, "value": "v" * 256} for i in range(50)]
    await api.json(
        "POST",
        f"{V2}/metadata?account_identifier=local",
        json={"registryIdentifier": "gen", "metadata": items},
    )


async def test_metadata_on_missing_targets_is_404(api: Api) -> None:
    await _setup(api)
    await api.json("GET", f"{V2}/metadata?account_identifier=local&registry_identifier=nope", status=404)
    await api.json(
        "GET", f"{V2}/metadata?account_identifier=local&registry_identifier=gen&package=nope", status=404
    )
    await api.json(
        "GET",
        f"{V2}/metadata?account_identifier=local&registry_identifier=gen&package=pkg&version=9",
        status=404,
    )


def _copy_query(**overrides: str) -> str:
    params = {
        "account_identifier": "local",
        "src_registry_identifier": "src",
        "target_registry_identifier": "dst",
        "src_artifact": "tool",
        "src_version": "1.0",
        **overrides,
    }
    return "&".join(f"{k}={v}" for k, v in params.items())


async def test_copy_shares_blobs_and_carries_metadata(api: Api) -> None:
    await api.create_registry("src")
    await api.create_registry("dst")
    big, small = os.urandom(2_000_000), b"readme"
    await api.put("src", "tool/1.0/bin/tool", big)
    await api.put("src", "tool/1.0/README", small)
    await api.json(
        "POST",
        f"{V2}/metadata?account_identifier=local",
        json={
            "registryIdentifier": "src",
            "package": "tool",
            "version": "1.0",
            "metadata": [{"key": "built-by", "value": "ci"}],
        },
    )
    blobs_before = api.stored_blobs()
    assert (await api.json("POST", f"{V2}/copy?{_copy_query()}")) == {"status": "SUCCESS"}
    assert api.stored_blobs() == blobs_before  # no byte copied
    assert (await api.get_bytes("dst", "tool/1.0/bin/tool"))[1] == big
    assert (await api.get_bytes("dst", "tool/1.0/README"))[1] == small
    meta = await api.json(
        "GET", f"{V2}/metadata?account_identifier=local&registry_identifier=dst&package=tool&version=1.0"
    )
    assert [(m["key"], m["value"]) for m in meta["data"]["metadata"]] == [("built-by", "ci")]
    # copying again is idempotent
    await api.json("POST", f"{V2}/copy?{_copy_query()}")
    # deleting the source keeps the copy's bytes
    await api.json("DELETE", "/gateway/har/api/v1/registry/local%2Fsrc/+")
    assert (await api.get_bytes("dst", "tool/1.0/bin/tool"))[1] == big


async def test_copy_refuses_conflicts_and_mismatched_types(api: Api) -> None:
    await api.create_registry("src")
    await api.create_registry("dst")
    await api.create_registry("pyreg", "PYTHON")
    await api.put("src", "tool/1.0/f", b"one")
    await api.put("dst", "tool/1.0/f", b"two")
    await api.json("POST", f"{V2}/copy?{_copy_query()}", status=409)
    await api.json("POST", f"{V2}/copy?{_copy_query(target_registry_identifier='pyreg')}", status=400)
    await api.json("POST", f"{V2}/copy?{_copy_query(src_version='9.9')}", status=404)
    await api.json("POST", f"{V2}/copy?{_copy_query(target_registry_identifier='src')}", status=400)
    body = await api.json(
        "POST", f"{V2}/copy?account_identifier=local&src_registry_identifier=src", status=400
    )
    assert "target_registry_identifier" in body["message"]
