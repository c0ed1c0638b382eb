"""What the two SSE streams say, independent of HTTP: catch up from Postgres, then go live.

Opening a stream subscribes to the hub first and reads the table second, so nothing committed
in between is lost; live messages the opening already covered (id at or below `sent`) are
skipped by the writer. A run being processed opens with the partial transcripts its attempt
has finished so far, after its init: they carry no id of their own, since init's id already
covers them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from service.database import reconnecting
from service.engines.base import Partial
from service.errors import NotFound
from service.live.hub import Hub, Message, Subscription
from service.queries import q
from service.runs import store as runs
from service.runs.representations import event_data, final_event, partial_data, progress_json
from service.tokens import Principal

REPLAY_LIMIT = 10_000


@dataclass
class Stream:
    """A live subscription plus the messages to send before it.

    `sent` is the last run_event id the opening covers; a per-run stream `ends_on_final` (its
    done or error is the last message) and may be `finished` by its opening alone.
    """

    sub: Subscription
    opening: list[Message]
    sent: int
    ends_on_final: bool = False
    finished: bool = False


async def open_run_stream(
    db: AsyncEngine, hub: Hub, principal: Principal, run_id: uuid.UUID, last_event_id: int | None
) -> Stream:
    """init (or the replay after Last-Event-ID), then live updates until done or error."""
    sub = hub.subscribe_run(run_id)

    async def read() -> tuple[RowMapping, Sequence[RowMapping], list[Partial]]:
        async with db.connect() as conn:
            row = await runs.progress(conn, run_id, principal.scope)
            if row is None:
                raise NotFound("No run with that id exists for you.")
            replay: Sequence[RowMapping] = ()
            partials: list[Partial] = []
            if last_event_id is not None:
                params = {"run_id": run_id, "after_id": last_event_id}
                replay = (await conn.execute(q("run_events_after"), params)).mappings().all()
            elif row["status"] == "processing":
                partials = await runs.partials(conn, run_id, int(row["last_event_id"]))
            return row, replay, partials

    try:
        row, replay, partials = await reconnecting(read)
    except BaseException:
        hub.unsubscribe(sub)
        raise
    key, owner = str(run_id), str(row["owner"])
    stream = Stream(sub, [], last_event_id or 0, ends_on_final=True)
    if last_event_id is None:
        stream.sent = int(row["last_event_id"])
        stream.opening.append(
            Message(stream.sent, key, owner, {"event": "init", **progress_json(row)})
        )
        for partial in partials:
            data = partial_data(run_id, row["audio_id"], partial.to_json())
            stream.opening.append(Message(None, key, owner, data))
    else:
        for event in replay:
            message = Message.of_event(event)
            stream.opening.append(message)
            stream.sent = int(event["id"])
            if message.final:
                stream.finished = True
                return stream
        current = {"event": "update", **progress_json(row), **hub.progress.get(key, {})}
        stream.opening.append(Message(None, key, owner, current))
    if row["status"] in runs.FINAL_STATUSES and stream.sent >= int(row["last_event_id"]):
        data, _ = event_data(final_event(row))
        stream.opening.append(Message(None, key, owner, data, final=True))
        stream.finished = True
    return stream


async def open_global_stream(
    db: AsyncEngine, hub: Hub, principal: Principal, last_event_id: int | None
) -> Stream:
    """snapshot of active runs (or the replay after Last-Event-ID), then every change, live."""
    sub = hub.subscribe_owner(principal.scope)

    async def read() -> tuple[RowMapping | None, Sequence[RowMapping]]:
        async with db.connect() as conn:
            if last_event_id is None:
                scope = {"owner": principal.scope}
                snapshot = (await conn.execute(q("active_runs_snapshot"), scope)).mappings().one()
                return snapshot, ()
            params = {"after_id": last_event_id, "owner": principal.scope, "limit": REPLAY_LIMIT}
            return None, (await conn.execute(q("global_replay_after"), params)).mappings().all()

    try:
        snapshot, replay = await reconnecting(read)
    except BaseException:
        hub.unsubscribe(sub)
        raise
    if snapshot is not None:
        sent = int(snapshot["last_event_id"])
        data = {"event": "snapshot", "runs": snapshot["runs"]}
        return Stream(sub, [Message(sent, "", principal.owner, data)], sent)
    stream = Stream(sub, [], last_event_id or 0)
    for event in replay:
        message = Message.of_event(event)
        stream.sent = int(event["id"])
        if not message.run_streams_only:
            stream.opening.append(message)
    return stream
