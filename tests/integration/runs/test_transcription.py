"""Idempotency-Key: concurrent retries of one submission create one run (a unique index, not a
read-then-write check)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.context import open_context
from service.runs.submission import submit_run
from service.tokens import Principal
from tests.fakes_engines import EchoEngine
from tests.integration.helpers import make_audio


async def test_concurrent_retries_with_one_key_create_one_run(
    db: AsyncEngine, settings: Settings
) -> None:
    queued_only = settings.model_copy(update={"transcribe_sync_max_duration_ms": 0})
    async with open_context(queued_only, engines={"local": EchoEngine()}) as ctx:
        audio = await make_audio(db, "alice")
        alice = Principal(owner="alice")
        runs = await asyncio.gather(
            *(submit_run(ctx, alice, audio["id"], idempotency_key="retry-1") for _ in range(12))
        )
        other = await submit_run(ctx, alice, audio["id"], idempotency_key="retry-2")
        bobs = await make_audio(db, "bob")
        bob = Principal(owner="bob")
        bob_run = await submit_run(ctx, bob, bobs["id"], idempotency_key="retry-1")
    assert len({run["id"] for run in runs}) == 1
    assert other["id"] != runs[0]["id"] and bob_run["id"] != runs[0]["id"]
    async with db.connect() as conn:
        counts = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM transcript_run), (SELECT count(*) FROM job),"
                    " (SELECT count(*) FROM run_event WHERE type = 'queued')"
                )
            )
        ).one()
    assert tuple(counts) == (3, 3, 3)
