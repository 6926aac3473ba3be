"""Cross-cutting request handling: errors become JSON bodies, every request needs an API key.

Errors: an ``HcError`` raised anywhere below a handler becomes ``{"code", "message"}`` (v1, v2, the
package endpoints and the ng check) or ``{"error": {"type", "code", "message"}}`` (v3, where the Go
CLI reads ``error.message``), with the class's ``http_status``. aiohttp's own 404/405 get the same
bodies so clients parse one shape. Anything unexpected is logged with a short incident id and
answered with a generic 500 carrying that id: no traceback or internal detail reaches the client.

Auth: there are no anonymous routes, not even the login check or system/info (the Go CLI sends a
key to both). The key's account is stored on the request; handlers compare it with the account
their path or query names (``require_account``), which is the only authorisation rule: one key,
one account, all of it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from hc.errors import AuthError, HcError, PermissionDenied
from hc.protocol.models import error_body_v1, error_body_v3
from hc.protocol.routes import V3

from .auth import extract_token, token_digest
from .metadata import Catalog
from .state import ACCOUNT, STATE

__all__ = ["auth_middleware", "error_middleware", "error_response", "inflight_middleware", "require_account"]

log = logging.getLogger("hc.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    416: "RANGE_NOT_SATISFIABLE",
}


def error_response(request: web.Request, status: int, code: str, message: str) -> web.Response:
    if request.path.startswith(V3 + "/"):
        body = error_body_v3(status, code, message)
    else:
        body = error_body_v1(code, message)
    return web.json_response(body, status=status)


@web.middleware
async def inflight_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count requests in progress, so a graceful stop can wait for them (aiohttp's own shutdown
    stops reading request bodies at once, which would cut an upload short)."""
    state = request.app[STATE]
    state.request_started()
    try:
        return await handler(request)
    finally:
        state.request_finished()


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HcError as exc:
        status = exc.http_status
        response = error_response(request, status, exc.code, exc.message)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="hc"'
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "HTTP_ERROR")
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        response = error_response(request, exc.status, code, message)
        for header in ("Allow", "Content-Range"):
            if header in exc.headers:
                response.headers[header] = exc.headers[header]
        return response
    except Exception:
        incident = uuid.uuid4().hex[:12]
        log.exception("internal error %s on %s %s", incident, request.method, request.path)
        return error_response(
            request, 500, "INTERNAL_ERROR", f"internal server error (incident {incident}; see the server log)"
        )


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = extract_token(request.headers)
    if not token:
        raise AuthError("missing API key: send it in the x-api-key header")
    state = request.app[STATE]
    digest = token_digest(token)
    account = state.tokens.get(digest)
    if account is None:
        account = await state.db.run(Catalog.account_for_token, digest)
        if account is None:
            raise AuthError("invalid API key")
        state.tokens.put(digest, account)
    request[ACCOUNT] = account
    return await handler(request)


def require_account(request: web.Request, account: str | None) -> str:
    """The request's account, after checking that ``account`` (from the path or query) is it."""
    mine: str = request[ACCOUNT]
    if account is None or account == "":
        return mine
    if account != mine:
        raise PermissionDenied(f"this API key may not access account {account!r}")
    return mine
