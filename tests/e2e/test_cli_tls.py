"""TLS: verified by default, --ca-bundle adds a CA, --insecure turns verification off.

A throwaway HTTPS server with a self-signed certificate (made by the openssl CLI) runs on
127.0.0.1 in a background thread, so the CLI runs in-process against it.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from .conftest import HcRunner, lines, make_self_signed_cert

TOKEN = "pat.acct1.key.secret"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    cert, key = make_self_signed_cert(tmp_path_factory.mktemp("tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def registries(request: web.Request) -> web.Response:
        assert request.headers["x-api-key"] == TOKEN
        return web.json_response(
            {"status": "SUCCESS", "data": {"registries": [{"identifier": "secure"}], "pageCount": 1}}
        )

    app = web.Application()
    app.router.add_get("/gateway/har/api/v1/spaces/acct1/+/registries", registries)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    started = threading.Event()
    port: list[int] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port.append(runner.addresses[0][1])
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    try:
        yield f"https://127.0.0.1:{port[0]}", cert
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def test_unknown_certificate_is_refused_with_a_hint(hc: HcRunner, tls_server: tuple[str, Path]) -> None:
    url, _ = tls_server
    result = hc("--api-url", url, "--token", TOKEN, "registry", "list")
    assert result.exit_code == 2, result
    (line,) = lines(result.stderr)
    assert line.startswith("error: TLS certificate of 127.0.0.1 was not accepted")
    assert "--ca-bundle" in line and "--insecure" in line


def test_ca_bundle_makes_it_trusted(hc: HcRunner, tls_server: tuple[str, Path]) -> None:
    url, cert = tls_server
    result = hc(
        "--api-url", url, "--token", TOKEN, "--ca-bundle", str(cert), "registry", "list", "--format", "json"
    )
    assert result.exit_code == 0, result
    assert '"identifier": "secure"' in result.stdout


def test_insecure_skips_verification(hc: HcRunner, tls_server: tuple[str, Path]) -> None:
    url, _ = tls_server
    result = hc("registry", "list", "--api-url", url, "--token", TOKEN, "--insecure")
    assert result.exit_code == 0, result
    assert "secure" in result.stdout


def test_unreadable_ca_bundle_is_a_config_error(hc: HcRunner, tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-cert.pem"
    bogus.write_text("hello")
    result = hc(
        "--api-url", "https://127.0.0.1:9", "--token", TOKEN, "--ca-bundle", str(bogus), "registry", "list"
    )
    assert result.exit_code == 2, result
    assert lines(result.stderr)[0].startswith("error: cannot load CA bundle")
