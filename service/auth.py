"""Who is calling: `Authorization: Bearer <token>`; `?access_token=` only where a browser cannot
send headers (EventSource streams, the player's audio element).

A token in a URL lands in proxy and browser logs the app cannot redact, so every other route
refuses it. Failed authentications are counted per client address, and an address that keeps
failing is answered 429 for a while instead of having its guesses checked.
"""

from __future__ import annotations

import time
from collections import deque

from starlette.requests import Request

from service import tokens
from service.context import Context
from service.errors import Forbidden, TooManyRequests, Unauthorized
from service.tokens import ADMIN, Principal

QUERY_TOKEN_ROUTES = frozenset(
    {
        "/api/runs/events",
        "/api/runs/{run_id}/events",
        "/api/audio/{audio_id}/content",
    }
)
"""The GET routes (path templates) that accept `?access_token=`: the two streams and the audio
content a player fetches. A new route opts in by being named here."""

AUTH_FAILURE_WINDOW_S = 60.0


class FailedAuthentications:
    """Failed authentications per client address in a sliding window, in this process."""

    def __init__(self, limit: int, window_s: float = AUTH_FAILURE_WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures

    def retry_after_s(self, client: str) -> int | None:
        """Seconds until `client` may try again, or None if it may now."""
        now = time.monotonic()
        failures = self._recent(client, now)
        if self.limit <= 0 or failures is None or len(failures) < self.limit:
            return None
        return max(1, int(failures[0] + self.window_s - now) + 1)

    def record(self, client: str) -> None:
        now = time.monotonic()
        if len(self._failures) > 100_000:
            for address in list(self._failures):
                self._recent(address, now)
        self._failures.setdefault(client, deque()).append(now)


def token_in_query_allowed(request: Request) -> bool:
    route = request.scope.get("route")
    return request.method in ("GET", "HEAD") and getattr(route, "path", None) in QUERY_TOKEN_ROUTES


def presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    in_query = request.query_params.get("access_token")
    if not in_query:
        return None
    if not token_in_query_allowed(request):
        raise Unauthorized(
            "`access_token` in the URL is accepted only by the event streams and audio content; "
            "send `Authorization: Bearer <token>`."
        )
    return in_query


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def authenticate(request: Request) -> Principal:
    ctx: Context = request.app.state.ctx
    failures: FailedAuthentications = request.app.state.auth_failures
    client = _client(request)
    retry_after = failures.retry_after_s(client)
    if retry_after is not None:
        raise TooManyRequests(retry_after_s=retry_after)
    try:
        return await _principal(ctx, presented_token(request))
    except Unauthorized:
        failures.record(client)
        raise


async def _principal(ctx: Context, token: str | None) -> Principal:
    if not token:
        raise Unauthorized()
    if tokens.is_admin_token(token, ctx.settings.admin_token):
        return ADMIN
    async with ctx.db.connect() as conn:
        principal = await tokens.find(conn, token)
    if principal is None or (tokens.is_reserved_owner(principal.owner) and not principal.is_admin):
        raise Unauthorized("That token is not valid (unknown or revoked).")
    return principal


async def require_admin(request: Request) -> Principal:
    principal = await authenticate(request)
    if not principal.is_admin:
        raise Forbidden()
    return principal
