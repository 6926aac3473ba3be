"""Secrets hygiene of the client: where a credential may travel and where it may be shown.

- A redirect to another origin (host, port or scheme) must not carry the credential: aiohttp drops
  ``Authorization`` on such a hop, but not hc's ``x-api-key``. Every request that follows redirects
  (management JSON, HEAD stat, GET download, upload-session calls) is checked against two real
  servers on 127.0.0.1 (different ports are different origins).
- A password in a URL's userinfo (``https://user:pw@host``) is never printed: the API URL refuses
  one (the key belongs in the token), a WebDAV migration source takes it as its login instead.
- ``~/.netrc`` adds nothing to a registry request (aiohttp's ``trust_env`` would add its password as
  Basic auth, and fail outright beside a CI JWT); proxies from the environment still apply.
- An advertised package URL that would take the key off TLS (https API, http package URL) is
  not used.
- Config files that hold a key are 0600 in a 0700 folder whatever was there before.

tests/reliability/test_secrets.py covers every command's output with ``-v`` against failing servers.
"""

from __future__ import annotations

import base64
import contextlib
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hc.api import Endpoint, connect
from hc.api.files import HarnessRemote
from hc.api.webdav import open_webdav
from hc.config import AuthConfig, write_auth_file
from hc.errors import ConfigError, HcError, NotFound, RemoteError
from hc.protocol.files import FileRef

from .conftest import HcRunner, Sandbox

PAT = "pat.acct1.keyid.RedirectSecret0123456789"
JWT = "CIManager eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjaSJ9.JwtSecretPart0123456789"
URL_PASSWORD = "UrlPassw0rd-do-not-show"

ServerFactory = Callable[..., Awaitable[TestServer]]


@dataclass
class Landing:
    """The other origin: records the credentials each request brought."""

    keys: list[str | None] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    proxy_authorizations: list[str | None] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.keys.append(request.headers.get("x-api-key"))
        self.authorizations.append(request.headers.get("Authorization"))
        self.proxy_authorizations.append(request.headers.get("Proxy-Authorization"))
        if "/gateway/" in request.path:
            return web.json_response(
                {"status": "SUCCESS", "data": {"registries": [], "pageCount": 0, "id": "s1", "size": 4}}
            )
        return web.Response(body=b"data", headers={"X-Checksum-Sha256": "0" * 64})


@dataclass
class Servers:
    home: str
    other: str
    landing: Landing
    home_keys: list[str | None]


@pytest.fixture
async def servers(aiohttp_server: ServerFactory) -> AsyncIterator[Servers]:
    """``home`` answers every request with a 307 to the same path on ``other`` (a file named
    ``same.bin``: to ``/same/…`` on itself, which must keep the key)."""
    landing = Landing()
    other_app = web.Application()
    other_app.router.add_route("*", "/{tail:.*}", landing.handle)
    other = await aiohttp_server(other_app, host="127.0.0.1")
    other_url = str(other.make_url("")).rstrip("/")
    home_keys: list[str | None] = []

    async def redirect(request: web.Request) -> web.StreamResponse:
        home_keys.append(request.headers.get("x-api-key"))
        if request.path.startswith("/same/"):
            return await landing.handle(request)
        if request.path.endswith("/same.bin"):
            raise web.HTTPTemporaryRedirect("/same" + request.path_qs)
        raise web.HTTPTemporaryRedirect(other_url + request.path_qs)

    home_app = web.Application()
    home_app.router.add_route("*", "/{tail:.*}", redirect)
    home = await aiohttp_server(home_app, host="127.0.0.1")
    yield Servers(str(home.make_url("")).rstrip("/"), other_url, landing, home_keys)


def _endpoint(base: str, token: str) -> Endpoint:
    return Endpoint(api_url=base, pkg_url=base, account="acct1", token=token)


@dataclass(frozen=True)
class _Session:
    id: str = "s1"
    size: int = 4


@dataclass(frozen=True)
class _Bytes:
    size: int = 4

    async def open(self) -> AsyncIterator[bytes]:
        yield b"data"


async def _management_get(remote: HarnessRemote) -> None:
    await remote._client.list_registries_page()


async def _head(remote: HarnessRemote) -> None:
    await remote.stat(FileRef(package="p", version="1", path="f.bin"))


async def _download(remote: HarnessRemote) -> None:
    async with remote.open_read(FileRef(package="p", version="1", path="f.bin")) as stream:
        assert b"".join([chunk async for chunk in stream]) == b"data"


async def _resume(remote: HarnessRemote) -> None:
    await remote.resume_upload(FileRef(package="p", version="1", path="f.bin"), "s1")


async def _abort(remote: HarnessRemote) -> None:
    await remote.abort_upload(FileRef(package="p", version="1", path="f.bin"), _Session())


REQUESTS = {
    "management-get": _management_get,
    "head-stat": _head,
    "download": _download,
    "upload-session-get": _resume,
    "upload-session-delete": _abort,
}


@pytest.mark.parametrize("token", [PAT, JWT], ids=["api-key", "ci-jwt"])
@pytest.mark.parametrize("call", list(REQUESTS), ids=list(REQUESTS))
async def test_a_redirect_to_another_origin_carries_no_credential(
    servers: Servers, call: str, token: str
) -> None:
    async with connect(_endpoint(servers.home, token)) as client:
        remote = HarnessRemote(client, "reg")
        # what the other host answers does not matter; what it received does
        with contextlib.suppress(HcError):
            await REQUESTS[call](remote)
    assert servers.home_keys and servers.home_keys[0] == token  # the key went where it belongs
    assert servers.landing.keys, "the redirect was not followed"
    assert servers.landing.keys == [None] * len(servers.landing.keys)
    assert servers.landing.authorizations == [None] * len(servers.landing.authorizations)


async def test_a_same_origin_redirect_keeps_the_key(servers: Servers) -> None:
    async with connect(_endpoint(servers.home, PAT)) as client:
        remote = HarnessRemote(client, "reg")
        where = FileRef(package="p", version="1", path="same.bin")
        async with remote.open_read(where) as stream:
            assert b"".join([chunk async for chunk in stream]) == b"data"
        assert await remote.stat(where) is not None
    assert servers.landing.keys == [PAT, PAT]


# -- a password in a URL ------------------------------------------------------------------------


# Nothing listens on port 9 of 127.0.0.1 (discard): without the refusal hc would try, fail, and say where.


def test_an_api_url_with_a_password_is_refused_without_showing_it(hc: HcRunner) -> None:
    for url in (
        f"http://alice:{URL_PASSWORD}@127.0.0.1:9",
        f"http://alice:{URL_PASSWORD}@127.0.0.1:x",  # and a malformed one: the error quotes the URL
        f"alice:{URL_PASSWORD}@127.0.0.1:9",
    ):
        run = hc("-v", "--api-url", url, "--token", PAT, "--pkg-url", url, "registry", "list")
        assert run.exit_code == 2, run
        assert URL_PASSWORD not in run.stdout + run.stderr, run
        assert "password" in run.stderr, run


def test_login_with_a_password_in_the_url_is_refused_and_saves_nothing(
    hc: HcRunner, sandbox: Sandbox
) -> None:
    run = hc("auth", "login", "--api-url", f"http://bob:{URL_PASSWORD}@127.0.0.1:9", "--api-token", PAT)
    assert run.exit_code == 2, run
    assert URL_PASSWORD not in run.stdout + run.stderr
    assert not sandbox.auth_file.exists()


async def test_a_webdav_password_in_the_url_logs_in_but_is_never_shown(
    aiohttp_server: ServerFactory,
) -> None:
    seen: list[str | None] = []

    async def dav(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization"))
        raise web.HTTPNotFound(text=f"no such thing (you sent {request.headers.get('Authorization')})")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", dav)
    server = await aiohttp_server(app, host="127.0.0.1")
    url = str(server.make_url("/files")).replace("http://", f"http://carol:{URL_PASSWORD}@")
    async with open_webdav(url) as client:
        assert URL_PASSWORD not in repr(client)
        with pytest.raises(NotFound) as missing:
            await client.list_dir("nope")
        assert await client.stat("nope/file") is None
    basic = "Basic " + base64.b64encode(f"carol:{URL_PASSWORD}".encode()).decode()
    assert seen and set(seen) == {basic}  # the URL's login is used
    assert URL_PASSWORD not in str(missing.value)
    assert base64.b64encode(f"carol:{URL_PASSWORD}".encode()).decode() not in str(missing.value)


# -- files that hold a key --------------------------------------------------------------------------


def test_auth_file_is_private_whatever_was_there(tmp_path: Path) -> None:
    folder = tmp_path / ".harness"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    path = folder / "auth.json"
    path.write_text("{}")
    path.chmod(0o644)
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("untouched")
    old_umask = os.umask(0)
    try:
        write_auth_file(path, AuthConfig(base_url="https://h", token=PAT, account_id="acct1"))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        # a symlink at the path is replaced, never written through
        path.unlink()
        path.symlink_to(elsewhere)
        write_auth_file(path, AuthConfig(base_url="https://h", token=PAT, account_id="acct1"))
    finally:
        os.umask(old_umask)
    assert not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert elsewhere.read_text() == "untouched"


def test_a_registry_url_with_a_password_is_refused_without_showing_it() -> None:
    # e.g. a migration config's HAR endpoint: aiohttp would send the userinfo as a second credential
    with pytest.raises(ConfigError) as refused:
        _endpoint(f"https://dave:{URL_PASSWORD}@registry.example", PAT)
    assert URL_PASSWORD not in str(refused.value) and "user:password@" in str(refused.value)


async def test_an_upload_session_answer_that_is_not_json_is_a_clear_error(servers: Servers) -> None:
    # the redirect lands on a host that answers 200 with plain text: a RemoteError, no traceback
    async with connect(_endpoint(servers.home, PAT)) as client:
        with pytest.raises(RemoteError, match="did not answer with JSON"):
            await _resume(HarnessRemote(client, "reg"))


# -- proxies and ~/.netrc ------------------------------------------------------------------------


@pytest.fixture
async def recorder(aiohttp_server: ServerFactory) -> AsyncIterator[tuple[str, Landing]]:
    landing = Landing()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", landing.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    yield str(server.make_url("")).rstrip("/"), landing


@pytest.mark.parametrize("token", [PAT, JWT], ids=["api-key", "ci-jwt"])
async def test_netrc_passwords_are_not_added_to_registry_requests(
    recorder: tuple[str, Landing], token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user's git login for the registry host (Harness Code) in ~/.netrc; an API URL that is not
    # loopback makes the session honour the environment (for proxies). The HEAD goes to the
    # package URL with the key (and a CI JWT in Authorization, as the Go CLI sends it).
    base, landing = recorder
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login git password {URL_PASSWORD}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    endpoint = Endpoint(api_url="https://api.registry.invalid", pkg_url=base, account="acct1", token=token)
    async with connect(endpoint) as client:
        await _head(HarnessRemote(client, "reg"))
    assert landing.keys == [token]
    assert landing.authorizations == [token if token.startswith("CIManager") else None]


def test_the_environment_proxy_is_chosen_like_curl(monkeypatch: pytest.MonkeyPatch) -> None:
    from hc.api._http import env_proxy

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://proxyuser:{URL_PASSWORD}@proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "internal.corp")
    chosen = env_proxy("https://app.harness.io")
    assert chosen is not None and str(chosen.url) == "http://proxy.corp:3128"
    assert chosen.auth is not None and chosen.auth.password == URL_PASSWORD
    assert URL_PASSWORD not in repr(chosen)
    assert env_proxy("http://app.harness.io") is None  # no HTTP_PROXY
    assert env_proxy("https://registry.internal.corp") is None  # NO_PROXY
    assert env_proxy("https://127.0.0.1:8443") is None  # loopback never
    monkeypatch.setenv("HTTPS_PROXY", "https://proxy.corp:3128")
    assert env_proxy("https://app.harness.io") is None  # aiohttp cannot use an https proxy either


#: what a proxy given as ``http://puser:ppass@…`` receives
PROXY_AUTHORIZATION = "Basic " + base64.b64encode(b"puser:ppass").decode()


def _http_proxy_is(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment names ``base`` (with the user ``puser:ppass``) as the only proxy, for http."""
    for name in ("HTTPS_PROXY", "NO_PROXY", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", base.replace("http://", "http://puser:ppass@"))
    monkeypatch.setenv("http_proxy", base.replace("http://", "http://puser:ppass@"))


async def test_requests_go_through_the_environment_proxy(
    recorder: tuple[str, Landing], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The "proxy" is the recording server: a plain-http registry behind it needs no DNS.
    base, landing = recorder
    _http_proxy_is(base, monkeypatch)
    endpoint = _endpoint("http://registry.invalid", PAT)
    async with connect(endpoint) as client:
        await client.list_registries_page()
    assert landing.keys == [PAT]
    assert landing.proxy_authorizations == [PROXY_AUTHORIZATION]


async def test_with_different_proxies_for_api_and_packages_each_request_takes_its_own(
    recorder: tuple[str, Landing], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API URL is loopback (never proxied) and the package URL a name only the proxy (the
    # recording server again) can reach: one session, two proxy choices. ~/.netrc holds logins for
    # both hosts; neither may travel (aiohttp's trust_env, used for this case before, sent them).
    base, landing = recorder
    _http_proxy_is(base, monkeypatch)
    netrc = tmp_path / "netrc"
    netrc.write_text(
        f"machine 127.0.0.1 login git password {URL_PASSWORD}\n"
        f"machine pkg.invalid login git password {URL_PASSWORD}\n"
    )
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    endpoint = Endpoint(api_url=base, pkg_url="http://pkg.invalid", account="acct1", token=PAT)
    async with connect(endpoint) as client:
        await client.list_registries_page()  # the API: straight to the server
        await _head(HarnessRemote(client, "reg"))  # a package URL: through the proxy
    assert landing.keys == [PAT, PAT]
    assert landing.authorizations == [None, None]
    assert landing.proxy_authorizations == [None, PROXY_AUTHORIZATION]


@pytest.mark.parametrize(
    ("api", "advertised", "trusted"),
    [
        ("https://app.harness.io", "https://pkg.harness.io", True),
        ("http://registry.lan:8080", "http://registry.lan:8080", True),
        ("https://app.harness.io", "http://pkg.harness.io", False),  # the key would leave TLS
        ("https://127.0.0.1:8443", "http://127.0.0.1:8080", True),  # loopback never leaves the host
        ("https://app.harness.io", f"https://u:{URL_PASSWORD}@pkg.harness.io", False),
        ("https://app.harness.io", "ftp://pkg.harness.io", False),
    ],
)
def test_an_advertised_package_url_never_takes_the_key_off_tls(
    api: str, advertised: str, trusted: bool
) -> None:
    from hc.api.client import untrusted_package_url

    assert (untrusted_package_url(api, advertised) is None) is trusted


async def test_login_keeps_the_key_on_the_api_url_when_the_advertised_one_is_refused(
    aiohttp_server: ServerFactory,
) -> None:
    async def info(request: web.Request) -> web.Response:
        return web.json_response({"status": "SUCCESS", "data": {"registryUrl": "ftp://files.example"}})

    app = web.Application()
    app.router.add_get("/gateway/har/api/v3/system/info", info)
    server = await aiohttp_server(app, host="127.0.0.1")
    async with connect(_endpoint(str(server.make_url("")).rstrip("/"), PAT)) as client:
        assert await client.package_url() is None
