"""What the two SSE streams say, independent of HTTP: catch up from Postgres, then go live.

A stream subscribes to the hub first and reads the table second, so nothing committed in
between is lost; messages it already covered (id at or below what it sent) are skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence

from sqlalchemy import RowMapping

from service import runs
from service.broadcast import Hub, Message, Subscription
from service.context import Context
from service.errors import NotFound
from service.queries import q
from service.representations import event_data, final_event, progress_json
from service.tokens import Principal

REPLAY_LIMIT = 10_000


async def run_events(
    ctx: Context, hub: Hub, principal: Principal, run_id: uuid.UUID, last_event_id: int | None
) -> AsyncIterator[Message]:
    """init (or the replay after Last-Event-ID), then live updates until done or error."""
    sub = hub.subscribe_run(run_id)
    try:
        async with ctx.db.connect() as conn:
            row = await runs.progress(conn, run_id, principal.scope)
            if row is None:
                raise NotFound("No run with that id exists for you.")
            replay: Sequence[RowMapping] = ()
            if last_event_id is not None:
                params = {"run_id": run_id, "after_id": last_event_id}
                replay = (await conn.execute(q("run_events_after"), params)).mappings().all()
        key, owner = str(run_id), str(row["owner"])
        if last_event_id is None:
            sent = int(row["last_event_id"])
            yield Message(sent, key, owner, {"event": "init", **progress_json(row)})
        else:
            sent = last_event_id
            for event in replay:
                data, final = event_data(event)
                sent = int(event["id"])
                yield Message(sent, key, owner, data, final)
                if final:
                    return
            current = {"event": "update", **progress_json(row), **hub.progress.get(key, {})}
            yield Message(None, key, owner, current)
        if row["status"] in runs.FINAL_STATUSES and sent >= int(row["last_event_id"]):
            data, _ = event_data(final_event(row))
            yield Message(None, key, owner, data, final=True)
            return
        async for message in _live(sub, sent):
            yield message
            if message.final:
                return
    finally:
        hub.unsubscribe(sub)


async def global_events(
    ctx: Context, hub: Hub, principal: Principal, last_event_id: int | None
) -> AsyncIterator[Message]:
    """snapshot of active runs (or the replay after Last-Event-ID), then every change, live."""
    sub = hub.subscribe_owner(principal.scope)
    try:
        async with ctx.db.connect() as conn:
            if last_event_id is None:
                snapshot = (
                    (await conn.execute(q("active_runs_snapshot"), {"owner": principal.scope}))
                    .mappings()
                    .one()
                )
                replay: Sequence[RowMapping] = ()
            else:
                params = {
                    "after_id": last_event_id,
                    "owner": principal.scope,
                    "limit": REPLAY_LIMIT,
                }
                replay = (await conn.execute(q("owner_events_after"), params)).mappings().all()
        if last_event_id is None:
            sent = int(snapshot["last_event_id"])
            yield Message(
                sent, "", principal.owner, {"event": "snapshot", "runs": snapshot["runs"]}
            )
        else:
            sent = last_event_id
            for event in replay:
                data, final = event_data(event)
                sent = int(event["id"])
                yield Message(sent, str(event["run_id"]), str(event["owner"]), data, final)
        async for message in _live(sub, sent):
            yield message
    finally:
        hub.unsubscribe(sub)


async def _live(sub: Subscription, sent: int) -> AsyncIterator[Message]:
    """Buffered and live messages, skipping persisted ones the stream already covered."""
    while (message := await sub.next()) is not None:
        if message.id is not None:
            if message.id <= sent:
                continue
            sent = message.id
        yield message
