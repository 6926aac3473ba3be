"""A file body sent by the kernel (``hc.api._filebody.SendfileBody``) against real loopback servers.

Over plain HTTP the bytes go with ``sendfile``; over TLS they are read and written as a streamed
body would be. Either way the receiver gets exactly the file's bytes, the source counts them, and
a file that shrinks while it is sent fails the request instead of ending it early.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hc.api._filebody import SendfileBody
from hc.transfer._files import CountingSource, FileSource, FileStamp

from .conftest import make_self_signed_cert

KiB = 1024
MiB = 1024 * KiB

pytestmark = pytest.mark.skipif(not hasattr(os, "sendfile"), reason="the kernel path needs os.sendfile")


class Receiver:
    """Answers every PUT with the sha256 and length of the body it read whole, and remembers the
    lengths of the bodies it read whole."""

    def __init__(self) -> None:
        self.whole: list[int] = []

    async def put(self, request: web.Request) -> web.Response:
        digest, length = hashlib.sha256(), 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            length += len(chunk)
        self.whole.append(length)
        return web.json_response({"sha256": digest.hexdigest(), "length": length})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * MiB)
        app.router.add_put("/f", self.put)
        return app


@pytest.fixture
def kernel_sends(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The byte counts asyncio's ``loop.sendfile`` was asked to send, in order."""
    counts: list[int] = []
    original = asyncio.BaseEventLoop.sendfile

    async def counting(
        self: Any, transport: Any, file: Any, offset: int = 0, count: int | None = None, **kw: Any
    ) -> int:
        counts.append(count or 0)
        return await original(self, transport, file, offset, count, **kw)

    monkeypatch.setattr(asyncio.BaseEventLoop, "sendfile", counting)
    return counts


def _file(tmp_path: Path, size: int) -> tuple[Path, bytes]:
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    return path, data


def _source(path: Path, size: int, on_bytes: Callable[[int], None], **kw: Any) -> CountingSource:
    return CountingSource(FileSource(path, length=size, buffer_size=1 * MiB, **kw), on_bytes)


async def _put(url: str, body: SendfileBody, size: int, **kw: Any) -> dict[str, Any]:
    headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
    async with (
        aiohttp.ClientSession() as session,
        session.put(url, data=body, headers=headers, **kw) as response,
    ):
        assert response.status == 200
        answer: dict[str, Any] = await response.json()
        return answer


async def test_over_plain_http_the_kernel_sends_the_exact_bytes(
    tmp_path: Path, kernel_sends: list[int]
) -> None:
    size = 3 * MiB + 12_345  # regions of 1 MiB and a short last one
    path, data = _file(tmp_path, size)
    counted: list[int] = []
    async with TestServer(Receiver().app()) as server:
        answer = await _put(
            str(server.make_url("/f")), SendfileBody(_source(path, size, counted.append)), size
        )
    assert answer == {"sha256": hashlib.sha256(data).hexdigest(), "length": size}
    assert kernel_sends == [MiB, MiB, MiB, 12_345]
    assert sum(counted) == size


async def test_over_tls_the_bytes_are_copied_and_still_exact(tmp_path: Path, kernel_sends: list[int]) -> None:
    cert, key = make_self_signed_cert(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    size = 2 * MiB + 7
    path, data = _file(tmp_path, size)
    server = TestServer(Receiver().app())
    await server.start_server(ssl=server_context)
    try:
        url = str(server.make_url("/f"))
        assert url.startswith("https://")
        answer = await _put(url, SendfileBody(_source(path, size, lambda n: None)), size, ssl=client_context)
    finally:
        await server.close()
    assert answer == {"sha256": hashlib.sha256(data).hexdigest(), "length": size}
    assert kernel_sends == []  # TLS: nothing went through sendfile


async def test_a_file_cut_short_while_it_is_sent_fails_the_request(tmp_path: Path) -> None:
    size = 4 * MiB
    path, _ = _file(tmp_path, size)
    receiver = Receiver()
    taken: list[int] = []

    def truncate_after_first_region(count: int) -> None:
        taken.append(count)
        if len(taken) == 1:
            os.truncate(path, MiB + 100)  # the second region now ends early, the rest is gone

    async with TestServer(receiver.app()) as server:
        body = SendfileBody(_source(path, size, truncate_after_first_region))
        with pytest.raises(aiohttp.ClientError):  # not a wait for bytes that will never come
            await asyncio.wait_for(_put(str(server.make_url("/f")), body, size), timeout=30)
        await asyncio.sleep(0.2)  # time for a body the server did get whole to be answered
    assert receiver.whole == []


async def test_a_file_changed_since_it_was_hashed_is_refused_before_its_last_region(tmp_path: Path) -> None:
    size = 2 * MiB
    path, _ = _file(tmp_path, size)
    stamp = FileStamp.of(path.stat())
    source = _source(path, size, lambda n: None, expect=stamp)
    regions = source.open_regions()
    first = await anext(regions)
    assert (first.offset, first.count) == (0, MiB)
    with path.open("r+b") as f:  # rewritten in place: same size, new mtime
        f.write(b"x")
    os.utime(path, ns=(stamp.mtime_ns + 1_000_000_000, stamp.mtime_ns + 1_000_000_000))
    with pytest.raises(Exception, match="changed while it was uploaded"):
        await anext(regions)
    assert source.failure is not None  # the engine sees the file's failure, not a broken request


async def test_closing_the_source_waits_for_the_region_being_sent(tmp_path: Path) -> None:
    size = 2 * MiB
    path, _ = _file(tmp_path, size)
    source = FileSource(path, length=size, buffer_size=MiB)
    regions = source.open_regions()
    region = await anext(regions)
    source.close()  # the engine gives up on the attempt while the kernel still sends
    os.fstat(region.fd)  # still open: its number cannot have gone to another file
    await regions.aclose()  # the region is handed back
    with pytest.raises(OSError):
        os.fstat(region.fd)
