"""Who is calling: `Authorization: Bearer <token>`, or `?access_token=` for EventSource."""

from __future__ import annotations

from starlette.requests import Request

from service import tokens
from service.context import Context
from service.errors import Forbidden, Unauthorized
from service.tokens import ADMIN, Principal


def presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("access_token") or None


async def authenticate(request: Request) -> Principal:
    ctx: Context = request.app.state.ctx
    token = presented_token(request)
    if not token:
        raise Unauthorized()
    if tokens.is_admin_token(token, ctx.settings.admin_token):
        return ADMIN
    async with ctx.db.connect() as conn:
        principal = await tokens.find_principal(conn, token)
    if principal is None:
        raise Unauthorized("That token is not valid (unknown or revoked).")
    return principal


async def require_admin(request: Request) -> Principal:
    principal = await authenticate(request)
    if not principal.is_admin:
        raise Forbidden()
    return principal
