"""Scenarios 1–4, 6 and 7: one large file and many small files, hc against curl."""

from __future__ import annotations

import contextlib
import hashlib
import math
import shutil
import time
from pathlib import Path

from hc.protocol.routes import generic_file_path

from . import bare_client, data
from .context import REGISTRY, Context
from .curl import curl_get, curl_parallel, curl_put
from .proxy import Proxy
from .report import Check, ScenarioResult
from .servers import HcServer

__all__ = ["s1_push_big", "s2_pull_big", "s3_push_small", "s4_push_small_wan", "s6_repush", "s7_pull_small"]

WAN_RTT_MS = 20.0

#: The informational contender of 3 and 7: curl's requests (one per file) from bare aiohttp.
BARE = "aiohttp alone"
_BARE_NOTE = (
    f"'{BARE}': curl's requests, one per file, from a bare aiohttp script (harness/bare_client.py: no"
    " listing, retries, journal, progress, .part names or fsync): it minus curl is Python and aiohttp"
    " per request. hc sends these small files in batch requests (many to a request) to this hc"
    " registry, as it does to any that offers them; against Harness it sends one request per file"
)


def _bare(
    ctx: Context, mode: str, rows: list[tuple[str, Path, str]], token: str
) -> tuple[list[str], dict[str, str]]:
    """argv and environment of one bare_client run over ``rows`` (url, local path, sha256)."""
    listing = bare_client.write_list(ctx.scratch / f"bare-{mode}.tsv", rows)
    env = ctx.env()
    env["HC_BENCH_TOKEN"] = token
    return [ctx.python, str(Path(bare_client.__file__)), mode, str(listing)], env


def _big(ctx: Context) -> Path:
    return data.big_file(ctx.data, ctx.sizes.big)


def _tree(ctx: Context) -> Path:
    return data.small_tree(ctx.data, ctx.sizes.small_count, ctx.sizes.small_size)


def _expect_files(server: HcServer, package: str, version: str, count: int, who: str) -> None:
    found = server.count_files(REGISTRY, package, version)
    if found != count:
        raise RuntimeError(
            f"{who}: the registry holds {found} files in {package}/{version}, expected {count}"
        )


# -- 1 ---------------------------------------------------------------------------------------------


def s1_push_big(ctx: Context) -> ScenarioResult:
    size = ctx.sizes.big
    result = ScenarioResult(1, f"push 1 file of {size >> 20} MiB", work=(size, "MiB"))
    big = _big(ctx)
    for run in range(ctx.runs):
        for who in ("hc", "curl"):
            if not ctx.wants(result, who, run):
                continue
            with ctx.server("s1") as server:
                data.stamp(big, f"s1{who}{run}{time.time_ns()}")  # content the registry never saw
                if who == "hc":
                    argv = ctx.hc(
                        server.base_url,
                        server.token,
                        *("artifact", "push", "generic", REGISTRY, str(big)),
                        *("--name", "big", "--version", f"h{run}", "--progress", "none"),
                    )
                    version = f"h{run}"
                else:
                    version = f"c{run}"
                    argv = curl_put(server.file_url(REGISTRY, "big", version, big.name), server.token, big)
                sample, _ = ctx.measure(who, run, argv, server=server)
                _expect_files(server, "big", version, 1, who)
                result.samples.append(sample)
    result.checks.append(Check("hc vs curl -T (throughput)", result.speedup("hc", "curl"), ">=", 0.9))
    return result


# -- 2 ---------------------------------------------------------------------------------------------


def s2_pull_big(ctx: Context) -> ScenarioResult:
    size = ctx.sizes.big
    result = ScenarioResult(2, f"pull 1 file of {size >> 20} MiB", work=(size, "MiB"))
    big = _big(ctx)
    with ctx.server("s2") as server:
        data.stamp(big, f"s2{time.time_ns()}")
        started = time.perf_counter()
        ctx.measure("setup", 0, curl_put(server.file_url(REGISTRY, "big", "1", big.name), server.token, big))
        result.setup_seconds = time.perf_counter() - started
        for run in range(ctx.runs):
            for who in ("hc", "curl"):
                if not ctx.wants(result, who, run):
                    continue
                dest = ctx.fresh_dir(f"s2-{who}")
                if who == "hc":
                    argv = ctx.hc(
                        server.base_url,
                        server.token,
                        *("artifact", "pull", "generic", REGISTRY, f"big/1/{big.name}", str(dest)),
                        *("--progress", "none"),
                    )
                else:
                    argv = curl_get(
                        server.file_url(REGISTRY, "big", "1", big.name), server.token, dest / big.name
                    )
                sample, _ = ctx.measure(who, run, argv, server=server)
                got = (dest / big.name).stat().st_size
                if got != size:
                    raise RuntimeError(f"{who}: pulled {got} bytes, expected {size}")
                ctx.discard(dest)
                result.samples.append(sample)
    result.checks.append(Check("hc vs curl -o (throughput)", result.speedup("hc", "curl"), ">=", 0.9))
    return result


# -- 3, 4 --------------------------------------------------------------------------------------------


def _small_push_runs(
    ctx: Context,
    result: ScenarioResult,
    contenders: dict[str, list[str]],
    *,
    rtt_ms: float,
    informational: tuple[str, ...] = (),
) -> None:
    """Push the small tree once per contender per run, each into a fresh store. ``contenders``
    maps a name to hc's extra flags (``curl`` is the peer)."""
    tree = _tree(ctx)
    names = data.tree_files(tree)
    for run in range(ctx.runs):
        for who, flags in contenders.items():
            if not ctx.wants(result, who, run, informational=who in informational):
                continue
            with contextlib.ExitStack() as stack:
                server = stack.enter_context(ctx.server(f"s{result.id}"))
                proxy = stack.enter_context(Proxy(server.port, rtt_ms=rtt_ms)) if rtt_ms else None
                base = proxy.base_url if proxy else server.base_url
                version = f"{who.replace(' ', '')}{run}"
                env = None
                transfers = [
                    (
                        base
                        + generic_file_path(server.account, REGISTRY, "small", version, f"{tree.name}/{n}"),
                        tree / n,
                    )
                    for n in names
                ]
                if who == "curl":
                    argv = curl_parallel(
                        ctx.scratch / f"s{result.id}-curl.cfg", server.token, transfers, upload=True
                    )
                elif who == BARE:
                    argv, env = _bare(ctx, "put", [(url, path, "-") for url, path in transfers], server.token)
                else:
                    argv = ctx.hc(
                        base,
                        server.token,
                        *("artifact", "push", "generic", REGISTRY, str(tree)),
                        *("--name", "small", "--version", version, "--progress", "none", *flags),
                    )
                sample, _ = ctx.measure(who, run, argv, server=server, env=env)
                if proxy is not None:
                    stats = proxy.snapshot()
                    sample.extra.update(requests=stats.request_count, connections=stats.connections)
                _expect_files(server, "small", version, len(names), who)
                result.samples.append(sample)


def s3_push_small(ctx: Context) -> ScenarioResult:
    n = ctx.sizes.small_count
    result = ScenarioResult(3, f"push {n:,} files of 4 KiB", work=(n, "files"))
    _small_push_runs(ctx, result, {"hc": [], "curl": [], BARE: []}, rtt_ms=0.0)
    result.notes.append(_BARE_NOTE)
    result.checks.append(Check("hc vs curl --parallel 32", result.speedup("hc", "curl"), ">=", 1.0))
    hc = result.median_wall("hc")
    result.checks.append(Check("hc files/s", n / hc if hc else None, ">=", 1500, unit=" files/s"))
    return result


def s4_push_small_wan(ctx: Context) -> ScenarioResult:
    n = ctx.sizes.small_count
    result = ScenarioResult(4, f"push {n:,} files of 4 KiB, WAN (+{WAN_RTT_MS:.0f} ms)", work=(n, "files"))
    # The Go CLI's way: 5 workers, one request per file (no batch writes, which it does not know).
    contenders = {"hc": [], "curl": [], "hc -c 5": ["--concurrency", "5", "--no-batch"]}
    _small_push_runs(ctx, result, contenders, rtt_ms=WAN_RTT_MS)
    result.checks.append(Check("hc vs curl --parallel 32", result.speedup("hc", "curl"), ">=", 1.0))
    result.checks.append(
        Check("hc vs hc --concurrency 5 (Go CLI's workers)", result.speedup("hc", "hc -c 5"), ">=", 5.0)
    )
    result.notes.append(
        "+20 ms per request: N requests in flight cannot exceed N / 0.02 s files/s; 'hc -c 5' is the Go "
        "CLI's way (5 workers, one PUT per file: --no-batch), hc sends the small files in batch writes "
        "(many to a request) to this hc registry"
    )
    return result


# -- 6 ---------------------------------------------------------------------------------------------


def s6_repush(ctx: Context) -> ScenarioResult:
    n = ctx.sizes.small_count
    result = ScenarioResult(6, f"push the {n:,} files again (unchanged)", work=(n, "files"))
    tree = _tree(ctx)
    page_size = 1000  # what hc asks an hc registry for (100 from Harness)
    pages = math.ceil(n / page_size)
    worst = 0
    for run in range(ctx.runs):
        if not ctx.wants(result, "first push", run):
            continue
        home = ctx.fresh_dir("s6-home")
        env = ctx.env(home)
        with ctx.server("s6") as server, Proxy(server.port) as proxy:
            argv = ctx.hc(
                proxy.base_url,
                server.token,
                *("artifact", "push", "generic", REGISTRY, str(tree)),
                *("--name", "small", "--version", f"v{run}", "--progress", "none"),
            )
            for who in ("first push", "re-push"):
                before = proxy.snapshot()
                sample, _ = ctx.measure(who, run, argv, server=server, env=env)
                delta = proxy.snapshot().minus(before)
                sample.extra.update(requests=delta.request_count, methods=dict(delta.requests))
                result.samples.append(sample)
                if who == "re-push":
                    worst = max(worst, delta.request_count)
                    if delta.requests.get("PUT"):
                        result.notes.append(f"run {run}: the re-push sent {delta.requests['PUT']} PUTs")
            _expect_files(server, "small", f"v{run}", n, "hc")
        shutil.rmtree(home, ignore_errors=True)
    first, again = result.median_wall("first push"), result.median_wall("re-push")
    result.checks.append(
        Check("re-push time / first push", again / first if first and again else None, "<=", 0.1)
    )
    result.checks.append(Check("re-push requests", worst, "<=", pages + 10, unit=" req"))
    result.notes.append(
        f"request budget = {pages} listing page(s) of {page_size} + 10 (lookups); "
        f"measured: {result.of('re-push')[-1].extra.get('methods')}"
    )
    return result


# -- 7 ---------------------------------------------------------------------------------------------


def s7_pull_small(ctx: Context) -> ScenarioResult:
    n = ctx.sizes.small_count
    result = ScenarioResult(7, f"pull {n:,} files of 4 KiB", work=(n, "files"))
    tree = _tree(ctx)
    names = data.tree_files(tree)
    with ctx.server("s7") as server:
        started = time.perf_counter()
        upload = [(server.file_url(REGISTRY, "small", "1", f"{tree.name}/{x}"), tree / x) for x in names]
        ctx.measure(
            "setup", 0, curl_parallel(ctx.scratch / "s7-setup.cfg", server.token, upload, upload=True)
        )
        result.setup_seconds = time.perf_counter() - started
        digests = [hashlib.sha256((tree / x).read_bytes()).hexdigest() for x in names]
        for run in range(ctx.runs):
            for who in ("hc", "curl", BARE):
                if not ctx.wants(result, who, run):
                    continue
                dest = ctx.fresh_dir(f"s7-{who.replace(' ', '-')}")
                env = None
                if who == "hc":
                    argv = ctx.hc(
                        server.base_url,
                        server.token,
                        *(
                            "artifact",
                            "pull",
                            "generic",
                            REGISTRY,
                            "small/1",
                            str(dest),
                            "--progress",
                            "none",
                        ),
                    )
                elif who == BARE:
                    rows = [
                        (url, dest / tree.name / x, digest)
                        for (url, _), x, digest in zip(upload, names, digests, strict=True)
                    ]
                    argv, env = _bare(ctx, "get", rows, server.token)
                else:
                    transfers = [
                        (url, dest / tree.name / x) for (url, _), x in zip(upload, names, strict=True)
                    ]
                    argv = curl_parallel(ctx.scratch / "s7-curl.cfg", server.token, transfers, upload=False)
                sample, _ = ctx.measure(who, run, argv, server=server, env=env)
                got = sum(1 for p in dest.rglob("*") if p.is_file())
                if got != n:
                    raise RuntimeError(f"{who}: pulled {got} files, expected {n}")
                ctx.discard(dest)
                result.samples.append(sample)
    result.notes.append(_BARE_NOTE)
    result.checks.append(Check("hc vs curl --parallel 32", result.speedup("hc", "curl"), ">=", 1.0))
    return result
