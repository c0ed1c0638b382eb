"""The SSE endpoints: per-run and global streams, built on sse-starlette.

Every message is unnamed (so `EventSource.onmessage` gets all of them and an `error` message
never collides with the browser's connection-error event); its JSON carries `event`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request

from service.api.runs import visible_run
from service.auth import authenticate
from service.broadcast import Hub, Message
from service.context import Context
from service.errors import InvalidRequest
from service.streams import global_events, run_events


def last_event_id(request: Request) -> int | None:
    raw = request.headers.get("last-event-id") or request.query_params.get("lastEventId")
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise InvalidRequest("Last-Event-ID must be an id this server sent.")
    return int(raw)


def _response(ctx: Context, messages: AsyncIterator[Message]) -> EventSourceResponse:
    settings = ctx.settings

    async def frames() -> AsyncIterator[bytes | ServerSentEvent]:
        yield ServerSentEvent(retry=settings.sse_retry_ms, sep="\n")
        async for message in messages:
            yield message.frame

    return EventSourceResponse(
        frames(),
        ping=settings.sse_heartbeat_ms / 1000,
        sep="\n",
        headers={"Cache-Control": "no-cache"},
        send_timeout=settings.sse_send_timeout_ms / 1000,
    )


def _hub(ctx: Context) -> Hub:
    assert ctx.hub is not None, "the API process starts its hub in the lifespan"
    return ctx.hub


async def run_stream(request: Request) -> EventSourceResponse:
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    resume_after = last_event_id(request)
    run = await visible_run(request, principal)
    return _response(ctx, run_events(ctx, _hub(ctx), principal, run["id"], resume_after))


async def global_stream(request: Request) -> EventSourceResponse:
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    resume_after = last_event_id(request)
    return _response(ctx, global_events(ctx, _hub(ctx), principal, resume_after))
