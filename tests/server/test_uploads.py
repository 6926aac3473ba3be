"""Resumable upload sessions (/pkg/{account}/{registry}/uploads): parts in any order, resume after a
server crash, commit by digest, and the refusals."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hc.errors import UsageError
from hc.protocol.uploads import UploadCapabilities, UploadState, part_content_range
from hc.server import uploads as server_uploads
from hc.server.admin import fsck
from hc.server.app import create_app
from hc.server.embedded import create_api_key, ensure_local_credentials
from hc.server.metadata import Catalog
from hc.server.state import STATE

from .conftest import V3, Api
from .test_processes import ServerProcess, server_factory, start_server  # noqa: F401

MIB = 1 << 20


@pytest.fixture
async def gen(api: Api) -> str:
    await api.create_registry("gen")
    return "gen"


def uploads_url(api: Api, registry: str = "gen") -> str:
    return api.url(f"/pkg/{api.account}/{registry}/uploads")


async def begin(
    api: Api, data: bytes, path: str = "pkg/1.0/big.bin", *, status: int = 201, **extra: Any
) -> Any:
    package, version, rel = path.split("/", 2)
    body = {
        "package": package,
        "version": version,
        "path": rel,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        **extra,
    }
    async with api.session.post(uploads_url(api), json=body) as response:
        text = await response.text()
        assert response.status == status, text
        payload = json.loads(text)
        if status == 201:
            location = response.headers["Location"]
            assert location == f"/pkg/{api.account}/gen/uploads/{payload['data']['id']}"
        return payload


async def patch(
    api: Api,
    upload_id: str,
    data: bytes,
    start: int,
    end: int,
    *,
    status: int = 202,
    body: bytes | None = None,
) -> Any:
    headers = {"Content-Range": part_content_range(start, end, len(data))}
    async with api.session.patch(
        f"{uploads_url(api)}/{upload_id}", data=data[start:end] if body is None else body, headers=headers
    ) as response:
        text = await response.text()
        assert response.status == status, text
        return json.loads(text)


async def commit(api: Api, upload_id: str, sha256: str, *, status: int = 201, query: str = "") -> Any:
    async with api.session.put(f"{uploads_url(api)}/{upload_id}?digest=sha256:{sha256}{query}") as response:
        text = await response.text()
        assert response.status == status, text
        return json.loads(text) if text else None


async def get_state(api: Api, upload_id: str, *, status: int = 200) -> Any:
    async with api.session.get(f"{uploads_url(api)}/{upload_id}") as response:
        assert response.status == status, await response.text()
        return (await response.json())["data"] if status == 200 else None


def session_files(data_dir: Path) -> list[str]:
    return sorted(os.listdir(data_dir / "uploads"))


async def test_system_info_advertises_sessions(api: Api) -> None:
    body = await api.json("GET", f"{V3}/system/info?account_identifier=local")
    block = body["data"]["hc"]
    caps = UploadCapabilities.from_json(block)
    assert caps.upload_sessions and caps.parallel_parts
    assert 0 < caps.min_part_size <= (caps.max_part_size or 0)
    assert block["sessionTtlSeconds"] == 24 * 3600
    assert block["rangeRequests"] is True  # what was there before is kept


def read_backs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The offsets the registry reads back from session files (its hash catch-up), as they happen."""
    reads: list[int] = []
    real_preadv = os.preadv
    monkeypatch.setattr(
        server_uploads.os,
        "preadv",
        lambda fd, buffers, off: (reads.append(off), real_preadv(fd, buffers, off))[1],
    )
    return reads


async def test_parts_in_order_round_trip_without_reading_back(
    api: Api, gen: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(3 * MIB + 12345)
    reads = read_backs(monkeypatch)
    state = (await begin(api, data))["data"]
    assert (state["offset"], state["received"], state["size"]) == (0, [], len(data))
    upload_id = state["id"]
    assert session_files(api.data_dir) == [f"{upload_id}.data"]
    offsets = []
    for start in range(0, len(data), MIB):
        answer = await patch(api, upload_id, data, start, min(start + MIB, len(data)))
        offsets.append(answer["data"]["offset"])
    assert offsets == [MIB, 2 * MIB, 3 * MIB, len(data)]
    assert (await get_state(api, upload_id))["received"] == [[0, len(data)]]
    result = (await commit(api, upload_id, hashlib.sha256(data).hexdigest()))["data"]
    assert reads == []  # hashed while the parts streamed in: nothing read back at commit
    assert result["outcome"] == "created"
    for algorithm in ("md5", "sha1", "sha256", "sha512"):
        assert result[algorithm] == hashlib.new(algorithm, data).hexdigest()
    assert (result["package"], result["version"], result["path"], result["size"]) == (
        "pkg",
        "1.0",
        "big.bin",
        len(data),
    )
    status, got, _ = await api.get_bytes(gen, "pkg/1.0/big.bin")
    assert (status, got == data) == (200, True)
    await get_state(api, upload_id, status=404)
    assert session_files(api.data_dir) == []
    assert api.tmp_files() == []
    assert fsck(api.data_dir).clean


async def test_parts_out_of_order_and_in_parallel_with_overlapping_resends(api: Api, gen: str) -> None:
    data = os.urandom(5 * MIB + 70_000)
    upload_id = (await begin(api, data))["data"]["id"]
    parts = [(s, min(s + MIB, len(data))) for s in range(0, len(data), MIB)]
    # The last part first: the hash cannot follow it, so it is caught up later.
    answer = await patch(api, upload_id, data, *parts[-1])
    assert answer["data"]["received"] == [list(parts[-1])] and answer["data"]["offset"] == 0
    # The others at once, with an overlapping re-send of bytes the server already has.
    overlap = (parts[-1][0] - 1000, parts[-1][0] + 1000)
    await asyncio.gather(*(patch(api, upload_id, data, s, e) for s, e in [*reversed(parts[:-1]), overlap]))
    state = await get_state(api, upload_id)
    assert state["received"] == [[0, len(data)]] and state["offset"] == len(data)
    # Re-sending a part once everything arrived changes nothing.
    assert (await patch(api, upload_id, data, *parts[1]))["data"]["received"] == [[0, len(data)]]
    result = (await commit(api, upload_id, hashlib.sha256(data).hexdigest()))["data"]
    assert result["sha512"] == hashlib.sha512(data).hexdigest()
    assert (await api.get_bytes(gen, "pkg/1.0/big.bin"))[1] == data
    assert session_files(api.data_dir) == []
    assert fsck(api.data_dir).clean


async def test_the_catch_up_hashes_exactly_with_its_two_buffers_reused_many_times(
    api: Api, gen: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Parts that land ahead of the hash are read back into two buffers used in turn: a read into
    # the buffer the lanes still hash, or a stale tail of a short last read, would corrupt digests.
    step = 64 * 1024 + 3
    monkeypatch.setattr(server_uploads, "CATCH_UP_READ", step)
    reads = read_backs(monkeypatch)
    data = os.urandom(3 * MIB + 4321)
    upload_id = (await begin(api, data))["data"]["id"]
    parts = [(s, min(s + MIB, len(data))) for s in range(0, len(data), MIB)]
    for start, end in reversed(parts):  # every part but the first lands ahead of the hash
        await patch(api, upload_id, data, start, end)
    result = (await commit(api, upload_id, hashlib.sha256(data).hexdigest()))["data"]
    # the first part streams into the hash; the rest is caught up, read by read
    assert len(reads) >= -(-(len(data) - MIB) // step) > 30
    for algorithm in ("md5", "sha1", "sha256", "sha512"):
        assert result[algorithm] == hashlib.new(algorithm, data).hexdigest()
    assert (await api.get_bytes(gen, "pkg/1.0/big.bin"))[1] == data


async def test_resent_bytes_never_replace_bytes_already_received(api: Api, gen: str) -> None:
    data = os.urandom(2 * MIB)
    upload_id = (await begin(api, data))["data"]["id"]
    await patch(api, upload_id, data, 0, MIB)
    # A buggy client sends other bytes for a range the server holds: the first copy wins.
    await patch(api, upload_id, data, 0, 2 * MIB, body=os.urandom(MIB) + data[MIB:])
    await commit(api, upload_id, hashlib.sha256(data).hexdigest())
    assert (await api.get_bytes(gen, "pkg/1.0/big.bin"))[1] == data


async def test_empty_file_commits_without_parts(api: Api, gen: str) -> None:
    upload_id = (await begin(api, b"", "p/1/empty"))["data"]["id"]
    result = (await commit(api, upload_id, hashlib.sha256(b"").hexdigest()))["data"]
    assert result["size"] == 0
    assert (await api.get_bytes(gen, "p/1/empty"))[:2] == (200, b"")


async def test_digest_mismatch_stores_nothing_and_discards_the_session(api: Api, gen: str) -> None:
    data = os.urandom(MIB + 5)
    upload_id = (await begin(api, data))["data"]["id"]
    await patch(api, upload_id, data, 0, len(data))
    body = await commit(api, upload_id, "0" * 64, status=400)
    assert body["code"] == "CHECKSUM_MISMATCH" and "nothing was stored" in body["message"]
    await get_state(api, upload_id, status=404)
    assert api.stored_blobs() == [] and session_files(api.data_dir) == []
    assert (await api.get_bytes(gen, "pkg/1.0/big.bin"))[0] == 404

    # Bytes other than the declared ones: caught even when the client repeats the declared digest.
    declared = os.urandom(1000)
    upload_id = (await begin(api, declared))["data"]["id"]
    other = os.urandom(1000)
    await patch(api, upload_id, other, 0, 1000)
    body = await commit(api, upload_id, hashlib.sha256(declared).hexdigest(), status=400)
    assert body["code"] == "CHECKSUM_MISMATCH"
    assert api.stored_blobs() == [] and session_files(api.data_dir) == []
    assert fsck(api.data_dir).clean


async def test_short_long_and_out_of_bounds_parts_are_refused_and_not_recorded(api: Api, gen: str) -> None:
    data = os.urandom(4000)
    upload_id = (await begin(api, data))["data"]["id"]
    url = f"{uploads_url(api)}/{upload_id}"
    cases = [
        ({"Content-Range": "bytes 0-999/4000"}, data[:500]),  # shorter than its range
        ({"Content-Range": "bytes 0-999/4000"}, data[:1500]),  # longer than its range
        ({"Content-Range": "bytes 3000-4999/4000"}, data[:2000]),  # past the end
        ({"Content-Range": "bytes 0-999/5000"}, data[:1000]),  # another total
        ({"Content-Range": "bytes */4000"}, b""),
        ({}, data[:1000]),  # no Content-Range at all
    ]
    for headers, body in cases:
        async with api.session.patch(url, data=body, headers=headers) as response:
            assert response.status == 400, (headers, await response.text())
    assert (await get_state(api, upload_id))["received"] == []

    # A connection that dies half-way through a part: the bytes that arrived are kept.
    host, port = api.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        (
            f"PATCH /pkg/local/gen/uploads/{upload_id} HTTP/1.1\r\nHost: x\r\n"
            f"x-api-key: {api.server.token}\r\nContent-Range: bytes 0-3999/4000\r\n"
            "Content-Length: 4000\r\n\r\n"
        ).encode()
        + data[:2500]
    )
    await writer.drain()
    await asyncio.sleep(0.5)  # the handler takes the bytes in before the cut...
    writer.write_eof()
    await reader.read()  # the server answers 400 or just closes
    writer.close()
    # ...and keeps them, a moment after the client sees the connection close. (Bytes still in
    # aiohttp's buffer when the cut is seen are dropped with the connection: on a very slow
    # machine, nothing may have been taken in yet.)
    for _ in range(500):
        received = (await get_state(api, upload_id))["received"]
        if received:
            break
        await asyncio.sleep(0.01)
    assert received in ([[0, 2500]], [])
    kept = received[0][1] if received else 0
    # The session is still usable, and an incomplete one cannot be committed.
    body = await commit(api, upload_id, hashlib.sha256(data).hexdigest(), status=400)
    assert "incomplete" in body["message"] and f"[{kept}, 4000)" in body["message"]
    await patch(api, upload_id, data, kept, 4000)
    await commit(api, upload_id, hashlib.sha256(data).hexdigest())  # the kept bytes hash right too
    assert (await api.get_bytes(gen, "pkg/1.0/big.bin"))[1] == data


async def test_a_part_above_the_advertised_maximum_is_413(long_lived: tuple[Api, Any]) -> None:
    api, state = long_lived
    await api.create_registry("gen")
    data = os.urandom(3000)
    upload_id = (await begin(api, data))["data"]["id"]
    state.uploads.max_part_size = 1000
    await patch(api, upload_id, data, 0, 2000, status=413)
    await patch(api, upload_id, data, 0, 1000)


async def test_begin_says_unchanged_when_the_file_is_already_there(api: Api, gen: str) -> None:
    data = os.urandom(20_000)
    await api.put(gen, "pkg/1.0/big.bin", data)
    body = await begin(api, data, status=200)
    assert body["data"]["outcome"] == "unchanged" and "id" not in body["data"]
    assert body["data"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert session_files(api.data_dir) == []

    # Different bytes: a session, then the usual re-upload rule at commit.
    new = os.urandom(20_000)
    upload_id = (await begin(api, new))["data"]["id"]
    await patch(api, upload_id, new, 0, len(new))
    body = await commit(api, upload_id, hashlib.sha256(new).hexdigest(), status=409)
    assert body["code"] == "CONFLICT"
    assert (await get_state(api, upload_id))["offset"] == len(new)  # kept: retry with overwrite
    assert len(api.stored_blobs()) == 1  # the refused bytes did not reach the blob store
    replaced = await commit(
        api, upload_id, hashlib.sha256(new).hexdigest(), status=200, query="&overwrite=true"
    )
    assert replaced["data"]["outcome"] == "replaced"
    assert (await api.get_bytes(gen, "pkg/1.0/big.bin"))[1] == new
    assert len(api.stored_blobs()) == 1  # the replaced bytes were collected
    assert fsck(api.data_dir).clean


async def test_overwrite_declared_at_begin_applies_at_commit(api: Api, gen: str) -> None:
    await api.put(gen, "p/1/f", b"old")
    upload_id = (await begin(api, b"new", "p/1/f", overwrite=True))["data"]["id"]
    await patch(api, upload_id, b"new", 0, 3)
    assert (await commit(api, upload_id, hashlib.sha256(b"new").hexdigest(), status=200))["data"][
        "outcome"
    ] == "replaced"


async def test_abort_removes_the_session_and_its_bytes(api: Api, gen: str) -> None:
    data = os.urandom(5000)
    upload_id = (await begin(api, data))["data"]["id"]
    await patch(api, upload_id, data, 0, 2500)
    async with api.session.delete(f"{uploads_url(api)}/{upload_id}") as response:
        assert response.status == 204
    await get_state(api, upload_id, status=404)
    await patch(api, upload_id, data, 2500, 5000, status=404)
    await commit(api, upload_id, hashlib.sha256(data).hexdigest(), status=404)
    async with api.session.delete(f"{uploads_url(api)}/{upload_id}") as response:
        assert response.status == 404
    assert session_files(api.data_dir) == []


async def test_bad_begin_requests_are_refused(api: Api, gen: str) -> None:
    await api.create_registry("pypi", "PYTHON")
    good = {"package": "p", "version": "1", "path": "f", "size": 1, "sha256": "a" * 64}
    cases: list[tuple[str, Any]] = [
        ("gen", {**good, "size": -1}),
        ("gen", {**good, "sha256": "xyz"}),
        ("gen", {**good, "path": "../escape"}),
        ("gen", {**good, "package": ""}),
        ("gen", {**good, "overwrite": "yes"}),
        ("gen", [1, 2]),
        ("pypi", good),
    ]
    for registry, body in cases:
        async with api.session.post(uploads_url(api, registry), json=body) as response:
            assert response.status == 400, (body, await response.text())
    async with api.session.post(uploads_url(api, "nope"), json=good) as response:
        assert response.status == 404
    async with api.session.put(f"{uploads_url(api)}/{'0' * 32}?digest=md5:{'0' * 32}") as response:
        assert response.status == 400
    await get_state(api, "not-an-id", status=404)
    assert session_files(api.data_dir) == []


async def test_raw_registry_sessions_use_the_path_alone(api: Api) -> None:
    await api.create_registry("raw", "RAW")
    data = os.urandom(3000)
    body = {"path": "dir/f.bin", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    async with api.session.post(uploads_url(api, "raw"), json=body) as response:
        assert response.status == 201
        upload_id = (await response.json())["data"]["id"]
    url = f"{uploads_url(api, 'raw')}/{upload_id}"
    async with api.session.patch(url, data=data, headers={"Content-Range": "bytes 0-2999/*"}) as response:
        assert response.status == 202
    async with api.session.put(f"{url}?digest=sha256:{hashlib.sha256(data).hexdigest()}") as response:
        assert response.status == 201
    assert (await api.get_bytes("raw", "dir/f.bin"))[1] == data


async def test_sessions_need_a_key_of_their_account(api: Api, gen: str) -> None:
    data = os.urandom(100)
    upload_id = (await begin(api, data))["data"]["id"]
    other = create_api_key(api.data_dir, "other")
    url = f"{uploads_url(api)}/{upload_id}"
    requests: list[tuple[str, str]] = [
        ("POST", uploads_url(api)),
        ("PATCH", url),
        ("GET", url),
        ("PUT", f"{url}?digest=sha256:{'0' * 64}"),
        ("DELETE", url),
    ]
    async with aiohttp.ClientSession() as anonymous:
        for method, target in requests:
            async with anonymous.request(method, target) as response:
                assert response.status == 401, (method, await response.text())
    async with aiohttp.ClientSession(headers={"x-api-key": other}) as stranger:
        for method, target in requests:
            async with stranger.request(
                method, target, headers={"Content-Range": "bytes 0-99/100"}
            ) as response:
                assert response.status == 403, (method, await response.text())
    assert (await get_state(api, upload_id))["received"] == []


async def test_a_session_of_another_registry_is_not_found(api: Api, gen: str) -> None:
    await api.create_registry("gen2")
    upload_id = (await begin(api, b"abc"))["data"]["id"]
    async with api.session.get(f"{uploads_url(api, 'gen2')}/{upload_id}") as response:
        assert response.status == 404


# --------------------------------------------------------------------------- expiry and restarts


async def own_app(
    data_dir: Path, aiohttp_client: Any, *, ttl_s: float
) -> tuple[Api, Any, aiohttp.ClientSession]:
    """An app of our own (to reach its state and set its limits), and a client of it."""
    credentials = ensure_local_credentials(data_dir)
    app = create_app(data_dir=data_dir, upload_ttl_s=ttl_s)
    client = await aiohttp_client(app)

    class _Server:
        base_url = str(client.make_url("")).rstrip("/")
        account = credentials.account
        token = credentials.token

    session = aiohttp.ClientSession(headers={"x-api-key": credentials.token})
    return Api(server=_Server(), session=session, data_dir=data_dir), app[STATE], session  # type: ignore[arg-type]


@pytest.fixture
async def short_lived(data_dir: Path, aiohttp_client: Any) -> AsyncIterator[tuple[Api, Any]]:
    """An app whose sessions expire 0.2 s after their last part, and its state."""
    api, state, session = await own_app(data_dir, aiohttp_client, ttl_s=0.2)
    async with session:
        yield api, state


@pytest.fixture
async def long_lived(data_dir: Path, aiohttp_client: Any) -> AsyncIterator[tuple[Api, Any]]:
    api, state, session = await own_app(data_dir, aiohttp_client, ttl_s=3600)
    async with session:
        yield api, state


async def test_expired_sessions_are_gone_and_swept(short_lived: tuple[Api, Any]) -> None:
    api, state = short_lived
    await api.create_registry("gen")
    data = os.urandom(1000)
    upload_id = (await begin(api, data))["data"]["id"]
    await asyncio.sleep(0.3)
    await get_state(api, upload_id, status=404)
    await patch(api, upload_id, data, 0, 1000, status=404)
    await state.uploads.sweep()
    assert session_files(api.data_dir) == []
    assert fsck(api.data_dir).clean


async def test_startup_sweeps_orphaned_session_files_and_keeps_live_sessions(api: Api, gen: str) -> None:
    data = os.urandom(1000)
    upload_id = (await begin(api, data))["data"]["id"]
    await patch(api, upload_id, data, 0, 400)
    stray = api.data_dir / "uploads" / f"{'f' * 32}.data"
    stray.write_bytes(b"left by a crash after a commit")
    from hc.server.embedded import serve_embedded

    async with serve_embedded(api.data_dir) as second:
        assert not stray.exists()
        headers = {"x-api-key": second.token}
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.get(f"{second.base_url}/pkg/local/gen/uploads/{upload_id}") as response,
        ):
            assert (await response.json())["data"]["received"] == [[0, 400]]
    assert session_files(api.data_dir) == [f"{upload_id}.data"]


def test_a_killed_server_resumes_the_session_from_what_it_acknowledged(
    data_dir: Path,
    server_factory: tuple[str, list[ServerProcess]],  # noqa: F811
) -> None:
    token, started = server_factory
    server = start_server(data_dir, token)
    started.append(server)
    status, _ = server.request(
        "POST",
        "/gateway/har/api/v1/registry?space_ref=local",
        b'{"identifier": "gen", "packageType": "GENERIC"}',
        {"Content-Type": "application/json"},
    )
    assert status == 201
    data = os.urandom(4 * MIB + 99)
    sha256 = hashlib.sha256(data).hexdigest()
    begin_body = json.dumps(
        {"package": "p", "version": "1", "path": "f.bin", "size": len(data), "sha256": sha256}
    )
    status, body = server.request(
        "POST", "/pkg/local/gen/uploads", begin_body.encode(), {"Content-Type": "application/json"}
    )
    assert status == 201, body
    upload = UploadState.from_json(json.loads(body)["data"])
    parts = [(s, min(s + MIB, len(data))) for s in range(0, len(data), MIB)]

    def send(target: ServerProcess, start: int, end: int) -> UploadState:
        status, body = target.request(
            "PATCH",
            f"/pkg/local/gen/uploads/{upload.id}",
            data[start:end],
            {"Content-Range": part_content_range(start, end, len(data))},
        )
        assert status == 202, body
        return UploadState.from_json(json.loads(body)["data"])

    send(server, *parts[0])
    send(server, *parts[3])  # one ahead of the hash, too
    # Killed mid-part: the third part is half-sent when the server dies.
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        start, end = parts[1]
        sock.sendall(
            (
                f"PATCH /pkg/local/gen/uploads/{upload.id} HTTP/1.1\r\nHost: x\r\nx-api-key: {token}\r\n"
                f"Content-Range: {part_content_range(start, end, len(data))}\r\n"
                f"Content-Length: {end - start}\r\n\r\n"
            ).encode()
            + data[start : start + (end - start) // 2]
        )
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=30)

    restarted = start_server(data_dir, token)
    started.append(restarted)
    status, body = restarted.request("GET", f"/pkg/local/gen/uploads/{upload.id}")
    assert status == 200, body
    state = UploadState.from_json(json.loads(body)["data"])
    assert state.offset == MIB
    assert state.received == (parts[0], parts[3])
    # The client continues from what the server holds, and only sends what is missing.
    from hc.protocol.uploads import missing_ranges

    for start, end in missing_ranges(state.size, state.received):
        state = send(restarted, start, end)
    assert state.complete
    status, body = restarted.request("PUT", f"/pkg/local/gen/uploads/{upload.id}?digest=sha256:{sha256}")
    assert status == 201, body
    assert restarted.request("GET", "/pkg/local/gen/files/p/1/f.bin") == (200, data)
    assert session_files(data_dir) == []
    restarted.proc.send_signal(signal.SIGTERM)
    assert restarted.proc.wait(timeout=30) == 0
    report = fsck(data_dir)
    assert report.clean, report.faults
    assert report.unreferenced_blobs == 0


# ------------------------------------------------------------------- the pure protocol helpers


@pytest.mark.parametrize(
    ("ranges", "merged", "offset"),
    [
        ([], (), 0),
        ([(5, 10), (0, 5)], ((0, 10),), 10),
        ([(0, 3), (4, 6), (2, 4)], ((0, 6),), 6),
        ([(3, 6), (8, 9), (7, 7)], ((3, 6), (8, 9)), 0),
        ([(0, 4), (1, 2), (6, 8)], ((0, 4), (6, 8)), 4),
    ],
)
def test_received_ranges_merge_and_give_the_contiguous_offset(
    ranges: list[tuple[int, int]], merged: tuple[tuple[int, int], ...], offset: int
) -> None:
    from hc.protocol.uploads import contiguous_offset, merge_ranges

    assert merge_ranges(ranges) == merged
    assert contiguous_offset(ranges) == offset


@pytest.mark.parametrize(
    ("rng", "taken", "left"),
    [
        ((0, 10), [], [(0, 10)]),
        ((0, 10), [(0, 10)], []),
        ((0, 10), [(2, 4), (6, 8)], [(0, 2), (4, 6), (8, 10)]),
        ((5, 10), [(0, 6), (9, 20)], [(6, 9)]),
        ((0, 10), [(20, 30)], [(0, 10)]),
    ],
)
def test_subtract_ranges(
    rng: tuple[int, int], taken: list[tuple[int, int]], left: list[tuple[int, int]]
) -> None:
    from hc.protocol.uploads import subtract_ranges

    assert subtract_ranges(rng, taken) == left


def test_part_content_range_round_trips_and_refuses_what_does_not_fit() -> None:
    from hc.errors import UsageError
    from hc.protocol.uploads import parse_part_content_range

    assert part_content_range(0, 10, 10) == "bytes 0-9/10"
    rng = parse_part_content_range(part_content_range(4, 7, 10), 10)
    assert (rng.start, rng.end) == (4, 7)
    assert (parse_part_content_range("bytes 0-9/*", 10).end) == 10
    for bad in (None, "", "bytes */10", "bytes 0-10/10", "bytes 0-9/11", "bytes 5-2/10", "items 0-1/10"):
        with pytest.raises(UsageError):
            parse_part_content_range(bad, 10)
    with pytest.raises(ValueError):
        part_content_range(3, 3, 10)


def test_session_state_and_capabilities_json_round_trip() -> None:
    from hc.errors import RemoteError

    state = UploadState(id="ab", size=10, received=((0, 4), (6, 8)), expires_at=5)
    assert state.to_json() == {
        "id": "ab",
        "size": 10,
        "offset": 4,
        "received": [[0, 4], [6, 8]],
        "expiresAt": 5,
    }
    assert UploadState.from_json(state.to_json()) == state
    assert not state.complete and UploadState(id="x", size=0).complete
    with pytest.raises(RemoteError):
        UploadState.from_json({"id": "x", "size": 3, "received": [[2, 1]]})
    caps = UploadCapabilities(
        upload_sessions=True, parallel_parts=True, min_part_size=1, max_part_size=9, session_ttl_seconds=60
    )
    assert UploadCapabilities.from_json(caps.to_json()) == caps
    assert (
        UploadCapabilities.from_json({"uploadSessions": False, "parallelParts": True}) == UploadCapabilities()
    )
    assert UploadCapabilities.from_json(None) == UploadCapabilities()


async def _stalled_body(head: bytes, give_up: asyncio.Event) -> AsyncIterator[bytes]:
    """A part's body that sends ``head`` and then nothing, until ``give_up`` makes it fail."""
    yield head
    await give_up.wait()
    raise ConnectionResetError("the client went away")


async def test_a_part_for_bytes_held_by_a_failing_part_waits_and_records_them(
    long_lived: tuple[Api, Any],
) -> None:
    """The first part fails before any of its bytes land: the second must write and record its
    bytes itself, not drop them as duplicates of bytes nobody ends up holding."""
    api, state = long_lived
    await api.create_registry("gen")
    registry = await state.db.run(Catalog.get_registry, api.account, "gen")
    data = os.urandom(4000)
    upload_id = (await begin(api, data))["data"]["id"]
    give_up = asyncio.Event()
    first = asyncio.create_task(
        state.uploads.write_part(
            registry,
            upload_id,
            content_range="bytes 0-3999/4000",
            content_length=4000,
            body=_stalled_body(b"", give_up),
        )
    )
    await asyncio.sleep(0.05)  # the first part now holds [0, 4000)
    second = asyncio.create_task(patch(api, upload_id, data, 0, 2000))
    await asyncio.sleep(0.05)
    assert not second.done()  # it waits for the first part's outcome instead of dropping its bytes
    give_up.set()
    with pytest.raises(ConnectionResetError):
        await first
    await second
    assert (await get_state(api, upload_id))["offset"] == 2000  # recorded, not dropped as a duplicate


async def test_a_part_that_breaks_off_keeps_what_landed_and_the_file_commits_exactly(
    long_lived: tuple[Api, Any],
) -> None:
    api, state = long_lived
    await api.create_registry("gen")
    registry = await state.db.run(Catalog.get_registry, api.account, "gen")
    data = os.urandom(3 * 1024 * 1024)  # several batches of PART_BATCH
    upload_id = (await begin(api, data))["data"]["id"]
    give_up = asyncio.Event()
    give_up.set()
    cut = 2 * 1024 * 1024 + 12_345
    with pytest.raises(ConnectionResetError):
        await state.uploads.write_part(
            registry,
            upload_id,
            content_range=part_content_range(0, len(data), len(data)),
            content_length=len(data),
            body=_stalled_body(data[:cut], give_up),
        )
    assert (await get_state(api, upload_id))["received"] == [[0, cut]]
    await patch(api, upload_id, data, cut, len(data))
    await commit(api, upload_id, hashlib.sha256(data).hexdigest())
    assert (await api.get_bytes("gen", "pkg/1.0/big.bin"))[1] == data


async def test_a_part_longer_than_its_range_keeps_nothing(long_lived: tuple[Api, Any]) -> None:
    api, state = long_lived
    await api.create_registry("gen")
    registry = await state.db.run(Catalog.get_registry, api.account, "gen")
    data = os.urandom(4000)
    upload_id = (await begin(api, data))["data"]["id"]

    async def too_long() -> AsyncIterator[bytes]:
        yield data[:3000]
        yield data[:2000]  # 5000 bytes for a 4000-byte range

    with pytest.raises(UsageError, match="longer than"):
        await state.uploads.write_part(
            registry, upload_id, content_range="bytes 0-3999/4000", content_length=None, body=too_long()
        )
    assert (await get_state(api, upload_id))["received"] == []


async def test_a_part_whose_connection_died_unnoticed_is_ended_by_the_next_part_for_its_bytes(
    long_lived: tuple[Api, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, state = long_lived
    monkeypatch.setattr(server_uploads, "_CLAIM_CHECK_S", 0.05)
    await api.create_registry("gen")
    registry = await state.db.run(Catalog.get_registry, api.account, "gen")
    data = os.urandom(4000)
    upload_id = (await begin(api, data))["data"]["id"]
    stuck = asyncio.create_task(
        state.uploads.write_part(
            registry,
            upload_id,
            content_range="bytes 0-3999/4000",
            content_length=4000,
            body=_stalled_body(data[:2500], asyncio.Event()),  # never ends by itself
            alive=lambda: False,
        )
    )
    await asyncio.sleep(0.05)
    await patch(api, upload_id, data, 0, 4000)
    with pytest.raises(asyncio.CancelledError):
        await stuck
    await commit(api, upload_id, hashlib.sha256(data).hexdigest())
    assert (await api.get_bytes("gen", "pkg/1.0/big.bin"))[1] == data
