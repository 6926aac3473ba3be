"""Small bodies kept in registry.db (``inline_blobs``) instead of one file each: downloads, ranges,
garbage collection, migration of an older store, and a SIGKILL right after the 201s."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import pytest

from hc.server.admin import fsck
from hc.server.blobs import INLINE_BODY

from .conftest import Api
from .test_processes import ServerProcess, _create_registry, server_factory, start_server

__all__ = ["server_factory"]  # the fixture, imported so this module's tests can use it


@pytest.fixture
async def gen(api: Api) -> str:
    await api.create_registry("gen")
    return "gen"


async def test_small_bodies_live_in_the_database_larger_ones_in_files(api: Api, gen: str) -> None:
    bodies = {
        "p/1/small": os.urandom(4096),
        "p/1/edge": os.urandom(INLINE_BODY),
        "p/1/big": os.urandom(INLINE_BODY + 1),
    }
    for path, data in bodies.items():
        await api.put(gen, path, data)
    assert [p.name for p in api.blob_files()] == [hashlib.sha256(bodies["p/1/big"]).hexdigest()]
    assert api.stored_blobs() == sorted(hashlib.sha256(d).hexdigest() for d in bodies.values())
    for path, data in bodies.items():
        status, got, headers = await api.get_bytes(gen, path)
        assert (status, got) == (200, data)
        assert headers["X-Checksum-Sha256"] == hashlib.sha256(data).hexdigest()
        async with api.session.head(api.file_url(gen, path)) as response:
            assert response.status == 200
            assert response.headers["Content-Length"] == str(len(data))
            assert await response.read() == b""
    assert fsck(api.data_dir).clean


async def test_a_group_of_inline_and_file_bodies_keeps_each_answer_with_its_upload(
    api: Api, gen: str
) -> None:
    """Concurrent small PUTs are stored as one group (hc.server.smallputs): bodies of both kinds,
    some refused, must each get their own outcome and bytes."""
    sizes = [4096, INLINE_BODY + 100, 10, 300_000] * 5
    payloads = {f"p/1/f{i}": os.urandom(size) for i, size in enumerate(sizes)}
    bad = {path for i, path in enumerate(payloads) if i % 3 == 0}

    async def put(path: str, data: bytes) -> int:
        digest = "0" * 64 if path in bad else hashlib.sha256(data).hexdigest()
        headers = {"X-Checksum-Sha256": digest}
        async with api.session.put(api.file_url(gen, path), data=data, headers=headers) as response:
            return response.status

    statuses = await asyncio.gather(*(put(path, data) for path, data in payloads.items()))
    assert statuses == [400 if path in bad else 201 for path in payloads]
    for path, data in payloads.items():
        status, got, _ = await api.get_bytes(gen, path)
        if path in bad:
            assert status == 404
        else:
            assert (status, got) == (200, data)
    assert api.stored_blobs() == sorted(
        hashlib.sha256(d).hexdigest() for p, d in payloads.items() if p not in bad
    )
    assert fsck(api.data_dir).clean


async def test_ranges_of_a_body_kept_in_the_database(api: Api, gen: str) -> None:
    data = os.urandom(4096)
    await api.put(gen, "p/1/r.bin", data)
    status, body, headers = await api.get_bytes(gen, "p/1/r.bin", headers={"Range": "bytes=10-99"})
    assert (status, body) == (206, data[10:100])
    assert headers["Content-Range"] == f"bytes 10-99/{len(data)}"
    status, body, _ = await api.get_bytes(gen, "p/1/r.bin", headers={"Range": "bytes=-5"})
    assert (status, body) == (206, data[-5:])
    status, _, headers = await api.get_bytes(gen, "p/1/r.bin", headers={"Range": f"bytes={len(data)}-"})
    assert status == 416
    etag = headers["ETag"]
    status, body, _ = await api.get_bytes(gen, "p/1/r.bin", headers={"Range": "bytes=0-9", "If-Range": etag})
    assert (status, body) == (206, data[:10])
    stale = {"Range": "bytes=0-9", "If-Range": '"0000"'}
    assert (await api.get_bytes(gen, "p/1/r.bin", headers=stale))[:2] == (200, data)
    assert (await api.get_bytes(gen, "p/1/r.bin", headers={"If-None-Match": etag}))[:2] == (304, b"")


async def test_a_body_goes_with_its_last_reference(api: Api, gen: str) -> None:
    await api.put(gen, "p/1/a", b"shared")
    await api.put(gen, "p/2/a", b"shared")
    await api.put(gen, "p/1/b", b"first")
    await api.put(gen, "p/1/b?overwrite=true", b"second", status=200)
    assert api.stored_blobs() == sorted(hashlib.sha256(d).hexdigest() for d in (b"shared", b"second"))
    async with api.session.delete(api.file_url(gen, "p/1/a")) as response:
        assert response.status == 204
    assert (await api.get_bytes(gen, "p/2/a"))[:2] == (200, b"shared")  # still referenced
    async with api.session.delete(api.file_url(gen, "p/2/a")) as response:
        assert response.status == 204
    assert api.stored_blobs() == [hashlib.sha256(b"second").hexdigest()]
    assert fsck(api.data_dir).clean


async def test_a_store_written_before_inline_bodies_is_migrated(tmp_path: Path) -> None:
    from hc.server.embedded import serve_embedded

    data_dir = tmp_path / "store"
    async with serve_embedded(data_dir):
        pass
    with contextlib.closing(sqlite3.connect(data_dir / "registry.db")) as db, db:
        db.execute("DROP TABLE inline_blobs")  # as schema 2 left it
        db.execute("PRAGMA user_version = 2")
    async with (
        serve_embedded(data_dir) as server,
        aiohttp.ClientSession(headers={"x-api-key": server.token}) as s,
    ):
        api = Api(server=server, session=s, data_dir=data_dir)
        await api.create_registry("gen")
        await api.put("gen", "p/1/f", b"after the upgrade")
        assert (await api.get_bytes("gen", "p/1/f"))[:2] == (200, b"after the upgrade")
    assert fsck(data_dir).clean


def test_small_uploads_answered_201_survive_a_sigkill(
    data_dir: Path, server_factory: tuple[str, list[ServerProcess]]
) -> None:
    """A 201 means the body and its row are committed: killing the server right after loses neither."""
    token, started = server_factory
    server = start_server(data_dir, token)
    started.append(server)
    _create_registry(server)
    payloads = {f"p/1/f{i}.bin": os.urandom(4096) for i in range(64)}

    def upload(item: tuple[str, bytes]) -> int:
        path, data = item
        headers = {"X-Checksum-Sha256": hashlib.sha256(data).hexdigest()}
        return server.request("PUT", f"/pkg/local/gen/files/{path}", data, headers)[0]

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(upload, payloads.items()))
    assert set(statuses) == {201}
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=30)
    assert fsck(data_dir).clean
    restarted = start_server(data_dir, token)
    started.append(restarted)
    for path, data in payloads.items():
        assert restarted.request("GET", f"/pkg/local/gen/files/{path}") == (200, data)
