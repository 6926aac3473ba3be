"""A request body sent from an open file with ``sendfile``: the bytes go from the page cache to the
socket in the kernel, never through Python.

A push of a large file over plain HTTP otherwise reads every buffer into a Python ``bytes`` (a copy)
and writes it to the socket (a second copy, plus the event loop's bookkeeping per buffer): about
0.3 s of CPU per GiB on this machine's loopback, a seventh of what the whole push costs the client.
``sendfile`` keeps the CPU for the hashing the push has to do anyway.

The source hands out *regions* (descriptor, offset, count) one at a time and keeps each descriptor
open until the next is asked for (``hc.transfer._files.FileSource.open_regions``); its byte count,
stall deadline and abandoned-attempt handling work as for a streamed body. Where the kernel cannot
send a file to this socket (TLS, chunked encoding, a platform without ``sendfile``), each region is
read on a worker thread and written as a streamed body would be. A file that ends before the
region does fails the request with ``IntegrityError`` (it shrank while it was sent).

aiohttp calls ``write_with_length`` with its ``StreamWriter``; the body uses three things of it
beyond the abstract writer: ``transport``, ``send_headers()`` and ``chunked``. Where any is
missing, the copying path is taken.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator
from typing import Any, BinaryIO, Protocol, cast

import anyio
from aiohttp import payload
from aiohttp.abc import AbstractStreamWriter

from hc.errors import IntegrityError

__all__ = ["RegionSource", "SendfileBody", "sends_regions"]


class Region(Protocol):
    """``count`` bytes of the open file ``fd`` from ``offset`` (``hc.transfer.FileRegion``)."""

    @property
    def fd(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def count(self) -> int: ...


class RegionSource(Protocol):
    """A body that can be sent as file regions (``hc.transfer.ByteSource`` with ``open_regions``)."""

    @property
    def size(self) -> int: ...
    @property
    def sends_regions(self) -> bool: ...
    def open_regions(self) -> AsyncGenerator[Region, None]: ...


def sends_regions(source: object) -> bool:
    """Whether ``source`` can be sent as file regions."""
    return bool(getattr(source, "sends_regions", False))


class _Descriptor:
    """What ``loop.sendfile`` needs of a file: its descriptor. (Its position is moved, never read:
    regions carry their offsets.)"""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        return self._fd


class SendfileBody(payload.Payload):
    """One attempt's body: ``source.open_regions()`` sent whole."""

    def __init__(self, source: RegionSource) -> None:
        super().__init__(source, content_type="application/octet-stream")
        self._source = source
        self._length = source.size

    @property
    def size(self) -> int:
        return self._length

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a file body is not text")

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        regions = self._source.open_regions()
        native = _native_transport(writer)
        try:
            async for region in regions:
                if native is not None:
                    try:
                        await _send_region(native, writer, region)
                        continue
                    except asyncio.SendfileNotAvailableError:
                        native = None  # and this region (nothing of it went) is copied below
                await _copy_region(writer, region)
        finally:
            await regions.aclose()


def _native_transport(writer: AbstractStreamWriter) -> asyncio.Transport | None:
    """The writer's transport when the kernel can send a file to it, else None."""
    transport: Any = getattr(writer, "transport", None)
    if transport is None or not hasattr(writer, "send_headers"):
        return None
    if getattr(writer, "chunked", True) or getattr(writer, "_compress", None) is not None:
        return None  # the body is framed or transformed on its way: the bytes must pass through here
    if transport.get_extra_info("sslcontext") is not None:
        return None
    return transport  # type: ignore[no-any-return]


async def _send_region(transport: asyncio.Transport, writer: Any, region: Region) -> None:
    writer.send_headers()  # buffered by aiohttp until the first body write; sendfile bypasses it
    loop = asyncio.get_running_loop()
    file = cast(BinaryIO, _Descriptor(region.fd))  # sendfile uses its fileno() only
    sent = await loop.sendfile(transport, file, region.offset, region.count, fallback=False)
    if sent < region.count:
        raise IntegrityError("the file shrank while it was uploaded")


async def _copy_region(writer: AbstractStreamWriter, region: Region) -> None:
    data = await anyio.to_thread.run_sync(os.pread, region.fd, region.count, region.offset)
    if len(data) < region.count:
        raise IntegrityError("the file shrank while it was uploaded")
    await writer.write(data)
