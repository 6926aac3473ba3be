"""The login check the Go CLI makes: ``GET /ng/api/accounts/{account}`` answers 200 with a JSON
body when the key belongs to that account (403 otherwise, 401 for a bad key)."""

from __future__ import annotations

from aiohttp import web

from hc.protocol.routes import ACCOUNT_CHECK

from ..middlewares import require_account
from . import _common as c

routes = web.RouteTableDef()


@routes.get(ACCOUNT_CHECK)
async def get_account(request: web.Request) -> web.Response:
    account = require_account(request, request.match_info["account"])
    return c.ok({"identifier": account, "name": account, "accountName": account})


__all__ = ["routes"]
