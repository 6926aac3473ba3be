"""What ``hc server run | token create | fsck`` do, without click (the CLI only parses and prints).

``run_server`` serves in the foreground until SIGINT or SIGTERM, then stops accepting connections
and lets in-flight requests finish (up to ``shutdown_timeout``) before closing the store; an upload
cut short by the shutdown leaves only a temp file, swept at the next start.

``fsck`` re-hashes every blob, file or row of ``inline_blobs`` (its name must be the sha256 of its
bytes), and checks that every file row has its blob. Blobs that no row references are not faults
(a crash between link and commit leaves one); they are counted in the summary.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from hc.errors import UsageError

from .app import create_app, drain, open_store
from .embedded import create_api_key, ensure_local_credentials
from .memory import limit_malloc_arenas
from .metadata import Catalog

__all__ = ["FsckReport", "create_api_key", "fsck", "run_server"]


def run_server(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 3000,
    on_ready: Callable[[str], None] | None = None,
    shutdown_timeout: float = 30.0,
) -> None:
    """Serve until SIGINT/SIGTERM. ``on_ready(base_url)`` is called once the port accepts connections."""
    limit_malloc_arenas()  # before asyncio and the store start their threads
    asyncio.run(_serve(Path(data_dir), host, port, on_ready, shutdown_timeout))


async def _serve(
    data_dir: Path, host: str, port: int, on_ready: Callable[[str], None] | None, shutdown_timeout: float
) -> None:
    loop = asyncio.get_running_loop()
    # Make sure the local account exists, so `hc` on this machine can use the store right away.
    await loop.run_in_executor(None, ensure_local_credentials, data_dir)
    app = create_app(data_dir=data_dir)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    stop = asyncio.Event()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        bound_host, bound_port = runner.addresses[0][:2]
        if on_ready is not None:
            on_ready(f"http://{bound_host}:{bound_port}")
        await stop.wait()
        await drain(runner, app, shutdown_timeout)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()


@dataclass(slots=True)
class FsckReport:
    blobs_checked: int = 0
    files_checked: int = 0
    unreferenced_blobs: int = 0
    faults: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.faults

    def summary(self) -> str:
        state = "clean" if self.clean else f"{len(self.faults)} fault(s)"
        return (
            f"fsck: {state}: {self.blobs_checked} blob(s) verified, {self.files_checked} file(s) checked, "
            f"{self.unreferenced_blobs} unreferenced blob(s)"
        )


def fsck(data_dir: Path, *, threads: int = 2) -> FsckReport:
    """Check the store at ``data_dir`` (blocking)."""
    data_dir = Path(data_dir)
    if not (data_dir / "registry.db").exists():
        raise UsageError(f"no registry store at {data_dir}")
    report = FsckReport()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hc-fsck") as executor:
        blobs, db = open_store(data_dir, executor)
        try:
            rows = db.run_sync(Catalog.all_file_digests)
            referenced = {sha256 for sha256, _ in rows}
            entries = list(blobs.iter_blobs())
            hashes = executor.map(lambda entry: blobs.hash_file(entry[1]), entries)
            present = set()
            for (name, path), actual in zip(entries, hashes, strict=True):
                report.blobs_checked += 1
                present.add(name)
                relative = path.relative_to(data_dir)
                if actual != name:
                    report.faults.append(f"corrupt blob {relative}: its bytes hash to {actual}")
                elif name not in referenced:
                    report.unreferenced_blobs += 1
            # small bodies kept in the database (hc.server.smallputs): checked the same way
            for name, actual in db.run_sync(Catalog.inline_blob_digests):
                report.blobs_checked += 1
                present.add(name)
                if actual != name:
                    report.faults.append(f"corrupt blob {name} (in registry.db): its bytes hash to {actual}")
                elif name not in referenced:
                    report.unreferenced_blobs += 1
            for sha256, where in rows:
                report.files_checked += 1
                if sha256 not in present:
                    report.faults.append(f"missing blob {sha256} for file {where}")
        finally:
            db.close()
            blobs.close()
    return report
