"""Shared fixtures: a fresh registry store folder, and a real embedded registry serving it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hc.server.embedded import EmbeddedServer, serve_embedded


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty folder for a registry store (created on first use by the server)."""
    return tmp_path / "hc-data"


@pytest.fixture
async def embedded_server(data_dir: Path) -> AsyncIterator[EmbeddedServer]:
    """The embedded registry on a free 127.0.0.1 port, in the test's event loop: ``base_url``,
    ``account`` ("local") and ``token`` (a valid API key for it)."""
    async with serve_embedded(data_dir) as server:
        yield server
