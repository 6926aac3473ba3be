"""What the running server holds: one value under one typed AppKey, opened and closed by the app's
cleanup context (so a test can build an app, use it and tear it down with nothing left open)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from aiohttp import web

from .auth import TokenCache
from .blobs import BlobStore, SmallBlobs
from .metadata import Database, RegistryRow
from .paths import StoreLayout
from .smallputs import SmallPuts
from .uploads import UploadSessions

__all__ = ["ACCOUNT", "STATE", "ServerState"]


@dataclass(slots=True)
class ServerState:
    layout: StoreLayout
    db: Database
    blobs: BlobStore
    executor: ThreadPoolExecutor
    #: resumable upload sessions (POST/PATCH/PUT …/uploads)
    uploads: UploadSessions
    #: group writer (one hop, one flush per batch) for bodies up to blobs.SMALL_BODY
    small_blobs: SmallBlobs
    #: small PUTs: bodies and rows of a group in one hop on the database thread
    small_puts: SmallPuts
    tokens: TokenCache = field(default_factory=TokenCache)
    #: (account, identifier) → (registry, expiry): the files endpoints look a registry up on every
    #: request; a stale entry is harmless because the upload's transaction re-checks the registry.
    registry_cache: dict[tuple[str, str], tuple[RegistryRow, float]] = field(default_factory=dict)
    #: requests being handled, and an event set whenever there are none (for a graceful stop)
    inflight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def request_started(self) -> None:
        self.inflight += 1
        self.idle.clear()

    def request_finished(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self.idle.set()


STATE = web.AppKey("hc_state", ServerState)
#: request key: the account the request's API key belongs to
ACCOUNT = web.RequestKey("hc_account", str)
