"""Following a run inside a request: the real hub and Postgres, a follower that falls behind,
a server that shuts down, keep-alives while nothing happens."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.engines.base import Partial, Segment, Transcript
from service.errors import ShuttingDown
from service.live.follow import follow_run
from service.live.hub import Hub, Message
from service.runs import store as runs
from service.tokens import Principal
from tests.integration.helpers import make_audio

ALICE = Principal(owner="alice")


@pytest.fixture
async def hub(db: AsyncEngine, database_dsn: str) -> AsyncIterator[Hub]:
    hub = Hub(db, database_dsn, buffer_size=2, heartbeat_s=0.2, send_timeout_s=0.5)
    await hub.start()
    yield hub
    await hub.stop()


async def started_run(db: AsyncEngine) -> uuid.UUID:
    audio = await make_audio(db, "alice")
    async with db.begin() as conn:
        created = await runs.create_run(
            conn, audio_id=audio["id"], owner="alice", engine="local", model=None, language=None
        )
        await runs.start(conn, created.run["id"], attempts=1, stage="analyzing", progress=0)
    return uuid.UUID(str(created.run["id"]))


async def test_a_follower_that_falls_behind_resumes_and_gets_every_partial_once(
    db: AsyncEngine, hub: Hub
) -> None:
    run_id = await started_run(db)
    follower = follow_run(db, hub, ALICE, run_id)
    first = await anext(follower)
    assert first is not None and first.data["event"] == "init"
    async with db.begin() as conn:
        run = await runs.get(conn, run_id, None)
        assert run is not None
        for index in range(6):  # three times what the subscription may buffer
            segments = (Segment(index * 1000, index * 1000 + 500, f"part {index}"),)
            await runs.record_partial(conn, run, Partial(index, index * 1000, 6000, segments))
        await runs.succeed(conn, run_id, Transcript("all", "en"))
    await asyncio.sleep(0.5)  # the hub delivers all of it before the follower reads on
    messages = [m async for m in follower if m is not None]
    partials = [m.data["chunkIndex"] for m in messages if m.data["event"] == "partial"]
    assert partials == list(range(6))
    assert messages[-1].final and messages[-1].data["event"] == "done"
    assert hub.subscriber_count == 0


async def test_keepalives_come_while_nothing_happens_and_a_shutdown_ends_the_wait(
    db: AsyncEngine, hub: Hub
) -> None:
    run_id = await started_run(db)
    seen: list[Message | None] = []

    async def follow() -> None:
        async for message in follow_run(db, hub, ALICE, run_id):
            seen.append(message)

    following = asyncio.create_task(follow())
    await asyncio.sleep(1.0)
    assert seen.count(None) >= 3
    hub.close_all()
    with pytest.raises(ShuttingDown, match=str(run_id)):
        await asyncio.wait_for(following, 5)
