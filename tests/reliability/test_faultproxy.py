"""The fault proxy does what its table says (the matrix's claims rest on it), per fault, against a
tiny upstream; and it runs as a script with its stats and config endpoints."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from .faultproxy import Fault, FaultProxy
from .support import free_port

BODY = bytes(range(256)) * 400


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, list[int]]]:
    received: list[int] = []

    async def get(_request: web.Request) -> web.Response:
        return web.Response(body=BODY)

    async def put(request: web.Request) -> web.Response:
        data = await request.read()
        received.append(len(data))
        return web.json_response({"sha": hash(data)})

    app = web.Application()
    app.router.add_get("/x", get)
    app.router.add_put("/x", put)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", received
    await runner.cleanup()


async def _get(url: str) -> tuple[int, bytes, dict[str, str]] | str:
    """(status, body, headers), or the name of the exception the client saw."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(url + "/x") as response,
        ):
            return response.status, await response.read(), dict(response.headers)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return type(exc).__name__


@pytest.mark.parametrize(
    ("fault", "seen"),
    [
        (Fault.RESET, {"ClientOSError", "ServerDisconnectedError"}),
        (Fault.RESET_RESPONSE, {"ClientPayloadError"}),
        (Fault.TRUNCATE, {"ClientPayloadError"}),
        (Fault.BAD_LENGTH, {"ClientPayloadError"}),
        (Fault.REFUSE, {"ClientOSError", "ClientConnectorError", "ServerDisconnectedError"}),
    ],
    ids=str,
)
async def test_connection_faults_break_the_exchange(
    upstream: tuple[str, list[int]], fault: Fault, seen: set[str]
) -> None:
    async with FaultProxy(upstream[0], rate=1.0, faults=[fault], refuse_seconds=0.5) as proxy:
        outcome = await _get(proxy.url)
        assert outcome in seen, outcome
        assert proxy.stats.injected[fault] >= 1


async def test_status_faults_and_retry_after(upstream: tuple[str, list[int]]) -> None:
    for fault, status in ((Fault.HTTP_500, 500), (Fault.HTTP_503, 503), (Fault.HTTP_502_AFTER, 502)):
        async with FaultProxy(upstream[0], rate=1.0, faults=[fault]) as proxy:
            outcome = await _get(proxy.url)
            assert not isinstance(outcome, str) and outcome[0] == status
    async with FaultProxy(upstream[0], rate=1.0, faults=[Fault.RATE_LIMIT], retry_after=7) as proxy:
        outcome = await _get(proxy.url)
        assert not isinstance(outcome, str) and outcome[0] == 429 and outcome[2]["Retry-After"] == "7"
    async with FaultProxy(upstream[0], rate=1.0, faults=[Fault.RATE_LIMIT_DATE], retry_after=60) as proxy:
        outcome = await _get(proxy.url)
        assert (
            not isinstance(outcome, str) and outcome[0] == 429 and outcome[2]["Retry-After"].endswith(" GMT")
        )


async def test_body_faults_change_the_bytes_silently(upstream: tuple[str, list[int]]) -> None:
    async with FaultProxy(upstream[0], rate=1.0, faults=[Fault.FLIP]) as proxy:
        outcome = await _get(proxy.url)
        assert not isinstance(outcome, str)
        status, body, _ = outcome
        assert status == 200 and len(body) == len(BODY) and body != BODY
        assert sum(bin(a ^ b).count("1") for a, b in zip(body, BODY, strict=True)) == 1
    async with FaultProxy(upstream[0], rate=1.0, faults=[Fault.SHORT_LENGTH]) as proxy:
        outcome = await _get(proxy.url)
        assert not isinstance(outcome, str)
        assert outcome[0] == 200 and BODY.startswith(outcome[1]) and len(outcome[1]) < len(BODY)


async def test_request_faults_reach_the_upstream_broken(upstream: tuple[str, list[int]]) -> None:
    url, received = upstream
    async with (
        FaultProxy(url, rate=1.0, faults=[Fault.RESET_REQUEST]) as proxy,
        aiohttp.ClientSession() as session,
    ):
        with pytest.raises(aiohttp.ClientError):
            async with session.put(proxy.url + "/x", data=BODY) as response:
                await response.read()
        await asyncio.sleep(0.2)
    assert received == []  # the upstream saw a body cut short, never a whole one
    async with (
        FaultProxy(url, rate=1.0, faults=[Fault.FLIP_REQUEST]) as proxy,
        aiohttp.ClientSession() as session,
        session.put(proxy.url + "/x", data=BODY) as response,
    ):
        assert (await response.json())["sha"] != hash(BODY)


async def test_stall_and_hang(upstream: tuple[str, list[int]]) -> None:
    async with FaultProxy(upstream[0], rate=1.0, faults=[Fault.STALL], stall_seconds=0.3) as proxy:
        started = time.monotonic()
        outcome = await _get(proxy.url)
        assert not isinstance(outcome, str) and outcome[1] == BODY
        assert time.monotonic() - started >= 0.3
    async with FaultProxy(upstream[0], rate=1.0, faults=[Fault.HANG], hang_max=30) as proxy:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.5)) as session:
            with pytest.raises(TimeoutError):
                async with session.get(proxy.url + "/x") as response:
                    await response.read()
        assert proxy.stats.injected[Fault.HANG] == 1


async def test_decisions_are_a_function_of_the_request_not_of_the_order(
    upstream: tuple[str, list[int]],
) -> None:
    async def outcomes(paths: list[str]) -> dict[str, bool]:
        async with FaultProxy(upstream[0], rate=0.5, faults=[Fault.HTTP_500], seed=3) as proxy:
            result = {}
            async with aiohttp.ClientSession() as session:
                for path in paths:
                    async with session.get(proxy.url + path) as response:
                        result[path] = response.status == 500
            return result

    paths = [f"/x?n={n}" for n in range(40)]
    forward, backward = await outcomes(paths), await outcomes(paths[::-1])
    assert forward == backward
    assert 5 < sum(forward.values()) < 35


async def test_first_attempts_only(upstream: tuple[str, list[int]]) -> None:
    async with FaultProxy(upstream[0], rate=1.0, faults=[Fault.HTTP_503], first_attempts=1) as proxy:
        first, second = await _get(proxy.url), await _get(proxy.url)
        assert not isinstance(first, str) and not isinstance(second, str)
        assert (first[0], second[0]) == (503, 200)


def test_runs_as_a_script_with_stats_and_config(tmp_path: Path) -> None:
    script = Path(__file__).with_name("faultproxy.py")
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(script),
            "--listen",
            f"127.0.0.1:{port}",
            "--upstream",
            "http://127.0.0.1:9",
            "--rate",
            "1",
            "--faults",
            "503",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        assert "faultproxy listening on" in proc.stdout.readline().decode()
        base = f"http://127.0.0.1:{port}"
        try:
            urllib.request.urlopen(base + "/anything")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503
        request = urllib.request.Request(
            base + "/__faultproxy__/config", data=json.dumps({"rate": 0}).encode(), method="POST"
        )
        with urllib.request.urlopen(request) as response:
            assert json.load(response)["rate"] == 0
        with urllib.request.urlopen(base + "/__faultproxy__/stats") as response:
            stats = json.load(response)
        assert stats["requests"] == 1 and stats["injected"] == {"503": 1}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
