"""The registry inside the CLI process: local credentials and a server on a free loopback port.

With no Harness account configured, hc talks HTTP to this in-process server exactly as it would to
Harness, so every command has one code path. The server runs in the caller's event loop (the
client's), which is why all its disk and SQLite work is off the loop on worker threads.

Local credentials: the first use creates the store, the account ``local`` and an API key, and keeps
the plaintext key in ``local-credentials.json`` (0600 in the 0700 store). Several hc processes may
start at once, so creation is serialised with an exclusive ``flock`` on a lock file and the JSON is
replaced atomically: everyone ends up with the same, valid key.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from hc.errors import StorageError, UsageError

from .app import create_app, drain
from .auth import issue_key, token_digest
from .memory import limit_malloc_arenas
from .metadata import Catalog, Database
from .paths import StoreLayout

__all__ = [
    "LOCAL_ACCOUNT",
    "EmbeddedServer",
    "LocalCredentials",
    "ensure_local_credentials",
    "serve_embedded",
]

LOCAL_ACCOUNT = "local"


@dataclass(frozen=True, slots=True)
class LocalCredentials:
    account: str
    token: str

    def __repr__(self) -> str:
        return f"LocalCredentials(account={self.account!r}, token=<hidden>)"


@dataclass(frozen=True, slots=True)
class EmbeddedServer:
    base_url: str
    account: str
    token: str

    def __repr__(self) -> str:
        return f"EmbeddedServer(base_url={self.base_url!r}, account={self.account!r}, token=<hidden>)"


def _read_credentials(path: Path) -> LocalCredentials | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # unreadable or torn: replaced below, under the lock
    account, token = data.get("account"), data.get("token")
    if isinstance(account, str) and isinstance(token, str) and token.startswith(f"pat.{account}."):
        return LocalCredentials(account=account, token=token)
    return None


def _write_credentials(path: Path, credentials: LocalCredentials) -> None:
    # A fresh, exclusive temp file (a name nobody could have prepared: no link is followed, no
    # other process's file is truncated), 0600 from its first byte, then renamed over the old one.
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"account": credentials.account, "token": credentials.token}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)


def ensure_local_credentials(data_dir: Path) -> LocalCredentials:
    """Create (once) and return the local account's API key. Blocking; safe across processes."""
    layout = StoreLayout(Path(data_dir))
    try:
        layout.create()
        lock_fd = os.open(
            layout.root / "local-credentials.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
    except OSError as exc:
        raise StorageError(f"cannot create the local registry store in {layout.root}: {exc}") from exc
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        db = Database(layout.database)
        try:
            existing = _read_credentials(layout.credentials)
            if existing is not None and db.run_sync(Catalog.account_for_token, token_digest(existing.token)):
                return existing
            key = issue_key(LOCAL_ACCOUNT)
            db.run_sync(Catalog.add_api_key, LOCAL_ACCOUNT, key.key_id, key.digest)
            credentials = LocalCredentials(account=LOCAL_ACCOUNT, token=key.token)
            _write_credentials(layout.credentials, credentials)
            return credentials
        finally:
            db.close()
    finally:
        os.close(lock_fd)  # releases the flock


def create_api_key(data_dir: Path, account: str) -> str:
    """Issue a new API key for ``account`` (created if needed) and return it. Blocking."""
    layout = StoreLayout(Path(data_dir))
    layout.create()
    db = Database(layout.database)
    try:
        key = issue_key(account)
        db.run_sync(Catalog.add_api_key, account, key.key_id, key.digest)
        return key.token
    finally:
        db.close()


@contextlib.asynccontextmanager
async def serve_embedded(
    data_dir: Path, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[EmbeddedServer]:
    """Serve the registry at ``data_dir`` on ``host:port`` (0 = a free port) in this event loop."""
    limit_malloc_arenas()  # the whole process (client and server) receives and sends the bodies
    loop = asyncio.get_running_loop()
    credentials = await loop.run_in_executor(None, ensure_local_credentials, Path(data_dir))
    app = create_app(data_dir=Path(data_dir))
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=10.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        bound_host, bound_port = runner.addresses[0][:2]
        yield EmbeddedServer(
            base_url=f"http://{_url_host(bound_host)}:{bound_port}",
            account=credentials.account,
            token=credentials.token,
        )
        await drain(runner, app, timeout=10.0)
    finally:
        await runner.cleanup()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
