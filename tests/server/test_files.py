"""Generic files through /pkg/{account}/{registry}/files/...: bytes, checksums, re-uploads, ranges."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from hc.protocol.digest import CHECKSUM_HEADERS, MultiHasher

from .conftest import V1, Api

SMALL = b"hello, registry\n"


def _headers_for(data: bytes) -> dict[str, str]:
    hasher = MultiHasher()
    hasher.update(data)
    return hasher.result().headers()


@pytest.fixture
async def gen(api: Api) -> str:
    await api.create_registry("gen")
    return "gen"


@pytest.mark.parametrize("size", [0, 1, 4096, 1 << 20, (3 << 20) + 17])
async def test_round_trip_returns_the_exact_bytes_and_all_checksums(api: Api, gen: str, size: int) -> None:
    data = os.urandom(size)
    body = await api.put(gen, "pkg/1.0/dir/blob.bin", data, headers=_headers_for(data))
    assert body["data"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["data"]["size"] == size
    status, got, headers = await api.get_bytes(gen, "pkg/1.0/dir/blob.bin")
    assert status == 200
    assert got == data
    assert headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert headers["Content-Length"] == str(size)
    for algorithm, header in CHECKSUM_HEADERS.items():
        assert headers[header] == hashlib.new(algorithm, data).hexdigest()
    assert headers["Content-Disposition"] == 'attachment; filename="blob.bin"'
    assert api.tmp_files() == []


async def test_chunked_upload_without_content_length(api: Api, gen: str) -> None:
    data = os.urandom((2 << 20) + 5)

    async def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, len(data), 300_000):
            yield data[i : i + 300_000]

    async with api.session.put(api.file_url(gen, "p/1/chunked.bin"), data=chunks()) as response:
        assert response.status == 201
    assert (await api.get_bytes(gen, "p/1/chunked.bin"))[1] == data


@pytest.mark.parametrize("size", [100, (2 << 20) + 1])
async def test_checksum_mismatch_stores_nothing(api: Api, gen: str, size: int) -> None:
    data = os.urandom(size)
    headers = _headers_for(data)
    headers["X-Checksum-Md5"] = "0" * 32
    async with api.session.put(api.file_url(gen, "p/1/bad.bin"), data=data, headers=headers) as response:
        assert response.status == 400
        body = await response.json()
    assert body["code"] == "CHECKSUM_MISMATCH"
    assert "md5" in body["message"] and "nothing was stored" in body["message"]
    assert api.stored_blobs() == []
    assert api.tmp_files() == []
    assert (await api.get_bytes(gen, "p/1/bad.bin"))[0] == 404


async def test_malformed_checksum_header_is_refused(api: Api, gen: str) -> None:
    async with api.session.put(
        api.file_url(gen, "p/1/x"), data=b"x", headers={"X-Checksum-Sha256": "not-hex"}
    ) as response:
        assert response.status == 400
        assert "X-Checksum-Sha256" in (await response.json())["message"]


async def test_short_body_stores_nothing(api: Api, gen: str) -> None:
    """A client that promises more bytes than it sends (then hangs up) leaves nothing behind."""
    parts = urlsplit(api.base)
    _, writer = await asyncio.open_connection(parts.hostname, parts.port)
    request = (
        f"PUT /pkg/{api.account}/{gen}/files/p/1/short.bin HTTP/1.1\r\n"
        f"Host: {parts.netloc}\r\nx-api-key: {api.server.token}\r\n"
        "Content-Length: 5000000\r\n\r\n"
    ).encode()
    writer.write(request + os.urandom(3_000_000))
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    for _ in range(100):  # the server notices the hang-up asynchronously
        if not api.tmp_files():
            break
        await asyncio.sleep(0.05)
    assert api.tmp_files() == []
    assert api.stored_blobs() == []
    assert (await api.get_bytes(gen, "p/1/short.bin"))[0] == 404


async def test_reupload_rule(api: Api, gen: str) -> None:
    first, second = b"first version", b"second version"
    created = await api.put(gen, "p/1/f.txt", first, status=201)
    assert created["data"]["outcome"] == "created"
    same = await api.put(gen, "p/1/f.txt", first, status=200)
    assert same["data"]["outcome"] == "unchanged"
    async with api.session.put(api.file_url(gen, "p/1/f.txt"), data=second) as response:
        assert response.status == 409
        assert "overwrite" in (await response.json())["message"]
    assert (await api.get_bytes(gen, "p/1/f.txt"))[1] == first
    replaced = await api.put(gen, "p/1/f.txt?overwrite=true", second, status=200)
    assert replaced["data"]["outcome"] == "replaced"
    assert (await api.get_bytes(gen, "p/1/f.txt"))[1] == second
    await api.put(gen, "p/1/f.txt", first, status=200, headers={"X-Hc-Overwrite": "true"})
    assert (await api.get_bytes(gen, "p/1/f.txt"))[1] == first
    # the replaced bytes are no longer referenced, so their blob is gone
    assert len(api.stored_blobs()) == 1


async def test_range_requests(api: Api, gen: str) -> None:
    data = os.urandom(200_000)  # large enough for the sendfile path
    await api.put(gen, "p/1/r.bin", data)
    status, body, headers = await api.get_bytes(gen, "p/1/r.bin", headers={"Range": "bytes=10-99"})
    assert (status, body) == (206, data[10:100])
    assert headers["Content-Range"] == f"bytes 10-99/{len(data)}"
    status, body, headers = await api.get_bytes(gen, "p/1/r.bin", headers={"Range": "bytes=150000-"})
    assert (status, body) == (206, data[150_000:])
    status, body, _ = await api.get_bytes(gen, "p/1/r.bin", headers={"Range": "bytes=-5"})
    assert (status, body) == (206, data[-5:])
    status, _, headers = await api.get_bytes(gen, "p/1/r.bin", headers={"Range": f"bytes={len(data)}-"})
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{len(data)}"
    etag = headers["ETag"]
    status, body, _ = await api.get_bytes(gen, "p/1/r.bin", headers={"Range": "bytes=0-9", "If-Range": etag})
    assert (status, body) == (206, data[:10])
    stale = {"Range": "bytes=0-9", "If-Range": '"0000"'}
    status, body, _ = await api.get_bytes(gen, "p/1/r.bin", headers=stale)
    assert (status, body) == (200, data)
    status, body, _ = await api.get_bytes(gen, "p/1/r.bin", headers={"If-None-Match": etag})
    assert (status, body) == (304, b"")


async def test_head_reports_size_and_digest_without_a_body(api: Api, gen: str) -> None:
    data = os.urandom(70_000)
    await api.put(gen, "p/1/h.bin", data)
    async with api.session.head(api.file_url(gen, "p/1/h.bin")) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(data))
        assert response.headers["X-Checksum-Sha256"] == hashlib.sha256(data).hexdigest()
        assert await response.read() == b""
    async with api.session.head(api.file_url(gen, "p/1/missing.bin")) as response:
        assert response.status == 404


async def test_escaped_slashes_in_the_file_path_are_accepted(api: Api, gen: str) -> None:
    """``pull generic`` in the Go CLI sends package%2Fversion%2Ffile as one parameter."""
    await api.put(gen, "p/1/a b#c.txt".replace(" ", "%20").replace("#", "%23"), SMALL)
    status, body, headers = await api.get_bytes(gen, "p%2F1%2Fa%20b%23c.txt")
    assert (status, body) == (200, SMALL)
    assert headers["Content-Disposition"] == 'attachment; filename="a b#c.txt"'


@pytest.mark.parametrize("path", ["p/1/../x", "p/1/a//b", "p/1", "p/../1/x", "p/1/%2E%2E/x"])
async def test_unsafe_or_incomplete_paths_are_refused(api: Api, gen: str, path: str) -> None:
    async with api.session.put(api.file_url(gen, path), data=SMALL) as response:
        assert response.status == 400, path
    assert api.stored_blobs() == []


async def test_non_generic_registry_refuses_files(api: Api) -> None:
    await api.create_registry("pypi", "PYTHON")
    async with api.session.put(api.file_url("pypi", "p/1/x.whl"), data=SMALL) as response:
        assert response.status == 400
        assert "PYTHON" in (await response.json())["message"]


async def test_raw_registry_addresses_files_by_path(api: Api) -> None:
    await api.create_registry("raw", "RAW")
    await api.put("raw", "docs/readme.txt", SMALL)
    assert (await api.get_bytes("raw", "docs/readme.txt"))[1] == SMALL
    async with api.session.head(api.file_url("raw", "docs/readme.txt")) as response:
        assert response.status == 200


async def test_unknown_registry_is_404(api: Api) -> None:
    async with api.session.put(api.file_url("nope", "p/1/x"), data=SMALL) as response:
        assert response.status == 404


async def test_delete_removes_the_file_and_its_unshared_blob(api: Api, gen: str) -> None:
    await api.put(gen, "p/1/a.txt", SMALL)
    await api.put(gen, "p/2/a.txt", SMALL)  # same bytes: one blob
    assert len(api.stored_blobs()) == 1
    async with api.session.delete(api.file_url(gen, "p/1/a.txt")) as response:
        assert response.status == 204
    assert (await api.get_bytes(gen, "p/1/a.txt"))[0] == 404
    assert len(api.stored_blobs()) == 1  # still used by p/2
    async with api.session.delete(api.file_url(gen, "p/2/a.txt")) as response:
        assert response.status == 204
    assert api.stored_blobs() == []
    async with api.session.delete(api.file_url(gen, "p/2/a.txt")) as response:
        assert response.status == 404


async def test_files_appear_in_listings_with_sizes_counts_and_checksums(api: Api, gen: str) -> None:
    a, b = os.urandom(1000), os.urandom(3000)
    await api.put(gen, "tool/2.0/bin/a", a)
    await api.put(gen, "tool/2.0/b", b)
    files = await api.json("GET", f"{V1}/registry/{api.account}%2F{gen}/+/artifact/tool/+/version/2.0/files")
    by_name = {f["name"]: f for f in files["data"]["files"]}
    assert set(by_name) == {"bin/a", "b"}
    assert f"SHA-256: {hashlib.sha256(a).hexdigest()}" in by_name["bin/a"]["checksums"]
    assert f"MD5: {hashlib.md5(a).hexdigest()}" in by_name["bin/a"]["checksums"]
    assert by_name["b"]["size"] == "2.93KB"
    versions = await api.json("GET", f"{V1}/registry/{api.account}%2F{gen}/+/artifact/tool/+/versions")
    (version,) = versions["data"]["artifactVersions"]
    assert version["fileCount"] == 2
    v3 = await api.json("GET", f"/gateway/har/api/v3/files?account_identifier={api.account}&sort=name:asc")
    assert [(f["path"], f["size"], f["sha512"]) for f in v3["items"]] == [
        ("/b", "3000", hashlib.sha512(b).hexdigest()),
        ("/bin/a", "1000", hashlib.sha512(a).hexdigest()),
    ]


async def test_concurrent_identical_uploads_to_one_path_all_succeed(api: Api, gen: str) -> None:
    data = os.urandom(5000)

    async def put() -> int:
        async with api.session.put(api.file_url(gen, "p/1/same.bin"), data=data) as response:
            return response.status

    statuses = await asyncio.gather(*(put() for _ in range(10)))
    assert sorted(statuses) == [200] * 9 + [201]
    assert len(api.stored_blobs()) == 1


async def test_uploads_fsync_each_file_where_group_flush_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    from hc.server import blobs
    from hc.server.embedded import serve_embedded

    body = os.urandom(blobs.INLINE_BODY + 1)  # smaller bodies are kept in registry.db, not in files
    monkeypatch.setattr(blobs, "_syncfs", None)  # as where syncfs is missing: no group flush
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(blobs.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    async with (
        serve_embedded(data_dir) as server,
        aiohttp.ClientSession(headers={"x-api-key": server.token}) as s,
    ):
        async with s.post(
            f"{server.base_url}{V1}/registry?space_ref=local",
            json={"identifier": "gen", "packageType": "GENERIC"},
        ) as response:
            assert response.status == 201
        async with s.put(f"{server.base_url}/pkg/local/gen/files/p/1/f", data=body) as response:
            assert response.status == 201
        async with s.get(f"{server.base_url}/pkg/local/gen/files/p/1/f") as response:
            assert await response.read() == body
    assert len(synced) >= 2  # the file and its shard folder


async def test_a_refused_upload_does_not_undo_the_others_committed_with_it(api: Api, gen: str) -> None:
    """Concurrent small uploads share one transaction (group commit); a conflict rolls back only
    its own change."""
    await api.put(gen, "p/1/taken", b"original")
    payloads = {f"p/{i % 2}/f{i}": os.urandom(100 + i) for i in range(20)}

    async def put(path: str, data: bytes) -> int:
        async with api.session.put(api.file_url(gen, path), data=data) as response:
            return response.status

    statuses = await asyncio.gather(
        put("p/1/taken", b"different"), *(put(path, data) for path, data in payloads.items())
    )
    assert statuses == [409] + [201] * len(payloads)
    assert (await api.get_bytes(gen, "p/1/taken"))[1] == b"original"
    for path, data in payloads.items():
        assert (await api.get_bytes(gen, path))[1] == data
