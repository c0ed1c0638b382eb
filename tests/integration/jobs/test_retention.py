"""Retention removes exactly what expired, blobs and rows together, once per cluster at a time."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.context import open_context
from service.jobs.retention import cleanup_once
from service.media.storage import LocalStorage
from service.queries import q
from tests.fakes_engines import EchoEngine
from tests.integration.helpers import make_audio, queue_run


async def sql(db: AsyncEngine, statement: str, **params: Any) -> None:
    async with db.begin() as conn:
        await conn.execute(text(statement), params)


async def count(db: AsyncEngine, table: str) -> int:
    async with db.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def finished_run(db: AsyncEngine, storage: LocalStorage, days_ago: float) -> uuid.UUID:
    run, _ = await queue_run(db, storage=storage)
    key = f"transcripts/{run['id']}.json"
    await storage.put_bytes(key, b'{"text": "old"}')
    await sql(
        db,
        "UPDATE transcript_run SET status = 'succeeded', transcript_key = :key,"
        " finished_at = now() - make_interval(secs => :age) WHERE id = :id",
        key=key,
        age=days_ago * 86400,
        id=run["id"],
    )
    return uuid.UUID(str(run["id"]))


async def partial_upload(db: AsyncEngine, storage: LocalStorage, expired: bool) -> uuid.UUID:
    key = f"audio/test/{uuid.uuid4()}"
    appender = await storage.append(key, {}, 0)
    await appender.write(b"half a recording")
    state = await appender.commit()
    params = {
        "owner": "alice",
        "length": 100,
        "metadata": "{}",
        "storage_key": key,
        "expiry_s": -60 if expired else 3600,
    }
    async with db.begin() as conn:
        row = (await conn.execute(q("insert_upload"), params)).mappings().one()
        await conn.execute(
            text("UPDATE upload SET storage_state = CAST(:s AS jsonb) WHERE id = :id"),
            {"s": json.dumps(state), "id": row["id"]},
        )
    return uuid.UUID(str(row["id"]))


async def test_cleanup_removes_exactly_what_expired_and_is_idempotent(
    db: AsyncEngine, settings: Settings, tmp_path: Any
) -> None:
    storage = LocalStorage(tmp_path / "blobs")
    tuned = settings.model_copy(
        update={"audio_retention_days": 30, "transcript_retention_days": 90}
    )
    old_run = await finished_run(db, storage, days_ago=100)
    new_run = await finished_run(db, storage, days_ago=10)
    old_audio = await make_audio(db, "alice", storage=storage)
    new_audio = await make_audio(db, "alice", storage=storage)
    await sql(
        db,
        "UPDATE audio SET created_at = now() - interval '40 days' WHERE id = :id",
        id=old_audio["id"],
    )
    busy, _ = await queue_run(db, storage=storage)
    await sql(
        db,
        "UPDATE audio SET created_at = now() - interval '40 days' WHERE id = :id",
        id=busy["audio_id"],
    )
    stale = await partial_upload(db, storage, expired=True)
    fresh = await partial_upload(db, storage, expired=False)

    report = await cleanup_once(db, storage, tuned)
    assert report is not None
    assert (report.uploads, report.runs) == (1, 1)

    async with db.connect() as conn:
        runs = set((await conn.execute(text("SELECT id FROM transcript_run"))).scalars())
        uploads = set((await conn.execute(text("SELECT id FROM upload"))).scalars())
        audio = {
            row.id: row.purged_at
            for row in await conn.execute(text("SELECT id, purged_at FROM audio"))
        }
        gone = set((await conn.execute(text("SELECT id FROM tombstone"))).scalars())
    assert old_run not in runs and new_run in runs and busy["id"] in runs
    assert uploads == {fresh} and {old_run, stale} <= gone
    assert not await storage.exists(f"transcripts/{old_run}.json")
    assert await storage.exists(f"transcripts/{new_run}.json")
    # Old audio with no run left: bytes and row gone. Audio with a queued run: untouched.
    assert old_audio["id"] not in audio and old_audio["id"] in gone
    assert not await storage.exists(old_audio["storage_key"])
    assert audio[new_audio["id"]] is None and audio[busy["audio_id"]] is None
    assert await storage.exists(new_audio["storage_key"])

    again = await cleanup_once(db, storage, tuned)
    assert again is not None and again.total == 0


async def test_unset_retention_keeps_everything(
    db: AsyncEngine, settings: Settings, tmp_path: Any
) -> None:
    storage = LocalStorage(tmp_path / "blobs")
    await finished_run(db, storage, days_ago=5000)
    report = await cleanup_once(db, storage, settings)
    assert report is not None and report.total == 0
    assert await count(db, "transcript_run") == 1 and await count(db, "audio") == 1


async def test_only_one_cleanup_runs_at_a_time(
    db: AsyncEngine, settings: Settings, tmp_path: Any
) -> None:
    storage = LocalStorage(tmp_path / "blobs")
    async with db.connect() as other:
        assert (await other.execute(q("try_cleanup_lock"))).scalar_one()
        assert await cleanup_once(db, storage, settings) is None
        await other.execute(q("release_cleanup_lock"))
    assert await cleanup_once(db, storage, settings) is not None


async def test_a_worker_runs_the_cleanup(db: AsyncEngine, settings: Settings) -> None:
    tuned = settings.model_copy(update={"cleanup_interval_ms": 100})
    async with open_context(tuned, engines={"local": EchoEngine()}) as ctx:
        assert isinstance(ctx.storage, LocalStorage)
        stale = await partial_upload(db, ctx.storage, expired=True)
        ctx.worker = ctx.make_worker()
        await ctx.worker.start()
        deadline = time.monotonic() + 10
        while await count(db, "upload"):
            assert time.monotonic() < deadline, "the worker never cleaned up"
            await asyncio.sleep(0.05)
    async with db.connect() as conn:
        reason = (
            await conn.execute(text("SELECT reason FROM tombstone WHERE id = :id"), {"id": stale})
        ).scalar_one()
    assert reason == "expired"
