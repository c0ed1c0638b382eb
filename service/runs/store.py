"""Persistence of transcript runs and their event log.

Every status or stage change goes through `_transition`: it updates the run row and appends a
`run_event` (whose INSERT also sends the NOTIFY) on the caller's connection, so with the caller's
transaction it is one atomic step. Progress ticks inside a stage are NOTIFY-only. A finished
chunk is a `partial` event: the run row does not change, the event carries the chunk's text.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from service.database import Row
from service.engines.base import Partial, Transcript, stitched
from service.errors import TapelineError
from service.queries import q

ACTIVE_STATUSES = ("queued", "processing")
FINAL_STATUSES = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class Change:
    """A run after a transition, with the id of the run_event that recorded it."""

    run: Row
    event_id: int
    event_type: str


def event_payload(run: Row) -> dict[str, Any]:
    """What a run_event stores: the run's visible state right after the transition."""
    return {
        "status": run["status"],
        "stage": run["stage"],
        "progress": run["progress"],
        "attempts": run["attempts"],
        "errorCode": run["error_code"],
        "errorMessage": run["error_message"],
        **({"analysis": run["analysis"]} if run.get("analysis") is not None else {}),
    }


async def _transition(
    conn: AsyncConnection, statement: str, event_type: str, params: dict[str, Any]
) -> Change | None:
    """Run one run-updating statement and log it; None when the run was not in a state to change."""
    row = (await conn.execute(q(statement), params)).mappings().first()
    if row is None:
        return None
    event_id = await append_event(conn, row, event_type, event_payload(row))
    return Change(run=row, event_id=event_id, event_type=event_type)


async def append_event(
    conn: AsyncConnection, run: Row, event_type: str, payload: dict[str, Any]
) -> int:
    await conn.execute(q("lock_event_order"))
    params = {
        "run_id": run["id"],
        "owner": run["owner"],
        "type": event_type,
        "payload": json.dumps(payload),
    }
    return int((await conn.execute(q("append_run_event"), params)).scalar_one())


async def create_run(
    conn: AsyncConnection,
    *,
    audio_id: uuid.UUID,
    owner: str,
    engine: str,
    model: str | None,
    language: str | None,
    prompt: str | None = None,
) -> Change:
    params = {
        "audio_id": audio_id,
        "owner": owner,
        "engine": engine,
        "model": model,
        "language": language,
        "prompt": prompt,
    }
    row = (await conn.execute(q("insert_run"), params)).mappings().one()
    return await _queued(conn, row)


async def _queued(conn: AsyncConnection, row: Row) -> Change:
    """A new run's first transition, logged in the same transaction as its row."""
    event_id = await append_event(conn, row, "queued", event_payload(row))
    return Change(run=row, event_id=event_id, event_type="queued")


async def start(
    conn: AsyncConnection, run_id: uuid.UUID, *, attempts: int, stage: str, progress: int
) -> Change | None:
    params = {"run_id": run_id, "attempts": attempts, "stage": stage, "progress": progress}
    return await _transition(conn, "start_run", "started", params)


async def set_stage(
    conn: AsyncConnection, run_id: uuid.UUID, stage: str, progress: int
) -> Change | None:
    return await _transition(
        conn, "set_run_stage", "stage", {"run_id": run_id, "stage": stage, "progress": progress}
    )


async def succeed(
    conn: AsyncConnection, run_id: uuid.UUID, transcript: Transcript
) -> Change | None:
    params = {"run_id": run_id, "transcript": json.dumps(transcript.to_json())}
    return await _transition(conn, "succeed_run", "succeeded", params)


async def fail(conn: AsyncConnection, run_id: uuid.UUID, error: TapelineError) -> Change | None:
    params = {"run_id": run_id, "error_code": error.code, "error_message": error.message}
    return await _transition(conn, "fail_run", "failed", params)


async def requeue(
    conn: AsyncConnection, run_id: uuid.UUID, error: TapelineError | None, event_type: str
) -> Change | None:
    """Back to queued: after a failed attempt (`retry_scheduled`, keeping the error visible) or
    when a worker handed the run back (`requeued`)."""
    params = {
        "run_id": run_id,
        "error_code": error.code if error else None,
        "error_message": error.message if error else None,
    }
    return await _transition(conn, "requeue_run", event_type, params)


async def cancel(conn: AsyncConnection, run_id: uuid.UUID) -> Change | None:
    return await _transition(conn, "cancel_run", "cancelled", {"run_id": run_id})


async def reset(conn: AsyncConnection, run_id: uuid.UUID) -> Change | None:
    return await _transition(conn, "reset_run", "reset", {"run_id": run_id})


async def record_partial(conn: AsyncConnection, run: Row, partial: Partial) -> int:
    """Log a finished chunk; per-run subscribers receive it, the run row stays as it is."""
    return await append_event(conn, run, "partial", partial.to_json())


async def partials(
    conn: AsyncConnection, run_id: uuid.UUID, up_to_event: int | None = None
) -> list[Partial]:
    """The chunks finished by the run's latest attempt (up to an event id), in time order.

    A chunk reported twice counts once, with what it said last.
    """
    params = {"run_id": run_id, "up_to": up_to_event}
    rows = (await conn.execute(q("run_partials"), params)).mappings().all()
    by_index = {p.index: p for p in (Partial.from_json(row["payload"]) for row in rows)}
    return sorted(by_index.values(), key=lambda p: (p.start_ms, p.index))


def partial_transcript(chunks: Sequence[Partial], language: str | None) -> Transcript:
    """One transcript of the chunks finished so far."""
    return Transcript.from_segments(stitched(chunks), language)


async def notify_progress(conn: AsyncConnection, run: Row, stage: str, progress: int) -> None:
    """A tick within a stage: subscribers hear it, the run row is not written."""
    payload = {
        "runId": str(run["id"]),
        "owner": run["owner"],
        "type": "progress",
        "stage": stage,
        "progress": progress,
    }
    await conn.execute(q("notify_progress"), {"payload": json.dumps(payload)})


async def get(conn: AsyncConnection, run_id: uuid.UUID, owner: str | None) -> Row | None:
    """The run if `owner` may see it (None = admin)."""
    return (await conn.execute(q("get_run"), {"run_id": run_id, "owner": owner})).mappings().first()


async def list_for(
    conn: AsyncConnection,
    owner: str | None,
    *,
    status: str | None,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Row]:
    params = {
        "owner": owner,
        "status": status,
        "before_created": before[0] if before else None,
        "before_id": before[1] if before else None,
        "limit": limit,
    }
    return list((await conn.execute(q("list_runs"), params)).mappings().all())


async def progress(conn: AsyncConnection, run_id: uuid.UUID, owner: str | None) -> Row | None:
    params = {"run_id": run_id, "owner": owner}
    return (await conn.execute(q("run_progress"), params)).mappings().first()


async def create_run_once(
    conn: AsyncConnection,
    *,
    audio_id: uuid.UUID,
    owner: str,
    engine: str,
    model: str | None,
    language: str | None,
    idempotency_key: str,
    prompt: str | None = None,
) -> Change | None:
    """Like `create_run`, under an Idempotency-Key: None when the owner already has a run with
    that key (the unique index decides, so concurrent retries cannot both create one)."""
    params = {
        "audio_id": audio_id,
        "owner": owner,
        "engine": engine,
        "model": model,
        "language": language,
        "prompt": prompt,
        "idempotency_key": idempotency_key,
    }
    row = (await conn.execute(q("insert_run_idempotent"), params)).mappings().first()
    return None if row is None else await _queued(conn, row)


async def by_idempotency_key(conn: AsyncConnection, owner: str, key: str) -> Row | None:
    params = {"owner": owner, "idempotency_key": key}
    return (await conn.execute(q("find_run_by_idempotency_key"), params)).mappings().first()
