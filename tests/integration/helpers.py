"""Rows and handlers that integration tests need over and over."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.database import Row
from service.errors import TapelineError
from service.jobs import queue
from service.jobs.queue import ClaimedJob
from service.media.storage import LocalStorage
from service.queries import q
from service.runs import store as runs


async def make_audio(
    db: AsyncEngine, owner: str, duration_ms: int = 5_000, storage: LocalStorage | None = None
) -> Row:
    """An audio row; with `storage`, a placeholder blob behind it for fake engines to "read"."""
    params: dict[str, Any] = {
        "owner": owner,
        "filename": "meeting.wav",
        "content_type": "audio/wav",
        "size_bytes": 1000,
        "duration_ms": duration_ms,
        "sample_rate": 16000,
        "channels": 1,
        "sha256": uuid.uuid4().hex,
        "storage_key": f"audio/test/{uuid.uuid4()}",
    }
    if storage is not None:
        staged = storage.staging_path()
        staged.write_bytes(b"not really audio; fake engines never decode it")
        await storage.adopt(staged, params["storage_key"])
    async with db.begin() as conn:
        return (await conn.execute(q("insert_audio"), params)).mappings().one()


async def queue_run(
    db: AsyncEngine,
    owner: str = "alice",
    *,
    engine: str = "local",
    max_attempts: int = 4,
    storage: LocalStorage | None = None,
) -> tuple[Row, int]:
    """A queued run with its transcribe_long job."""
    audio = await make_audio(db, owner, storage=storage)
    async with db.begin() as conn:
        change = await runs.create_run(
            conn, audio_id=audio["id"], owner=owner, engine=engine, model=None, language=None
        )
        job_id = await queue.enqueue(
            conn,
            job_type=queue.TRANSCRIBE_LONG,
            run_id=change.run["id"],
            max_attempts=max_attempts,
        )
    return change.run, job_id


async def run_state(db: AsyncEngine, run_id: uuid.UUID) -> Row:
    async with db.connect() as conn:
        run = await runs.get(conn, run_id, None)
    assert run is not None
    return run


async def event_types(db: AsyncEngine, run_id: uuid.UUID) -> list[str]:
    from sqlalchemy import text

    async with db.connect() as conn:
        rows = await conn.execute(
            text("SELECT type FROM run_event WHERE run_id = :r ORDER BY id"), {"r": run_id}
        )
        return list(rows.scalars().all())


class RecordingHandler:
    """A job handler that records what happened to each job; `work` decides the outcome."""

    def __init__(self, work: Any = None) -> None:
        self.work = work
        self.started: list[int] = []
        self.outcomes: list[tuple[str, int, str | None]] = []

    async def run(self, job: ClaimedJob) -> Any:
        self.started.append(job.id)
        if self.work is not None:
            return await self.work(job)
        return None

    async def on_success(self, conn: AsyncConnection, job: ClaimedJob, result: Any) -> None:
        self.outcomes.append(("success", job.id, None))

    async def on_retry(self, conn: AsyncConnection, job: ClaimedJob, error: TapelineError) -> None:
        self.outcomes.append(("retry", job.id, error.code))

    async def on_failure(
        self, conn: AsyncConnection, job: ClaimedJob, error: TapelineError
    ) -> None:
        self.outcomes.append(("failure", job.id, error.code))

    async def on_release(self, conn: AsyncConnection, job: ClaimedJob) -> None:
        self.outcomes.append(("release", job.id, None))


async def bearer_for(db: AsyncEngine, owner: str) -> dict[str, str]:
    """A new token of `owner`, as the Authorization header that sends it."""
    from service import tokens

    async with db.begin() as conn:
        token, _ = await tokens.create(conn, owner)
    return {"Authorization": f"Bearer {token}"}
