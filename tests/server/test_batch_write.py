"""Batch writes (``POST …/batch-write``, hc.protocol.batchwrite): each file stored exactly as its
own PUT would be, and the client's uploader (hc.api.batchwrite) against it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from typing import Any

import aiohttp
import pytest

from hc.api.batchwrite import BatchUploader
from hc.errors import Conflict, IntegrityError, TransientError
from hc.protocol.batchwrite import (
    BATCH_WRITE_CONTENT_TYPE,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FILES,
    WriteRecord,
    WriteResult,
)
from hc.server.blobs import INLINE_BODY

from .conftest import V3, Api


@pytest.fixture
async def gen(api: Api) -> str:
    await api.create_registry("gen")
    return "gen"


def _url(api: Api, registry: str) -> str:
    return api.url(f"/pkg/{api.account}/{registry}/batch-write")


def _body(files: list[tuple[str, bytes]], *, sha256: dict[str, str] | None = None) -> bytes:
    parts = []
    for name, data in files:
        digest = (sha256 or {}).get(name, hashlib.sha256(data).hexdigest())
        parts += [WriteRecord(name, len(data), digest).encode(), data]
    return b"".join(parts)


async def _post(
    api: Api, registry: str, body: bytes, *, status: int = 200, query: str = "", **headers: str
) -> Any:
    sent = {"Content-Type": BATCH_WRITE_CONTENT_TYPE, **headers}
    async with api.session.post(_url(api, registry) + query, data=body, headers=sent) as response:
        text = await response.text()
        assert response.status == status, text
        return json.loads(text) if text else None


async def _results(
    api: Api, registry: str, files: list[tuple[str, bytes]], **kwargs: Any
) -> list[WriteResult]:
    answer = await _post(api, registry, _body(files, sha256=kwargs.pop("sha256", None)), **kwargs)
    return [WriteResult.from_json(r) for r in answer["data"]["results"]]


async def test_each_file_gets_what_its_own_put_would_have(api: Api, gen: str) -> None:
    small, large = os.urandom(4096), os.urandom(INLINE_BODY + 1)
    first = await _results(api, gen, [("p/1/small", small), ("p/1/dir/large", large), ("p/1/empty", b"")])
    assert [(r.file, r.status) for r in first] == [
        ("p/1/small", 201),
        ("p/1/dir/large", 201),
        ("p/1/empty", 201),
    ]
    assert first[1].sha256 == hashlib.sha256(large).hexdigest()
    for path, data in (("p/1/small", small), ("p/1/dir/large", large), ("p/1/empty", b"")):
        status, got, _ = await api.get_bytes(gen, path)
        assert (status, got) == (200, data)

    other = os.urandom(100)
    again = await _results(
        api,
        gen,
        [("p/1/small", small), ("p/1/dir/large", other), ("p/1/../x", b"x"), ("p/1/bad", b"bytes")],
        sha256={"p/1/bad": "0" * 64},
    )
    assert [r.status for r in again] == [200, 409, 400, 400]  # identical; conflict; bad path; mismatch
    assert again[3].code == "CHECKSUM_MISMATCH"
    assert (await api.get_bytes(gen, "p/1/dir/large"))[1] == large  # never silently replaced
    assert (await api.get_bytes(gen, "p/1/bad"))[0] == 404  # nothing stored for a mismatch

    replaced = await _results(api, gen, [("p/1/dir/large", other)], query="?overwrite=true")
    assert [r.status for r in replaced] == [200]
    assert (await api.get_bytes(gen, "p/1/dir/large"))[1] == other


async def test_the_capability_is_advertised(api: Api) -> None:
    info = (await api.json("GET", f"{V3}/system/info?account_identifier={api.account}"))["data"]["hc"]
    assert (info["batchWriteMaxFiles"], info["batchWriteMaxBytes"]) == (DEFAULT_MAX_FILES, DEFAULT_MAX_BYTES)
    assert info["batchWriteMaxFileSize"] > INLINE_BODY


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not a header\n", 400),
        (WriteRecord("p/1/a", 10, "0" * 64).encode() + b"short", 400),  # ends inside the bytes
        (b"", 400),
        (b"".join(WriteRecord(f"p/1/f{i}", 0, "").encode() for i in range(DEFAULT_MAX_FILES + 1)), 400),
        (WriteRecord("p/1/a", DEFAULT_MAX_BYTES + 1, "").encode() + bytes(DEFAULT_MAX_BYTES + 1), 413),
    ],
    ids=["malformed", "cut", "empty", "too-many", "too-large"],
)
async def test_a_malformed_batch_stores_nothing(api: Api, gen: str, body: bytes, status: int) -> None:
    await _post(api, gen, body, status=status)
    for name in ("p/1/a", "p/1/f0"):
        assert (await api.get_bytes(gen, name))[0] == 404
    assert api.stored_blobs() == []


async def test_a_request_damaged_on_the_way_is_refused_whole(api: Api, gen: str) -> None:
    meant = _body([("p/1/a", b"aaaa")])
    arrived = _body([("p/1/b", b"aaaa")])  # one flipped bit in a path would do the same
    declared = hashlib.sha256(meant).hexdigest()
    answer = await _post(api, gen, arrived, status=400, **{"X-Checksum-Sha256": declared})
    assert answer["code"] == "CHECKSUM_MISMATCH"
    assert (await api.get_bytes(gen, "p/1/b"))[0] == 404
    await _post(api, gen, meant, **{"X-Checksum-Sha256": declared})
    assert (await api.get_bytes(gen, "p/1/a"))[1] == b"aaaa"


async def test_the_uploader_batches_concurrent_writes_and_raises_each_files_own_error(
    api: Api, gen: str
) -> None:
    await api.put(gen, "p/1/taken", b"old")
    files = {f"p/1/f{i:03d}": os.urandom(50 + i) for i in range(300)}
    uploader = BatchUploader(
        api.session,
        _url(api, gen),
        dict,
        max_files=DEFAULT_MAX_FILES,
        max_bytes=DEFAULT_MAX_BYTES,
        overwrite=False,
    )

    async def write(name: str, data: bytes, sha256: str | None = None) -> int:
        return await uploader.write(name, data, sha256=sha256 or hashlib.sha256(data).hexdigest())

    got = await asyncio.gather(
        *(write(name, data) for name, data in files.items()),
        write("p/1/taken", b"new"),
        write("p/1/lied", b"data", sha256="1" * 64),
        return_exceptions=True,
    )
    assert got[:-2] == [201] * len(files)
    assert isinstance(got[-2], Conflict) and isinstance(got[-1], IntegrityError)
    for name in ("p/1/f000", "p/1/f299"):
        assert (await api.get_bytes(gen, name))[1] == files[name]


async def test_the_uploader_reports_an_answer_that_does_not_match_as_transient(api: Api, gen: str) -> None:
    # a reverse proxy that answers with someone else's results: every file must be sent again
    async def swap(request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response(
            {"status": "SUCCESS", "data": {"results": [{"file": "x", "status": 201}]}}
        )

    app = aiohttp.web.Application()
    app.router.add_post("/bw", swap)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/bw"
        async with aiohttp.ClientSession() as session:
            uploader = BatchUploader(session, url, dict, max_files=10, max_bytes=1 << 20, overwrite=False)
            with pytest.raises(TransientError):
                await uploader.write("p/1/a", b"a", sha256=hashlib.sha256(b"a").hexdigest())
    finally:
        await runner.cleanup()
