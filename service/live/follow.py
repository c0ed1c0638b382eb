"""Following one run to its end inside a request, as its stream would, without SSE.

The OpenAI-compatible endpoint answers only when the run is done, however long that takes. It
waits on the hub like a per-run stream (Postgres first, then whatever the LISTEN connection
hears), never by polling, and the hub's sweep tells it when a keep-alive is due, as it tells
idle streams when to send a heartbeat.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine

from service.errors import ShuttingDown
from service.live.hub import Hub, Message
from service.live.streams import open_run_stream
from service.tokens import Principal


async def follow_run(
    db: AsyncEngine, hub: Hub, principal: Principal, run_id: uuid.UUID
) -> AsyncIterator[Message | None]:
    """The run's stream messages (init, updates, partials), each once, ending with its final
    one (`done` or `error`); None every heartbeat time (SSE_HEARTBEAT_MS), messages or not,
    since the caller may pass none of them on to its client.

    A subscription the hub drops for falling behind is opened again after the last message
    yielded (the replay comes from `run_event`); one closed because this server is shutting
    down raises `ShuttingDown`: the run goes on without this request.
    """
    resume_after: int | None = None
    loop = asyncio.get_running_loop()
    while True:
        stream = await open_run_stream(db, hub, principal, run_id, resume_after)
        sub = stream.sub
        try:
            for message in stream.opening:
                yield message
                if message.final:
                    return
            if stream.finished:
                return
            while not sub.ended:
                await sub.wait()
                for message in sub.take():
                    if message.id is not None:
                        if message.id <= stream.sent:
                            continue
                        stream.sent = message.id
                    yield message
                    if message.final:
                        return
                if sub.heartbeat_due:
                    sub.heartbeat_due = False
                    sub.last_write = loop.time()
                    yield None
        finally:
            hub.unsubscribe(sub)
        if hub.closing:
            raise ShuttingDown(
                f"This server is shutting down, so it stopped waiting. The run goes on: "
                f"read it at /api/runs/{run_id}."
            )
        resume_after = stream.sent
