"""Upload sessions opened without a sha256 (``digestAtCommit``): the commit's digest alone decides,
and a server that does not advertise it keeps refusing such a begin."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hc.errors import UsageError
from hc.protocol.uploads import BeginUpload, UploadCapabilities
from hc.server.admin import fsck

from .conftest import V3, Api
from .test_uploads import MIB, commit, get_state, own_app, patch, session_files, uploads_url


@pytest.fixture
async def gen(api: Api) -> str:
    await api.create_registry("gen")
    return "gen"


async def begin_undeclared(
    api: Api, size: int, path: str = "pkg/1.0/big.bin", *, status: int = 201, sha256: str | None = ""
) -> Any:
    package, version, rel = path.split("/", 2)
    body: dict[str, Any] = {"package": package, "version": version, "path": rel, "size": size}
    if sha256 is not None:
        body["sha256"] = sha256
    async with api.session.post(uploads_url(api), json=body) as response:
        text = await response.text()
        assert response.status == status, text
        return json.loads(text)


async def test_system_info_advertises_digest_at_commit(api: Api) -> None:
    body = await api.json("GET", f"{V3}/system/info?account_identifier=local")
    assert body["data"]["hc"]["digestAtCommit"] is True
    assert UploadCapabilities.from_json(body["data"]["hc"]).digest_at_commit


@pytest.mark.parametrize("sha256", ["", None], ids=["empty", "absent"])
async def test_a_session_without_a_declared_sha256_is_checked_against_the_commit_digest(
    api: Api, gen: str, sha256: str | None
) -> None:
    data = os.urandom(2 * MIB + 17)
    upload_id = (await begin_undeclared(api, len(data), sha256=sha256))["data"]["id"]
    await patch(api, upload_id, data, MIB, len(data))  # out of order: the server catches up the hash
    await patch(api, upload_id, data, 0, MIB)
    result = (await commit(api, upload_id, hashlib.sha256(data).hexdigest()))["data"]
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert result["md5"] == hashlib.md5(data).hexdigest()
    assert (await api.get_bytes(gen, "pkg/1.0/big.bin"))[:2] == (200, data)
    assert session_files(api.data_dir) == []


async def test_a_wrong_commit_digest_stores_nothing_when_none_was_declared(api: Api, gen: str) -> None:
    data = os.urandom(MIB + 5)
    upload_id = (await begin_undeclared(api, len(data)))["data"]["id"]
    await patch(api, upload_id, data, 0, len(data))
    # The last byte flipped (not replaced by a constant, which random data ends with 1 time in 256).
    wrong = hashlib.sha256(data[:-1] + bytes([data[-1] ^ 1])).hexdigest()
    body = await commit(api, upload_id, wrong, status=400)
    assert body["code"] == "CHECKSUM_MISMATCH" and "nothing was stored" in body["message"]
    assert "declared" not in body["message"]
    await get_state(api, upload_id, status=404)
    assert api.stored_blobs() == [] and session_files(api.data_dir) == []
    assert (await api.get_bytes(gen, "pkg/1.0/big.bin"))[0] == 404
    assert fsck(api.data_dir).clean


async def test_an_undeclared_begin_opens_a_session_even_for_bytes_already_stored(api: Api, gen: str) -> None:
    data = os.urandom(20_000)
    await api.put(gen, "pkg/1.0/big.bin", data)
    upload_id = (await begin_undeclared(api, len(data)))["data"]["id"]  # no "unchanged" shortcut
    await patch(api, upload_id, data, 0, len(data))
    body = await commit(api, upload_id, hashlib.sha256(data).hexdigest(), status=200)
    assert body["data"]["outcome"] == "unchanged"
    assert (await api.get_bytes(gen, "pkg/1.0/big.bin"))[1] == data
    assert session_files(api.data_dir) == [] and fsck(api.data_dir).clean


async def test_an_undeclared_session_keeps_the_re_upload_rule(api: Api, gen: str) -> None:
    await api.put(gen, "pkg/1.0/big.bin", b"old bytes")
    new = os.urandom(5000)
    upload_id = (await begin_undeclared(api, len(new)))["data"]["id"]
    await patch(api, upload_id, new, 0, len(new))
    assert (await commit(api, upload_id, hashlib.sha256(new).hexdigest(), status=409))["code"] == "CONFLICT"
    assert (await api.get_bytes(gen, "pkg/1.0/big.bin"))[1] == b"old bytes"


@pytest.fixture
async def without_digest_at_commit(data_dir: Path, aiohttp_client: Any) -> AsyncIterator[Api]:
    """A server configured as before the extension: the sha256 is required at begin."""
    api, state, session = await own_app(data_dir, aiohttp_client, ttl_s=3600)
    state.uploads.digest_at_commit = False
    async with session:
        await api.create_registry("gen")
        yield api


async def test_a_server_without_the_capability_refuses_an_undeclared_begin(
    without_digest_at_commit: Api,
) -> None:
    api = without_digest_at_commit
    body = await api.json("GET", f"{V3}/system/info?account_identifier=local")
    assert "digestAtCommit" not in body["data"]["hc"]
    assert not UploadCapabilities.from_json(body["data"]["hc"]).digest_at_commit
    for sha256 in ("", None):
        refused = await begin_undeclared(api, 10, status=400, sha256=sha256)
        assert "sha256" in refused["message"]
    assert session_files(api.data_dir) == []
    # Declaring it still works.
    data = b"0123456789"
    await begin_undeclared(api, len(data), sha256=hashlib.sha256(data).hexdigest())


def test_begin_body_and_capability_parsing() -> None:
    body = {"package": "p", "version": "1", "path": "f", "size": 3}
    with pytest.raises(UsageError, match="sha256"):
        BeginUpload.from_json({**body, "sha256": ""})
    assert BeginUpload.from_json(body, digest_at_commit=True).sha256 == ""
    assert BeginUpload.from_json({**body, "sha256": ""}, digest_at_commit=True).sha256 == ""
    with pytest.raises(UsageError, match="sha256"):  # something else than empty is still checked
        BeginUpload.from_json({**body, "sha256": "xyz"}, digest_at_commit=True)
    assert BeginUpload.from_json({**body, "sha256": "A" * 64}, digest_at_commit=True).sha256 == "a" * 64

    caps = UploadCapabilities(upload_sessions=True, digest_at_commit=True)
    assert caps.to_json()["digestAtCommit"] is True
    assert UploadCapabilities.from_json(caps.to_json()) == caps
    assert "digestAtCommit" not in UploadCapabilities(upload_sessions=True).to_json()
    # Lenient: anything but a literal true means "not offered".
    assert not UploadCapabilities.from_json(
        {"uploadSessions": True, "digestAtCommit": "yes"}
    ).digest_at_commit
    assert not UploadCapabilities.from_json(
        {"uploadSessions": False, "digestAtCommit": True}
    ).digest_at_commit
