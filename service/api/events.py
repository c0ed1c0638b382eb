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
from service.errors import InvalidRequest
from service.inputs import whole_number
from service.live.event_stream import SubscriptionResponse
from service.live.hub import Hub
from service.live.streams import open_global_stream, open_run_stream

MAX_EVENT_ID = 2**63 - 1  # run_event.id is a bigint


def last_event_id(request: Request) -> int | None:
    raw = request.headers.get("last-event-id") or request.query_params.get("lastEventId")
    if raw is None or raw == "":
        return None
    number = whole_number(raw)
    if number is None or number > MAX_EVENT_ID:
        raise InvalidRequest("Last-Event-ID must be an id this server sent.")
    return number


class StreamEndpoint:
    """A stream route as a plain ASGI app, so nothing outlives the opening but the stream.

    Starlette's function endpoints keep the Request and two closures alive for as long as the
    response runs: for a stream, hours, times thousands of subscribers. Errors raised while
    opening still reach the app's exception handlers, as from any endpoint.
    """

    def __init__(self, open_stream: Callable[[Request], Awaitable[SubscriptionResponse]]):
        self.open_stream = open_stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.open_stream(Request(scope, receive))
        await response(scope, receive, send)


def _hub(ctx: Context) -> Hub:
    assert ctx.hub is not None, "the API process starts its hub in the lifespan"
    return ctx.hub


async def run_stream(request: Request) -> SubscriptionResponse:
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    resume_after = last_event_id(request)
    run = await visible_run(request, principal)
    stream = await open_run_stream(ctx.db, _hub(ctx), principal, run["id"], resume_after)
    return SubscriptionResponse(stream, _hub(ctx), ctx.settings.sse_retry_ms)


async def global_stream(request: Request) -> SubscriptionResponse:
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    resume_after = last_event_id(request)
    stream = await open_global_stream(ctx.db, _hub(ctx), principal, resume_after)
    return SubscriptionResponse(stream, _hub(ctx), ctx.settings.sse_retry_ms)
