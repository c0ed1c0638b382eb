"""Partial transcripts in Postgres and through the hub: recorded by the run's reporter, read
back per attempt, sent to the run's own streams and never to the global ones."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from service.engines.base import Partial, Segment
from service.live.hub import Hub, Subscription
from service.live.streams import open_global_stream, open_run_stream
from service.runs import store as runs
from service.runs.pipeline import RunReporter
from service.tokens import Principal
from tests.integration.helpers import event_types, make_audio

OWNER = "alice"
ALICE = Principal(owner=OWNER)


async def started_run(db: AsyncEngine, duration_ms: int = 60_000) -> runs.Row:
    audio = await make_audio(db, OWNER, duration_ms=duration_ms)
    async with db.begin() as conn:
        created = await runs.create_run(
            conn, audio_id=audio["id"], owner=OWNER, engine="local", model=None, language=None
        )
        change = await runs.start(
            conn, created.run["id"], attempts=1, stage="analyzing", progress=10
        )
    assert change is not None
    return change.run


async def partials_of(db: AsyncEngine, run_id: uuid.UUID) -> list[Partial]:
    async with db.connect() as conn:
        return await runs.partials(conn, run_id)


async def until_buffered(sub: Subscription, count: int) -> None:
    async with asyncio.timeout(10):
        while len(sub.buffer) < count:
            await asyncio.sleep(0.01)


async def test_the_reporter_records_chunks_checked_as_the_transcript_is(db: AsyncEngine) -> None:
    run = await started_run(db, duration_ms=20_000)
    reporter = RunReporter(db, run, duration_ms=20_000)
    await reporter.chunk(1, 10_000, 25_000, [Segment(18_000, 26_000, " late "), Segment(0, 0, " ")])
    await reporter.chunk(0, 0, 10_000, [Segment(500, 2_000, "early")])
    assert (await event_types(db, run["id"]))[-2:] == ["partial", "partial"]
    found = await partials_of(db, run["id"])
    assert [p.index for p in found] == [0, 1], "in the recording's order"
    assert found[1] == Partial(1, 10_000, 20_000, (Segment(18_000, 20_000, "late"),))
    transcript = runs.partial_transcript(found, "en")
    assert transcript.text == "early late" and transcript.language == "en"


async def test_only_the_latest_attempt_counts_and_a_redone_chunk_counts_once(
    db: AsyncEngine,
) -> None:
    run = await started_run(db)
    reporter = RunReporter(db, run, duration_ms=60_000)
    await reporter.chunk(0, 0, 10_000, [Segment(0, 1_000, "first attempt")])
    async with db.begin() as conn:
        await runs.requeue(conn, run["id"], None, "requeued")
        again = await runs.start(conn, run["id"], attempts=2, stage="analyzing", progress=10)
    assert again is not None
    assert await partials_of(db, run["id"]) == [], "a new attempt starts with nothing"
    reporter = RunReporter(db, again.run, duration_ms=60_000)
    await reporter.chunk(0, 0, 10_000, [Segment(0, 1_000, "second attempt")])
    await reporter.chunk(0, 0, 10_000, [Segment(0, 1_000, "second attempt, redone")])
    found = await partials_of(db, run["id"])
    assert [s.text for p in found for s in p.segments] == ["second attempt, redone"]


async def test_partials_reach_run_streams_but_never_global_ones(
    db: AsyncEngine, database_dsn: str
) -> None:
    run = await started_run(db)
    run_id = run["id"]
    reporter = RunReporter(db, run, duration_ms=60_000)
    await reporter.chunk(0, 0, 10_000, [Segment(0, 1_000, "before anyone listened")])
    hub = Hub(db, database_dsn)
    await hub.start()
    try:
        joined = await open_run_stream(db, hub, ALICE, run_id, None)
        everything = await open_global_stream(db, hub, ALICE, None)
        resumed_global = await open_global_stream(db, hub, ALICE, 0)
        kinds = [m.data["event"] for m in joined.opening]
        assert kinds == ["init", "partial"] and joined.opening[1].id is None
        assert joined.opening[1].data["segments"][0]["text"] == "before anyone listened"
        assert [m.data["event"] for m in resumed_global.opening] == ["update", "update"]

        await reporter.chunk(1, 10_000, 20_000, [Segment(11_000, 12_000, "live")])
        await reporter.stage("finalizing")
        await until_buffered(joined.sub, 2)
        await until_buffered(everything.sub, 1)
        assert [m.data["event"] for m in joined.sub.buffer] == ["partial", "update"]
        assert joined.sub.buffer[0].id is not None and joined.sub.buffer[0].id > joined.sent
        assert [m.data["transition"] for m in everything.sub.buffer] == ["stage"]

        resumed = await open_run_stream(db, hub, ALICE, run_id, joined.sent)
        replayed = [m.data["event"] for m in resumed.opening]
        assert replayed == ["partial", "update", "update"], "replayed, then the current state"
    finally:
        await hub.stop()
