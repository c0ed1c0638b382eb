"""Finished chunks of a run, kept in Postgres as each one comes back from its engine.

A long recording is transcribed chunk by chunk; when an attempt fails half-way (a provider
outage, a lost worker), the retry reads what is already here and sends only what is missing,
so nobody pays twice for the same minutes. Nothing here depends on which engine produced the
chunk, so any engine (and whatever streams partial transcripts) can use it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.engines.base import Partial, Segment
from service.queries import q


@dataclass(frozen=True, slots=True)
class ChunkResult(Partial):
    """One transcribed chunk (where it lies, its segments in absolute ms) and which engine made
    it: a chunk is kept for a retry of the same engine only."""

    engine: str


async def record_chunk(conn: AsyncConnection, run_id: uuid.UUID, chunk: ChunkResult) -> None:
    params = {
        "run_id": run_id,
        "chunk_index": chunk.index,
        "start_ms": chunk.start_ms,
        "end_ms": chunk.end_ms,
        "segments": json.dumps([s.to_json() for s in chunk.segments]),
        "engine": chunk.engine,
    }
    await conn.execute(q("record_chunk"), params)


async def finished_chunks(conn: AsyncConnection, run_id: uuid.UUID) -> dict[int, ChunkResult]:
    """The run's finished chunks by index."""
    rows = (await conn.execute(q("finished_chunks"), {"run_id": run_id})).mappings().all()
    return {
        row["chunk_index"]: ChunkResult(
            index=row["chunk_index"],
            start_ms=row["start_ms"],
            end_ms=row["end_ms"],
            segments=tuple(Segment.from_json(s) for s in row["segments"]),
            engine=row["engine"],
        )
        for row in rows
    }


class ChunkStore:
    """The two calls an engine needs, each in its own short transaction."""

    def __init__(self, db: AsyncEngine) -> None:
        self.db = db

    async def record(self, run_id: uuid.UUID, chunk: ChunkResult) -> None:
        async with self.db.begin() as conn:
            await record_chunk(conn, run_id, chunk)

    async def finished(self, run_id: uuid.UUID) -> dict[int, ChunkResult]:
        async with self.db.connect() as conn:
            return await finished_chunks(conn, run_id)


def reusable(
    finished: dict[int, ChunkResult], index: int, span: tuple[int, int], engine: str
) -> ChunkResult | None:
    """A stored chunk stands in for chunk `index` only if it covers the same span, by the same
    engine: a changed chunk size or engine means the stored one is of another plan."""
    chunk = finished.get(index)
    if chunk is None or (chunk.start_ms, chunk.end_ms) != span or chunk.engine != engine:
        return None
    return chunk
