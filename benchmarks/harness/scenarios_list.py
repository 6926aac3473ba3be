"""Scenario 5: list a version of 100,000 files over a 20 ms link, hc against the Go CLI's way
(one v3 page of 100 after the other)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

import aiohttp

from hc.protocol.routes import generic_file_path

from .context import REGISTRY, Context
from .proxy import Proxy
from .report import Check, ScenarioResult
from .servers import HcServer

__all__ = ["s5_list"]

WAN_RTT_MS = 20.0
PACKAGE, VERSION = "many", "v1"
SEQLIST = Path(__file__).with_name("seqlist.py")


async def _populate(server: HcServer, count: int, concurrency: int = 64) -> None:
    """PUT ``count`` tiny distinct files (once; the store is cached in benchmarks/work/cache)."""
    headers = {"x-api-key": server.token, "Content-Type": "application/octet-stream"}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                path = generic_file_path(
                    server.account, REGISTRY, PACKAGE, VERSION, f"d{i // 1000:03d}/f{i:06d}.txt"
                )
                async with session.put(
                    server.base_url + path, data=f"file {i}\n".encode(), headers=headers
                ) as r:
                    if r.status not in (200, 201):
                        raise RuntimeError(f"populate: PUT {path}: HTTP {r.status}: {await r.text()}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def _store(ctx: Context) -> Path:
    """The cached store holding the listed version (made on first use, ~1-2 min for 100k)."""
    count = ctx.sizes.list_count
    store = ctx.cache / f"list-{count}"
    marker = store / "bench-populated.json"
    if marker.exists() and json.loads(marker.read_text()).get("count") == count:
        return store
    store.mkdir(parents=True, exist_ok=True)
    with ctx.server("s5-populate", data_dir=store) as server:
        if server.count_files(REGISTRY, PACKAGE, VERSION) != count:
            with contextlib.suppress(Exception):  # it exists after an interrupted population
                server.create_registry(REGISTRY)
            asyncio.run(_populate(server, count))
        found = server.count_files(REGISTRY, PACKAGE, VERSION)
        if found != count:
            raise RuntimeError(f"populated {found} files, expected {count}")
    marker.write_text(json.dumps({"count": count}))
    return store


def _listed(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if ".txt" in line)


def s5_list(ctx: Context) -> ScenarioResult:
    count = ctx.sizes.list_count
    result = ScenarioResult(5, f"list {count:,} files, WAN (+{WAN_RTT_MS:.0f} ms)", work=(count, "files"))
    started = time.perf_counter()
    store = _store(ctx)
    result.setup_seconds = time.perf_counter() - started
    with ctx.server("s5", data_dir=store) as server, Proxy(server.port, rtt_ms=WAN_RTT_MS) as proxy:
        contenders = {
            "hc": ctx.hc(
                proxy.base_url,
                server.token,
                *("artifact", "list", "--registry", REGISTRY, "--package", PACKAGE, "--version", VERSION),
            ),
            "sequential, pages of 100 (Go CLI)": [
                ctx.python,
                str(SEQLIST),
                *(proxy.base_url, server.token, server.account, REGISTRY, PACKAGE, VERSION, "100"),
            ],
            "sequential, pages of 1000": [
                ctx.python,
                str(SEQLIST),
                *(proxy.base_url, server.token, server.account, REGISTRY, PACKAGE, VERSION, "1000"),
            ],
        }
        for run in range(ctx.runs):
            for who, argv in contenders.items():
                if not ctx.wants(result, who, run, informational=who == "sequential, pages of 1000"):
                    continue
                out = ctx.logs / f"s5-{run}-{who.split(',')[0]}.out"
                before = proxy.snapshot()
                sample, _ = ctx.measure(who, run, argv, server=server, stdout=out)
                delta = proxy.snapshot().minus(before)
                sample.extra.update(requests=delta.request_count, bytes_down=delta.bytes_down)
                listed = _listed(out)
                if listed != count:
                    raise RuntimeError(f"{who}: listed {listed} files, expected {count}")
                result.samples.append(sample)
    result.checks.append(
        Check(
            "hc vs sequential pages of 100",
            result.speedup("hc", "sequential, pages of 100 (Go CLI)"),
            ">=",
            8.0,
        )
    )
    result.notes.append(
        "'sequential, pages of 1000' (one run, informational) walks hc's own page size one page at a time: "
        "hc's gain over it is what concurrency (not page size) buys"
    )
    return result
