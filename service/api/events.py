"""The SSE endpoints: per-run and global streams.

Every message is unnamed (so `EventSource.onmessage` gets all of them and an `error` message
never collides with the browser's connection-error event); its JSON carries `event`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from service.api.runs import visible_run
from service.auth import authenticate
from service.context import Context
from service.errors import InvalidRequest, TooManyStreams
from service.inputs import whole_number
from service.live.event_stream import SubscriptionResponse
from service.live.hub import Hub
from service.live.streams import open_global_stream, open_run_stream
from service.tokens import Principal

MAX_EVENT_ID = 2**63 - 1  # run_event.id is a bigint


def last_event_id(request: Request) -> int | None:
    raw = request.headers.get("last-event-id") or request.query_params.get("lastEventId")
    if raw is None or raw == "":
        return None
    number = whole_number(raw)
    if number is None or number > MAX_EVENT_ID:
        raise InvalidRequest("Last-Event-ID must be an id this server sent.")
    return number


class StreamsPerOwner:
    """How many streams each owner holds open in this process, capped at MAX_STREAMS_PER_OWNER
    (the admin is not capped). A browser opens one global stream per tab, plus one per run page
    it shows; the tab past the cap gets 429 `too_many_streams`, and its EventSource, refused
    with a status other than 200, stops instead of reconnecting until the page is reloaded."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}

    def acquire(self, principal: Principal) -> str | None:
        """Count a new stream of `principal`; the key to `release` it with (None: uncounted)."""
        if principal.is_admin or self.limit <= 0:
            return None
        held = self.open.get(principal.owner, 0)
        if held >= self.limit:
            raise TooManyStreams(
                f"You have {held} event streams open here, the most one owner may hold "
                "(MAX_STREAMS_PER_OWNER). Close a tab or stream you no longer watch."
            )
        self.open[principal.owner] = held + 1
        return principal.owner

    def release(self, owner: str | None) -> None:
        if owner is None:
            return
        held = self.open.get(owner, 0) - 1
        if held > 0:
            self.open[owner] = held
        else:
            self.open.pop(owner, None)


Opened = tuple[SubscriptionResponse, str | None]


class StreamEndpoint:
    """A stream route as a plain ASGI app, so nothing outlives the opening but the stream.

    Starlette's function endpoints keep the Request and two closures alive for as long as the
    response runs: for a stream, hours, times thousands of subscribers. Errors raised while
    opening still reach the app's exception handlers, as from any endpoint. The stream's slot
    in StreamsPerOwner is given back however the stream ends.
    """

    def __init__(self, open_stream: Callable[[Request], Awaitable[Opened]]):
        self.open_stream = open_stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response, slot = await self.open_stream(request)
        try:
            await response(scope, receive, send)
        finally:
            _limits(request).release(slot)


def _limits(request: Request) -> StreamsPerOwner:
    limits: StreamsPerOwner = request.app.state.streams_per_owner
    return limits


def _hub(ctx: Context) -> Hub:
    assert ctx.hub is not None, "the API process starts its hub in the lifespan"
    return ctx.hub


async def run_stream(request: Request) -> Opened:
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    resume_after = last_event_id(request)
    run = await visible_run(request, principal)
    slot = _limits(request).acquire(principal)
    try:
        stream = await open_run_stream(ctx.db, _hub(ctx), principal, run["id"], resume_after)
    except BaseException:
        _limits(request).release(slot)
        raise
    return SubscriptionResponse(stream, _hub(ctx), ctx.settings.sse_retry_ms), slot


async def global_stream(request: Request) -> Opened:
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    resume_after = last_event_id(request)
    slot = _limits(request).acquire(principal)
    try:
        stream = await open_global_stream(ctx.db, _hub(ctx), principal, resume_after)
    except BaseException:
        _limits(request).release(slot)
        raise
    return SubscriptionResponse(stream, _hub(ctx), ctx.settings.sse_retry_ms), slot
