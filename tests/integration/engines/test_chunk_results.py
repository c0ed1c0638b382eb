"""Finished chunks kept per run in Postgres."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from service.engines.base import Segment
from service.engines.chunk_results import ChunkResult, ChunkStore
from tests.integration.helpers import queue_run


async def test_finished_chunks_are_kept_per_run_and_a_rerun_chunk_replaces_its_row(
    db: AsyncEngine,
) -> None:
    run, _ = await queue_run(db)
    other, _ = await queue_run(db)
    store = ChunkStore(db)
    first = ChunkResult(0, 0, 1_000, (Segment(0, 900, "hello", "A"),), "openai")
    await store.record(run["id"], first)
    await store.record(run["id"], ChunkResult(1, 1_000, 2_000, (), "openai"))
    await store.record(
        run["id"], ChunkResult(1, 1_000, 2_500, (Segment(1_000, 2_000, "x"),), "gemini")
    )
    kept = await store.finished(run["id"])
    assert kept[0] == first
    assert kept[1] == ChunkResult(1, 1_000, 2_500, (Segment(1_000, 2_000, "x"),), "gemini")
    assert await store.finished(other["id"]) == {}
