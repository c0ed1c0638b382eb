"""The schema as people meet it in psql, and migrations both ways."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from service.jobs import queue
from service.runs import store as runs
from service.schema import current_revision, downgrade, head_revision, upgrade
from tests.integration.helpers import make_audio

PSQL_LINES = [
    "SELECT * FROM job WHERE job_type = 'transcribe_long' AND status = 'queued' "
    "ORDER BY created_at ASC;",
    "SELECT * FROM transcript_run WHERE status = 'processing';",
    "SELECT * FROM transcript_run WHERE status = 'failed';",
]


async def test_the_three_documented_psql_lines_work_verbatim(db: AsyncEngine) -> None:
    audio = await make_audio(db, "alice")
    async with db.begin() as conn:
        change = await runs.create_run(
            conn, audio_id=audio["id"], owner="alice", engine="local", model=None, language=None
        )
        await queue.enqueue(
            conn, job_type=queue.TRANSCRIBE_LONG, run_id=change.run["id"], max_attempts=4
        )
    async with db.connect() as conn:
        queued = (await conn.execute(text(PSQL_LINES[0]))).mappings().all()
        assert [row["run_id"] for row in queued] == [change.run["id"]]
        assert (await conn.execute(text(PSQL_LINES[1]))).all() == []
        assert (await conn.execute(text(PSQL_LINES[2]))).all() == []


async def test_indexes_carry_the_names_people_use(db: AsyncEngine) -> None:
    async with db.connect() as conn:
        rows = await conn.execute(
            text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")
        )
        indexes = {name: definition for name, definition in rows}
    assert "job USING btree (status, created_at)" in indexes["idx_job_status_created"]
    assert "transcript_run USING btree (status)" in indexes["idx_run_status"]


async def test_migrations_go_down_to_nothing_and_back_up(
    db: AsyncEngine, database_url: URL
) -> None:
    await db.dispose()
    await asyncio.to_thread(downgrade, database_url, "base")
    try:
        async with db.connect() as conn:
            listing = await conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            tables = set(listing.scalars().all())
    finally:
        await asyncio.to_thread(upgrade, database_url)
    assert tables <= {"alembic_version"}
    assert await current_revision(db) == head_revision()
