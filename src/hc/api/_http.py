"""HTTP plumbing for the registry client: sessions, auth headers, error mapping, GET retries.

This is the boundary where aiohttp's exceptions and HTTP statuses become ``hc.errors``; nothing
above ``hc.api`` sees an aiohttp type. Tokens go into request headers only: they are never logged,
never put into a URL and never part of an error message. A server may still echo a key back in its
own error text (a proxy that quotes the request, a login page): every credential hc sends is
remembered here (``remember_secret``, called by the header builders) and blanked out of any text a
server wrote before it becomes part of an error (``redact``), so there is exactly one place to get
it right.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import time
import urllib.request
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from hc import __version__
from hc.errors import (
    AuthError,
    ConfigError,
    Conflict,
    HcError,
    NotFound,
    PermissionDenied,
    RateLimited,
    RemoteError,
    TransientError,
)
from hc.protocol.headers import parse_retry_after
from hc.protocol.retry import NO_RETRY, RetryPolicy, classify

__all__ = [
    "DEFAULT_TIMEOUT",
    "NO_RETRY",
    "USER_AGENT",
    "ConnectFailed",
    "EnvProxy",
    "RetryPolicy",
    "env_proxy",
    "error_for_status",
    "is_loopback_url",
    "keep_credentials_home",
    "management_headers",
    "map_http_errors",
    "open_session",
    "parse_retry_after",
    "pkg_headers",
    "proves_not_acted",
    "raise_for_status",
    "redact",
    "remember_secret",
    "safe_url",
    "server_message",
    "ssl_setting",
    "with_retries",
]

log = logging.getLogger("hc.api")

USER_AGENT: Final = f"hc/{__version__} (python)"

#: Session default: no overall limit (transfers may take hours) but a stalled connect or read fails.
DEFAULT_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)

_T = TypeVar("_T")
_MAX_MESSAGE: Final = 300
_MAX_ERROR_BODY: Final = 64 * 1024


class ConnectFailed(TransientError):
    """No connection could be made (refused, unreachable, DNS): the request never reached the server,
    so even a write is safe to send again; a registry that restarts looks like this for a while."""


#: Credentials (and their secret parts) this process has sent; see ``redact``.
_SECRETS: set[str] = set()
#: A part shorter than this is not blanked on its own: it would blank ordinary words.
_MIN_SECRET_PART: Final = 8
_REDACTED: Final = "***"


def remember_secret(value: str | None) -> None:
    """Remember a credential hc sends, so that ``redact`` blanks it (and its secret parts) out of
    any text a server sends back. Called wherever an auth header is built."""
    if not value or value in _SECRETS:
        return
    _SECRETS.add(value)
    # A server may echo only part of it: the value after an auth scheme ("Bearer x", "Basic x",
    # "CIManager x"), or a PAT's secret tail ("pat.<account>.<keyid>.<secret>").
    for part in (value.split(" ", 1)[-1], value.rsplit(".", 1)[-1]):
        if len(part) >= _MIN_SECRET_PART:
            _SECRETS.add(part)


def redact(text: str) -> str:
    """``text`` with every remembered credential blanked out (longest first, so a whole key goes
    in one piece rather than leaving its prefix behind)."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return text


def management_headers(token: str) -> dict[str, str]:
    """v1/v2/v3 management calls authenticate with ``x-api-key`` (as the Go CLI)."""
    remember_secret(token)
    return {"x-api-key": token}


def pkg_headers(token: str) -> dict[str, str]:
    """Package endpoints: a CI JWT (``CIManager…``) goes raw in ``Authorization`` (no ``Bearer``),
    any other key in ``x-api-key``; this is what the Go CLI settled on (commit 3841e11)."""
    remember_secret(token)
    if token.startswith("CIManager"):
        return {"Authorization": token}
    return {"x-api-key": token}


#: Headers that carry hc's credential (``x-api-key``, a CI JWT or a WebDAV login in ``Authorization``).
_CREDENTIAL_HEADERS: Final = ("x-api-key", "Authorization")


def keep_credentials_home() -> tuple[aiohttp.ClientMiddlewareType]:
    """Per-request middleware (``middlewares=``) that drops the credential headers from every hop of
    a redirect that leaves the request's first origin (another host, port or scheme, so an https
    -> http downgrade too). aiohttp itself drops only ``Authorization``; a custom ``x-api-key``
    would follow a registry's redirect to a storage host, a CDN, or anyone a proxy names."""
    first: list[URL] = []

    async def middleware(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        if not first:
            first.append(request.url)  # origins are compared only if a redirect happens
        elif request.url.origin() != first[0].origin():
            for name in _CREDENTIAL_HEADERS:
                request.headers.popall(name, None)
        return await handler(request)

    return (middleware,)


def safe_url(url: str | URL) -> str:
    """A URL fit to show (an error, a ``-v`` line): no ``user:password@``, no remembered secret."""
    text = str(url)
    parts = urlsplit(text)
    if "@" in parts.netloc:
        text = text.replace(parts.netloc, parts.netloc.rsplit("@", 1)[1], 1)
    return redact(text)


def ssl_setting(*, insecure: bool, ca_bundle: Path | None) -> ssl.SSLContext | bool:
    """TLS verification: on by default; ``ca_bundle`` adds a CA to the system ones; ``insecure`` turns
    verification off (aiohttp's ``ssl=False``)."""
    if insecure:
        return False
    if ca_bundle is None:
        # aiohttp's own verifying context, built once per process: a new one per command costs
        # ~30 ms of reading the system CA store, even for a plain-http loopback registry.
        return True
    context = ssl.create_default_context()
    if ca_bundle is not None:
        try:
            context.load_verify_locations(cafile=str(ca_bundle))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load CA bundle {ca_bundle}: {exc}") from None
    return context


def is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


@dataclass(frozen=True, slots=True)
class EnvProxy:
    """The proxy the environment names for a URL; its ``user:password@`` is taken out as ``auth``."""

    url: URL
    auth: aiohttp.BasicAuth | None = field(default=None, repr=False)


def env_proxy(url: str) -> EnvProxy | None:
    """The proxy ``HTTPS_PROXY``/``HTTP_PROXY`` (by the URL's scheme, either case) name for ``url``,
    unless ``NO_PROXY`` covers its host; none for a loopback URL (a proxy setting must not swallow
    local traffic). The choice aiohttp's ``trust_env`` makes, including its refusal of ``https://``
    proxies, without the rest of ``trust_env`` (see ``open_session``)."""
    if is_loopback_url(url):
        return None
    parts = urlsplit(url)
    chosen = urllib.request.getproxies().get(parts.scheme)
    if not chosen or (parts.hostname and urllib.request.proxy_bypass(parts.hostname)):
        return None
    try:
        proxy = URL(chosen)
    except ValueError:
        raise ConfigError(f"the {parts.scheme} proxy setting is not a URL") from None
    if proxy.scheme != "http":
        return None
    auth = None
    if proxy.user is not None:
        with _no_basic_auth_deprecation():
            auth = aiohttp.BasicAuth(proxy.user, proxy.password or "")
        remember_secret(proxy.password)
        proxy = proxy.with_user(None)
    return EnvProxy(proxy, auth)


@contextmanager
def _no_basic_auth_deprecation() -> Iterator[None]:
    # aiohttp 3.14 deprecates BasicAuth and proxy_auth for encode_basic_auth() in per-request
    # proxy_headers, which older releases (hc supports 3.12 up) do not have; both work until 4.0.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _per_url_proxy_requests() -> type[aiohttp.ClientRequest]:
    """A request class that sends each request (and each redirect hop) through the proxy the
    environment names for its URL (``env_proxy``, asked once per origin): the per-request choice of
    aiohttp's ``trust_env``, without its ``~/.netrc`` passwords."""
    chosen: dict[tuple[str, str | None, int | None], EnvProxy | None] = {}

    class PerUrlProxyRequest(aiohttp.ClientRequest):
        def __init__(
            self,
            method: str,
            url: URL,
            *,
            proxy: URL | None = None,
            proxy_auth: aiohttp.BasicAuth | None = None,
            **kwargs: Any,
        ) -> None:
            if proxy is None:
                origin = (url.scheme, url.host, url.port)
                if origin not in chosen:
                    chosen[origin] = env_proxy(str(url.origin()))
                choice = chosen[origin]
                if choice is not None:
                    proxy, proxy_auth = choice.url, choice.auth
            super().__init__(method, url, proxy=proxy, proxy_auth=proxy_auth, **kwargs)

    return PerUrlProxyRequest


@asynccontextmanager
async def open_session(
    *,
    insecure: bool = False,
    ca_bundle: Path | None = None,
    proxy_for: Sequence[str] = (),
    limit: int = 64,
    limit_per_host: int = 32,
    timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
) -> AsyncIterator[aiohttp.ClientSession]:
    """One pooled session for a command, its requests sent through the proxy the environment names
    for the ``proxy_for`` URLs (``env_proxy``; loopback URLs never use one).

    Not aiohttp's ``trust_env``: besides proxies it reads ``~/.netrc`` and adds the password it
    holds for a host as Basic auth to every request without one, so a user's git credentials for
    the registry host would travel with the API key, and a CI JWT (sent in ``Authorization``)
    would fail with aiohttp's "Cannot combine AUTHORIZATION header"; it also costs two thread
    hops (netrc and proxy lookups) per request. When the URLs need different proxies (one host in
    NO_PROXY), each request picks its own by its URL (``_per_url_proxy_requests``)."""
    connector = aiohttp.TCPConnector(
        limit=limit,
        limit_per_host=limit_per_host,
        ttl_dns_cache=300,
        ssl=ssl_setting(insecure=insecure, ca_bundle=ca_bundle),
    )
    choices = {env_proxy(url) for url in proxy_for}
    mixed = len(choices) > 1
    proxy = None if mixed else next(iter(choices), None)
    with _no_basic_auth_deprecation():
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers={"User-Agent": USER_AGENT},
            request_class=_per_url_proxy_requests() if mixed else aiohttp.ClientRequest,
            proxy=proxy.url if proxy is not None else None,
            proxy_auth=proxy.auth if proxy is not None else None,
            # The Harness API authenticates every request by header and sets no cookie hc needs;
            # the default jar would filter and update cookies on every request and response.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
    async with session:
        yield session


@contextmanager
def map_http_errors(method: str, url: str) -> Iterator[None]:
    """Translate aiohttp and timeout exceptions raised inside the block into ``hc.errors``."""

    def _where() -> str:
        # Built only on failure: this wraps every request, and a success needs no description.
        return f"{method} {_display_url(url)}"

    try:
        yield
    except HcError:
        raise
    except aiohttp.ClientConnectorCertificateError as exc:
        raise ConfigError(
            f"TLS certificate of {exc.host} was not accepted ({exc.certificate_error}); "
            "pass --ca-bundle FILE to trust its CA, or --insecure"
        ) from exc
    except aiohttp.ClientSSLError as exc:
        raise RemoteError(f"TLS handshake with {exc.host}:{exc.port} failed: {exc.os_error}") from exc
    except aiohttp.ClientConnectorError as exc:
        reason = exc.os_error.strerror or str(exc)
        raise ConnectFailed(f"cannot connect to {exc.host}:{exc.port}: {reason}") from exc
    except aiohttp.ClientResponseError as exc:
        raise error_for_status(exc.status, message=exc.message, where=_where()) from exc
    except aiohttp.InvalidURL as exc:
        raise ConfigError(f"invalid URL {_display_url(str(exc.url))}") from exc
    except aiohttp.TooManyRedirects as exc:
        raise RemoteError(f"{_where()}: too many redirects") from exc
    except TimeoutError as exc:
        raise TransientError(f"{_where()}: timed out") from exc
    except aiohttp.ClientError as exc:
        # aiohttp's text may quote what the server sent (a status line, a header)
        detail = redact(str(exc)) or type(exc).__name__
        raise TransientError(f"{_where()}: {detail}") from exc


async def raise_for_status(response: aiohttp.ClientResponse) -> None:
    """Raise the ``hc.errors`` exception for a response with status >= 400 (reads the body)."""
    if response.status < 400:
        return
    try:
        # An error body is only read for its message: a bounded prefix is enough.
        body = await response.content.read(_MAX_ERROR_BODY)
    except (aiohttp.ClientError, TimeoutError):
        body = b""
    raise error_for_status(
        response.status,
        message=server_message(body),
        where=f"{response.method} {_display_url(str(response.url))}",
        retry_after=response.headers.get("Retry-After"),
    )


def error_for_status(
    status: int, *, message: str | None, where: str, retry_after: str | None = None
) -> HcError:
    """The error for an HTTP status; ``message`` is the server's own explanation when it gave one
    (blanked of any credential it echoes)."""
    detail = f": {redact(message)}" if message else ""
    if status == 401:
        return AuthError(
            f"authentication failed (HTTP 401){detail or ': the server refused the key'}", status=status
        )
    if status == 403:
        return PermissionDenied(f"permission denied (HTTP 403){detail}", status=status)
    if status == 404:
        return NotFound(f"not found (HTTP 404){detail or ': ' + where}", status=status)
    if status == 409:
        return Conflict(f"conflict (HTTP 409){detail}", status=status)
    if status in (429, 503) and retry_after is not None:
        delay = parse_retry_after(retry_after)
        if delay is not None:
            return RateLimited(
                f"{where}: server busy (HTTP {status}), retry after {delay:g}s{detail}",
                retry_after=delay,
                status=status,
            )
    if status == 429 or (status >= 500 and status != 501):
        return TransientError(f"{where}: server error (HTTP {status}){detail}", status=status)
    return RemoteError(f"{where}: request refused (HTTP {status}){detail}", status=status)


def server_message(body: bytes) -> str | None:
    """The explanation in a Harness error body: ``{code, message}`` (v1/v2) or ``{error: {message}}``
    (v3); otherwise the first line of a short text body. Control characters are dropped so a server
    cannot write terminal escapes into our output, and a credential it echoes is blanked out (before
    the message is shortened, which could otherwise leave part of it)."""
    if not body:
        return None
    text = body.decode("utf-8", errors="replace")
    message: object = None
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        message = data.get("message")
        error = data.get("error")
        if not message and isinstance(error, dict):
            message = error.get("message")
        elif not message and isinstance(error, str):
            message = error
        if not message:
            return None
    elif data is None and not text.lstrip().startswith("<"):
        message = text.strip().splitlines()[0] if text.strip() else None
    if not isinstance(message, str) or not message.strip():
        return None
    clean = "".join(ch if ch.isprintable() else " " for ch in redact(message.strip()))
    return clean if len(clean) <= _MAX_MESSAGE else clean[: _MAX_MESSAGE - 1] + "…"


def proves_not_acted(error: HcError) -> bool:
    """Whether a failure proves the server did not act on the request, so that even a write that
    is not idempotent can be sent again: no connection was made, or the answer was 429 or 503
    (the server refusing to take the request on)."""
    return isinstance(error, ConnectFailed) or error.status in (429, 503)


async def with_retries(call: Callable[[], Awaitable[_T]], *, policy: RetryPolicy, what: str) -> _T:
    """Run ``call`` until it succeeds, fails with an error not worth retrying, or the policy gives
    up (``hc.protocol.retry``: the engine's rule, without its shared rate gate)."""
    attempt = 0
    first_failure: float | None = None
    while True:
        attempt += 1
        try:
            return await call()
        except TransientError as exc:
            decision = classify(exc)
            now = time.monotonic()
            first_failure = now if first_failure is None else first_failure
            if policy.gives_up(attempt, decision, now - first_failure):
                raise
            delay = policy.backoff.delay(attempt, decision, random.random())
            log.debug("%s: %s; retry %d in %.2fs", what, exc, attempt, delay)
            await asyncio.sleep(delay)


def _display_url(url: str) -> str:
    # Error lines show where a request went without the query string (long, and not useful) and
    # without any user:password@ in it.
    parts = urlsplit(url)
    return safe_url(f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme else url)
