"""``hc.api.files``: what HarnessRemote sends and how it reads answers, against a recording server.

The server here is a real aiohttp server on 127.0.0.1 that records each request and answers as
scripted (redirects, errors, ranges), so the wire details users rely on are pinned: an explicit
Content-Length on streamed uploads, the four checksum headers, raw ``/`` between path segments,
Range/If-Range, and errors mapped to ``hc.errors``.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hc.api import Endpoint, RegistryClient
from hc.api._http import NO_RETRY
from hc.api.files import (
    GenericFile,
    HarnessRemote,
    RemoteFeatures,
    content_disposition_filename,
    features_from_system_info,
)
from hc.errors import Conflict, IntegrityError, RateLimited, RemoteError, TransientError
from hc.protocol.digest import MultiHasher
from hc.transfer.remote import FileEntry, FileRef, Remote, RemoteCapabilities

TOKEN = "pat.acct.key.secret"


@dataclass
class Recorded:
    method: str
    raw_path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """Records requests; ``respond`` decides the answer (default: 201 for PUT, the body for GET)."""

    seen: list[Recorded] = field(default_factory=list)
    respond: Callable[[web.Request, bytes], Awaitable[web.StreamResponse]] | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Recorded(request.method, request.raw_path, dict(request.headers), body))
        if self.respond is not None:
            return await self.respond(request, body)
        return web.Response(status=201)


@pytest.fixture
async def recorder(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> AsyncIterator[tuple[Recorder, str]]:
    rec = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    server = await aiohttp_server(app)
    yield rec, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def remote(recorder: tuple[Recorder, str]) -> AsyncIterator[HarnessRemote]:
    _, url = recorder
    async with aiohttp.ClientSession() as session:
        endpoint = Endpoint(api_url=url, pkg_url=url, account="acct", token=TOKEN)
        client = RegistryClient(session=session, endpoint=endpoint, retry=NO_RETRY)
        yield HarnessRemote(client, "gen")


class Source:
    """A re-openable body, as the engine hands it in."""

    def __init__(self, data: bytes, chunk: int = 64 * 1024) -> None:
        self.data, self.chunk, self.opened = data, chunk, 0

    @property
    def size(self) -> int:
        return len(self.data)

    async def open(self) -> AsyncIterator[bytes]:
        self.opened += 1
        for start in range(0, len(self.data), self.chunk):
            yield self.data[start : start + self.chunk]


def _checksums(data: bytes) -> Any:
    hasher = MultiHasher()
    hasher.update(data)
    return hasher.result()


# -- shape -----------------------------------------------------------------------------------------


def _members(protocol: type) -> list[str]:
    return [name for name in vars(protocol) if not name.startswith("_")]


def test_harness_remote_has_every_member_of_the_remote_protocol_with_the_same_parameters() -> None:
    for name in _members(Remote):
        ours, theirs = getattr(HarnessRemote, name), getattr(Remote, name)
        if isinstance(theirs, property):
            assert isinstance(ours, property), name
            continue
        mine, wanted = inspect.signature(ours).parameters, inspect.signature(theirs).parameters
        assert list(mine)[: len(wanted)] == list(wanted), name
        # anything extra is an optional keyword the engine never has to pass
        extra = [mine[p] for p in list(mine)[len(wanted) :]]
        assert all(p.default is not inspect.Parameter.empty for p in extra), name
    for name in [*_members(FileEntry), "package", "version", "path"]:
        assert name in GenericFile.__dataclass_fields__, name
    for name in _members(RemoteCapabilities):
        assert name in RemoteFeatures.__dataclass_fields__, name


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("attachment", None),
        ('attachment; filename="report 1.pdf"', "report 1.pdf"),
        ("attachment; filename=plain.bin", "plain.bin"),
        ("attachment; filename=\"_.txt\"; filename*=UTF-8''%C3%A9t%C3%A9.txt", "été.txt"),
        ('attachment; filename="../../etc/passwd"', "../../etc/passwd"),  # parsed, not trusted
        ('attachment; filename=""', None),
    ],
)
def test_content_disposition_filename(header: str | None, expected: str | None) -> None:
    assert content_disposition_filename(header) == expected


def test_features_come_from_the_hc_block_of_system_info() -> None:
    assert features_from_system_info({"registryUrl": "https://pkg.example"}) == RemoteFeatures()
    assert features_from_system_info(None) == RemoteFeatures()
    hc_server = features_from_system_info({"hc": {"uploadSessions": False, "rangeRequests": True}})
    assert hc_server.hc_server and hc_server.ranged_reads and not hc_server.upload_sessions
    assert not features_from_system_info({"hc": {"rangeRequests": False}}).ranged_reads
    # trusting a destination's own digest check is opt-in: only an explicit true counts
    assert not hc_server.verifies_checksums
    assert not features_from_system_info({"hc": {"verifiesChecksums": "yes"}}).verifies_checksums
    assert features_from_system_info({"hc": {"verifiesChecksums": True}}).verifies_checksums


# -- uploads -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 10, 300 * 1024 + 7])
async def test_put_sends_length_checksums_and_raw_slashes(
    remote: HarnessRemote, recorder: tuple[Recorder, str], size: int
) -> None:
    rec, _ = recorder
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    location = FileRef(package="pkg", version="1.0", path="dir/with space/a#b.txt")
    await remote.put_file(location, Source(data), checksums=_checksums(data), overwrite=False)
    (request,) = rec.seen
    assert request.method == "PUT"
    assert request.raw_path == "/pkg/acct/gen/files/pkg/1.0/dir/with%20space/a%23b.txt"
    assert request.headers["Content-Length"] == str(size)
    assert "Transfer-Encoding" not in request.headers
    assert request.headers["Content-Type"] == "application/octet-stream"
    assert request.headers["x-api-key"] == TOKEN
    assert request.headers["X-Checksum-Sha256"] == hashlib.sha256(data).hexdigest()
    assert request.headers["X-Checksum-Md5"] == hashlib.md5(data).hexdigest()
    assert request.headers["X-Checksum-Sha1"] == hashlib.sha1(data).hexdigest()
    assert request.headers["X-Checksum-Sha512"] == hashlib.sha512(data).hexdigest()
    assert "X-Hc-Overwrite" not in request.headers
    assert request.body == data


async def test_overwrite_is_asked_for_with_a_header(
    remote: HarnessRemote, recorder: tuple[Recorder, str]
) -> None:
    rec, _ = recorder
    ref = FileRef(package="p", version="1", path="f")
    await remote.put_file(ref, Source(b"x"), checksums=_checksums(b"x"), overwrite=True)
    assert rec.seen[0].headers["X-Hc-Overwrite"] == "true"


@pytest.mark.parametrize(
    ("status", "headers", "error"),
    [
        (409, {}, Conflict),
        (400, {}, RemoteError),
        (500, {}, TransientError),
        (503, {"Retry-After": "7"}, RateLimited),
    ],
)
async def test_put_errors_become_hc_errors(
    remote: HarnessRemote,
    recorder: tuple[Recorder, str],
    status: int,
    headers: dict[str, str],
    error: type[Exception],
) -> None:
    rec, _ = recorder

    async def refuse(request: web.Request, body: bytes) -> web.StreamResponse:
        return web.json_response({"message": "no thanks"}, status=status, headers=headers)

    rec.respond = refuse
    with pytest.raises(error) as caught:
        await remote.put_file(
            FileRef(package="p", version="1", path="f"),
            Source(b"x"),
            checksums=_checksums(b"x"),
            overwrite=False,
        )
    assert "no thanks" in str(caught.value)
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == 7


async def test_a_same_origin_redirect_is_followed_with_the_body_sent_again(
    remote: HarnessRemote, recorder: tuple[Recorder, str]
) -> None:
    rec, _ = recorder

    async def redirect_once(request: web.Request, body: bytes) -> web.StreamResponse:
        if request.path.startswith("/moved/"):
            return web.Response(status=201)
        return web.Response(status=307, headers={"Location": "/moved" + request.path})

    rec.respond = redirect_once
    data = b"y" * (400 * 1024)
    source = Source(data)
    await remote.put_file(
        FileRef(package="p", version="1", path="f"), source, checksums=_checksums(data), overwrite=False
    )
    assert [r.raw_path for r in rec.seen] == ["/pkg/acct/gen/files/p/1/f", "/moved/pkg/acct/gen/files/p/1/f"]
    assert rec.seen[1].body == data and source.opened == 2


async def test_a_redirect_to_another_host_is_refused(
    remote: HarnessRemote, recorder: tuple[Recorder, str]
) -> None:
    rec, _ = recorder

    async def elsewhere(request: web.Request, body: bytes) -> web.StreamResponse:
        return web.Response(status=307, headers={"Location": "http://127.0.0.2:9/steal"})

    rec.respond = elsewhere
    with pytest.raises(RemoteError, match="another host"):
        await remote.put_file(
            FileRef(package="p", version="1", path="f"),
            Source(b"x"),
            checksums=_checksums(b"x"),
            overwrite=False,
        )
    assert len(rec.seen) == 1


# -- downloads and HEAD ------------------------------------------------------------------------------

DATA = bytes(range(256)) * 64  # 16 KiB
ETAG = hashlib.sha256(DATA).hexdigest()


async def _ranged(request: web.Request, body: bytes) -> web.StreamResponse:
    """Honours ``Range: bytes=a-b`` when If-Range (if any) names our ETag."""
    headers = {"ETag": f'"{ETAG}"', "Accept-Ranges": "bytes"}
    rng, if_range = request.headers.get("Range"), request.headers.get("If-Range")
    if rng and (if_range is None or if_range == f'"{ETAG}"'):
        first, _, last = rng.removeprefix("bytes=").partition("-")
        start, end = int(first), (int(last) + 1 if last else len(DATA))
        if start >= len(DATA):
            return web.Response(status=416, headers={"Content-Range": f"bytes */{len(DATA)}"})
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(DATA)}"
        return web.Response(status=206, body=DATA[start:end], headers=headers)
    return web.Response(body=DATA, headers=headers)


async def _read(remote: HarnessRemote, **kwargs: Any) -> tuple[int, int | None, str | None, bytes]:
    async with remote.open_read(FileRef(package="p", version="1", path="d/f.bin"), **kwargs) as stream:
        body = b"".join([chunk async for chunk in stream])
        return stream.start, stream.total_size, stream.etag, body


async def test_ranged_reads(remote: HarnessRemote, recorder: tuple[Recorder, str]) -> None:
    rec, _ = recorder
    rec.respond = _ranged
    assert await _read(remote) == (0, len(DATA), ETAG, DATA)
    assert "Range" not in rec.seen[-1].headers
    assert await _read(remote, offset=100, length=50, if_range=ETAG) == (100, len(DATA), ETAG, DATA[100:150])
    assert rec.seen[-1].headers["Range"] == "bytes=100-149"
    assert rec.seen[-1].headers["If-Range"] == f'"{ETAG}"'
    assert await _read(remote, offset=1000) == (1000, len(DATA), ETAG, DATA[1000:])
    assert rec.seen[-1].headers["Range"] == "bytes=1000-"
    # the file changed: the server sends it all, from byte 0
    assert await _read(remote, offset=100, if_range="0" * 64) == (0, len(DATA), ETAG, DATA)
    with pytest.raises(IntegrityError):
        await _read(remote, offset=len(DATA) + 5)


async def test_a_download_cut_short_is_a_transient_error(
    remote: HarnessRemote, recorder: tuple[Recorder, str]
) -> None:
    rec, _ = recorder

    async def cut(request: web.Request, body: bytes) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(DATA))})
        await response.prepare(request)
        await response.write(DATA[:1000])
        assert request.transport is not None
        request.transport.close()
        return response

    rec.respond = cut
    with pytest.raises(TransientError):
        await _read(remote)


async def test_stat_reads_size_digests_and_the_offered_name(
    remote: HarnessRemote, recorder: tuple[Recorder, str]
) -> None:
    rec, _ = recorder

    async def head(request: web.Request, body: bytes) -> web.StreamResponse:
        if request.path.endswith("/missing"):
            return web.Response(status=404)
        return web.Response(
            headers={
                "Content-Length": "1234",
                "X-Checksum-Sha256": "A" * 64,
                "X-Checksum-Md5": "not-hex",
                "Content-Disposition": 'attachment; filename="f.bin"',
            }
        )

    rec.respond = head
    found = await remote.stat(FileRef(package="p", version="1", path="d/f.bin"))
    assert found == GenericFile(
        package="p", version="1", path="d/f.bin", size=1234, sha256="a" * 64, filename="f.bin"
    )
    assert rec.seen[-1].method == "HEAD"
    assert await remote.stat(FileRef(package="p", version="1", path="missing")) is None
