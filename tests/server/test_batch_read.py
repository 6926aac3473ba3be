"""Batch reads (``POST …/batch-read``, hc.protocol.batchread): the server's answer, record by record,
and the client's coalescer (hc.api.batchread) against it and against a server that breaks off."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from hc.api.batchread import BatchReader
from hc.errors import NotFound, RemoteError, TransientError
from hc.protocol.batchread import (
    BATCH_READ_CONTENT_TYPE,
    DEFAULT_MAX_FILE_SIZE,
    DEFAULT_MAX_FILES,
    RecordHeader,
)
from hc.server.blobs import INLINE_BODY

from .conftest import V3, Api


@pytest.fixture
async def gen(api: Api) -> str:
    await api.create_registry("gen")
    return "gen"


def _batch_url(api: Api, registry: str) -> str:
    return api.url(f"/pkg/{api.account}/{registry}/batch-read")


async def _records(api: Api, registry: str, files: list[str]) -> list[tuple[RecordHeader, bytes]]:
    async with api.session.post(_batch_url(api, registry), json={"files": files}) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"] == BATCH_READ_CONTENT_TYPE
        raw = await response.read()
    records = []
    while raw:
        line, raw = raw.split(b"\n", 1)
        header = RecordHeader.decode(line)
        size = header.size if header.status == 200 else 0
        records.append((header, raw[:size]))
        raw = raw[size:]
    return records


async def test_one_answer_carries_every_file_in_request_order(api: Api, gen: str) -> None:
    bodies = {
        "p/1/inline.bin": os.urandom(4096),
        "p/1/in a file.bin": os.urandom(INLINE_BODY + 1),
        "p/1/empty": b"",
        "p/2/deep/x.txt": b"line\n" * 100,
    }
    for path, data in bodies.items():
        await api.put(gen, path, data)
    await api.put(gen, "p/1/too-big.bin", os.urandom(DEFAULT_MAX_FILE_SIZE + 1))
    asked = ["p/2/deep/x.txt", "p/1/missing", *bodies, "p/1/../etc", "p/1/too-big.bin", "p/1/inline.bin"]
    records = await _records(api, gen, asked)
    assert [h.file for h, _ in records] == asked
    got = {h.file: (h.status, body) for h, body in records}
    for path, data in bodies.items():
        assert got[path] == (200, data)
        header = next(h for h, _ in records if h.file == path)
        assert (header.size, header.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert got["p/1/missing"][0] == 404
    assert got["p/1/../etc"][0] == 400
    assert got["p/1/too-big.bin"][0] == 413


async def test_an_answer_larger_than_a_window_streams_and_a_lost_blob_fails_alone(api: Api, gen: str) -> None:
    """Bodies are read and sent window by window (about 1 MiB each): a batch of several 600 KiB
    files crosses windows in order, and a file whose blob vanished from the store is that file's
    500, not the batch's."""
    bodies = {f"p/1/f{i}": os.urandom(600 * 1024) for i in range(5)}
    for path, data in bodies.items():
        await api.put(gen, path, data)
    lost = hashlib.sha256(bodies["p/1/f2"]).hexdigest()
    (blob,) = [p for p in api.blob_files() if p.name == lost]
    blob.unlink()
    records = await _records(api, gen, list(bodies))
    assert [h.file for h, _ in records] == list(bodies)
    for header, body in records:
        if header.file == "p/1/f2":
            assert header.status == 500 and "fsck" in header.message
        else:
            assert (header.status, body) == (200, bodies[header.file])


async def test_the_capability_is_advertised(api: Api) -> None:
    info = await api.json("GET", f"{V3}/system/info?account_identifier={api.account}")
    assert info["data"]["hc"]["batchReadMaxFiles"] == DEFAULT_MAX_FILES
    assert info["data"]["hc"]["batchReadMaxFileSize"] == DEFAULT_MAX_FILE_SIZE


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"files": "p/1/a"}', b'{"files": []}', b'{"files": [1]}', b"[]"],
    ids=["not-json", "not-a-list", "empty", "not-strings", "not-an-object"],
)
async def test_a_malformed_request_is_refused_whole(api: Api, gen: str, body: bytes) -> None:
    async with api.session.post(
        _batch_url(api, gen), data=body, headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 400


async def test_a_request_damaged_on_the_way_is_refused_whole(api: Api, gen: str) -> None:
    await api.put(gen, "p/1/a", b"a")
    body = json.dumps({"files": ["p/1/a"]}).encode()
    sent = json.dumps({"files": ["p/1/b"]}).encode()  # one flipped bit would do the same
    headers = {"Content-Type": "application/json", "X-Checksum-Sha256": hashlib.sha256(body).hexdigest()}
    async with api.session.post(_batch_url(api, gen), data=sent, headers=headers) as response:
        assert response.status == 400
        assert "CHECKSUM_MISMATCH" in await response.text()
    async with api.session.post(_batch_url(api, gen), data=body, headers=headers) as response:
        assert response.status == 200


async def test_too_many_files_and_foreign_keys_are_refused(api: Api, gen: str) -> None:
    files = [f"p/1/f{i}" for i in range(DEFAULT_MAX_FILES + 1)]
    async with api.session.post(_batch_url(api, gen), json={"files": files}) as response:
        assert response.status == 400
        assert str(DEFAULT_MAX_FILES) in await response.text()
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.post(_batch_url(api, gen), json={"files": ["p/1/a"]}) as response,
    ):
        assert response.status == 401


async def test_a_raw_registry_is_read_by_path_alone(api: Api) -> None:
    await api.create_registry("raw", "RAW")
    await api.put("raw", "dir/a.bin", b"raw bytes")
    records = await _records(api, "raw", ["dir/a.bin"])
    assert [(h.status, body) for h, body in records] == [(200, b"raw bytes")]


# -- the client's coalescer ---------------------------------------------------------------------


def _reader(api: Api, registry: str, url: str | None = None) -> BatchReader:
    return BatchReader(api.session, url or _batch_url(api, registry), dict, max_files=DEFAULT_MAX_FILES)


async def test_concurrent_reads_share_requests_and_each_gets_its_own_bytes(api: Api, gen: str) -> None:
    bodies = {f"p/1/f{i:03d}": os.urandom(100 + i) for i in range(300)}
    bodies["p/1/in a file"] = os.urandom(INLINE_BODY * 2)
    await asyncio.gather(*(api.put(gen, path, data) for path, data in bodies.items()))
    posts = 0

    async def count(
        session: aiohttp.ClientSession, ctx: object, params: aiohttp.TraceRequestStartParams
    ) -> None:
        nonlocal posts
        posts += params.method == "POST"

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(count)
    async with aiohttp.ClientSession(headers=api.session.headers, trace_configs=[trace]) as session:
        reader = BatchReader(session, _batch_url(api, gen), dict, max_files=DEFAULT_MAX_FILES)
        got = await asyncio.gather(
            *(reader.read(path) for path in bodies), reader.read("p/1/nope"), return_exceptions=True
        )
    assert got[:-1] == list(bodies.values())
    assert isinstance(got[-1], NotFound)
    assert posts == 2  # all 302 asked in one loop turn: 256 to a request at most


@pytest.fixture
async def breaking_server() -> AsyncIterator[str]:
    """Answers a batch read with the first record whole, then half of the second, then hangs up."""

    async def handler(request: web.Request) -> web.StreamResponse:
        files = (await request.json())["files"]
        response = web.StreamResponse(headers={"Content-Type": BATCH_READ_CONTENT_TYPE})
        await response.prepare(request)
        await response.write(RecordHeader(files[0], 200, size=3, sha256="0" * 64).encode() + b"abc")
        await response.write(RecordHeader(files[1], 200, size=10, sha256="0" * 64).encode() + b"abcde")
        assert request.transport is not None
        request.transport.close()
        return response

    app = web.Application()
    app.router.add_post("/batch", handler)

    async def not_a_batch(request: web.Request) -> web.Response:
        return web.json_response({"files": []})

    app.router.add_post("/json", not_a_batch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_a_broken_answer_fails_only_the_files_it_did_not_deliver(breaking_server: str) -> None:
    async with aiohttp.ClientSession() as session:
        reader = BatchReader(session, breaking_server + "/batch", dict, max_files=10)
        # four asked at once: two requests of two (the queue is shared by the two request slots),
        # each answered with its first file whole and then cut inside the second
        got = await asyncio.gather(*(reader.read(name) for name in "abcd"), return_exceptions=True)
        assert got[0] == b"abc" and got[2] == b"abc"
        assert isinstance(got[1], TransientError) and isinstance(got[3], TransientError)
        wrong = BatchReader(session, breaking_server + "/json", dict, max_files=10)
        with pytest.raises(RemoteError, match="not a batch read"):
            await wrong.read("a")


def test_record_headers_refuse_what_cannot_be_trusted() -> None:
    assert RecordHeader.decode(RecordHeader("p/1/a", 200, size=3, sha256="ab").encode()) == RecordHeader(
        "p/1/a", 200, size=3, sha256="ab"
    )
    for line in (
        b"nope",
        b"[]",
        b'{"status": 200}',
        json.dumps({"file": "a", "status": 200, "size": -1}).encode(),
    ):
        with pytest.raises(TransientError):  # damaged on the way, most likely: ask again
            RecordHeader.decode(line)
