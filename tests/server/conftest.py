"""Fixtures for the registry tests: an HTTP client holding a valid key, and small helpers."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hc.server.embedded import EmbeddedServer

V1 = "/gateway/har/api/v1"
V2 = "/gateway/har/api/v2"
V3 = "/gateway/har/api/v3"


@dataclass
class Api:
    """A client session against one embedded server, authenticated as its ``local`` account."""

    server: EmbeddedServer
    session: aiohttp.ClientSession
    data_dir: Path

    @property
    def base(self) -> str:
        return self.server.base_url

    @property
    def account(self) -> str:
        return self.server.account

    def url(self, path: str) -> str:
        return self.base + path

    async def json(self, method: str, path: str, *, status: int = 200, **kwargs: Any) -> Any:
        async with self.session.request(method, self.url(path), **kwargs) as response:
            body = await response.text()
            assert response.status == status, f"{method} {path}: {response.status} {body}"
            return await response.json(content_type=None) if body else None

    async def create_registry(
        self, identifier: str, package_type: str = "GENERIC", space: str | None = None
    ) -> Any:
        return await self.json(
            "POST",
            f"{V1}/registry?space_ref={space or self.account}",
            json={"identifier": identifier, "packageType": package_type},
            status=201,
        )

    def file_url(self, registry: str, path: str) -> str:
        return self.url(f"/pkg/{self.account}/{registry}/files/{path}")

    async def put(
        self,
        registry: str,
        path: str,
        data: bytes,
        *,
        status: int = 201,
        headers: dict[str, str] | None = None,
    ) -> Any:
        async with self.session.put(self.file_url(registry, path), data=data, headers=headers) as response:
            body = await response.text()
            assert response.status == status, f"PUT {path}: {response.status} {body}"
            return await response.json(content_type=None)

    async def get_bytes(self, registry: str, path: str, **kwargs: Any) -> tuple[int, bytes, Any]:
        async with self.session.get(self.file_url(registry, path), **kwargs) as response:
            return response.status, await response.read(), response.headers

    def blob_files(self) -> list[Path]:
        """Blobs kept as files (bodies above blobs.INLINE_BODY, and upload sessions')."""
        return sorted(p for p in (self.data_dir / "blobs" / "sha256").rglob("*") if p.is_file())

    def stored_blobs(self) -> list[str]:
        """The sha256 of every body the store keeps, as a file or in the database."""
        with contextlib.closing(sqlite3.connect(self.data_dir / "registry.db")) as db:
            inline = [name for (name,) in db.execute("SELECT sha256 FROM inline_blobs")]
        return sorted(inline + [p.name for p in self.blob_files()])

    def tmp_files(self) -> list[Path]:
        return sorted((self.data_dir / "tmp").iterdir())


@pytest.fixture
async def api(embedded_server: EmbeddedServer, data_dir: Path) -> AsyncIterator[Api]:
    headers = {"x-api-key": embedded_server.token}
    async with aiohttp.ClientSession(headers=headers) as session:
        yield Api(server=embedded_server, session=session, data_dir=data_dir)
