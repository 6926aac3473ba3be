"""The embedded registry as an aiohttp application.

``create_app(data_dir=...)`` builds the app; its resources (the SQLite thread, the blob worker
pool) are opened and closed by one cleanup context, so the same app object serves ``hc server run``,
the in-process embedded server and the tests, and tearing it down leaves nothing running.

Upload sessions expire ``upload_ttl_s`` after their last part; expired ones are swept at start-up
and then every ``min(ttl / 4, 1 h)``.

The blob pool has more threads than cores on purpose: most of their time is spent in fsync and
in hashlib with the GIL released, and many small uploads in flight each need one short hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web

from hc.protocol.uploads import DEFAULT_SESSION_TTL_SECONDS

from .blobs import BlobStore, SmallBlobs
from .metadata import Catalog, Database, now_ms
from .middlewares import auth_middleware, error_middleware, inflight_middleware
from .paths import StoreLayout
from .routes import accounts, batchread, batchwrite, files, uploads, v1, v2, v3
from .smallputs import SmallPuts
from .state import STATE, ServerState
from .uploads import UploadSessions, sweep_uploads

__all__ = ["create_app", "drain", "open_store"]

log = logging.getLogger("hc.server")

#: aiohttp buffers up to twice this per request before pausing the socket; 64 KiB (the default)
#: stalls a fast upload while a batch is being hashed.
READ_BUFSIZE = 1 << 20


def open_store(data_dir: Path, executor: ThreadPoolExecutor) -> tuple[BlobStore, Database]:
    """Blocking: create the store if needed, open the database, sweep what crashed writers left."""
    layout = StoreLayout(data_dir)
    blobs = BlobStore(layout, executor)
    blobs.prepare()
    try:
        db = Database(layout.database, blob_hooks=blobs)
    except BaseException:
        blobs.close()
        raise
    try:
        swept = db.run_sync(Catalog.under_write_lock, blobs.sweep)
    except BaseException:
        db.close()
        blobs.close()
        raise
    if swept:
        log.info("removed %d leftover temporary file(s) from %s", swept, layout.tmp)
    try:
        swept = sweep_uploads(layout, db, now_ms())
    except BaseException:
        db.close()
        blobs.close()
        raise
    if swept:
        log.info("removed %d expired or orphaned upload session file(s)", swept)
    return blobs, db


def create_app(
    *, data_dir: Path, blob_threads: int = 16, upload_ttl_s: float = DEFAULT_SESSION_TTL_SECONDS
) -> web.Application:
    app = web.Application(
        middlewares=[inflight_middleware, error_middleware, auth_middleware],
        handler_args={"read_bufsize": READ_BUFSIZE},
    )
    app.cleanup_ctx.append(
        functools.partial(
            _resources, data_dir=Path(data_dir), blob_threads=blob_threads, upload_ttl_s=upload_ttl_s
        )
    )
    for module in (accounts, v1, v2, v3, files, uploads, batchread, batchwrite):
        app.add_routes(module.routes)
    return app


async def drain(runner: web.AppRunner, app: web.Application, timeout: float) -> None:
    """Graceful stop, step one: stop accepting connections, then wait (up to ``timeout``) until no
    request is in progress. ``runner.cleanup()`` afterwards only closes idle connections."""
    for site in list(runner.sites):
        await site.stop()
    if STATE in app:
        try:
            await asyncio.wait_for(app[STATE].idle.wait(), timeout)
        except TimeoutError:
            log.warning("stopping with %d request(s) still in progress", app[STATE].inflight)


async def _resources(
    app: web.Application, *, data_dir: Path, blob_threads: int, upload_ttl_s: float
) -> AsyncIterator[None]:
    executor = ThreadPoolExecutor(max_workers=blob_threads, thread_name_prefix="hc-blobs")
    loop = asyncio.get_running_loop()
    try:
        blobs, db = await loop.run_in_executor(executor, open_store, data_dir, executor)
    except BaseException:
        executor.shutdown(wait=False)
        raise
    state = ServerState(
        layout=blobs.layout,
        db=db,
        blobs=blobs,
        executor=executor,
        uploads=UploadSessions(
            layout=blobs.layout, db=db, blobs=blobs, executor=executor, ttl_s=upload_ttl_s
        ),
        small_blobs=(small := SmallBlobs(blobs, executor)),
        small_puts=SmallPuts(blobs, small, db),
    )
    state.idle.set()
    app[STATE] = state
    sweeper = loop.create_task(_sweep_uploads_periodically(state.uploads, min(upload_ttl_s / 4, 3600.0)))
    try:
        yield
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await state.uploads.aclose()
        await loop.run_in_executor(None, db.close)
        blobs.close()
        state.small_blobs.close()
        executor.shutdown(wait=True)


async def _sweep_uploads_periodically(uploads: UploadSessions, interval: float) -> None:
    while True:
        await asyncio.sleep(max(interval, 1.0))
        try:
            await uploads.sweep()
        except Exception:  # a failed sweep is retried at the next tick; it must not stop the server
            log.exception("sweeping expired upload sessions failed")
