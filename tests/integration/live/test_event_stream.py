"""Where SSE messages are written: a stream fed by the real hub, sent to a scripted ASGI peer.

The peer behaves like uvicorn under flow control: while the client is not reading, a send
waits before it writes. That is the one case in which a send begun by the hub's delivery has to
be finished by the stream's own task, and what the hub delivers meanwhile must follow in order.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Message as ASGIMessage

from service.live.event_stream import SubscriptionResponse
from service.live.hub import Hub
from service.live.streams import open_global_stream
from service.runs import store as runs
from service.tokens import Principal
from tests.integration.helpers import make_audio

ALICE = Principal(owner="alice")
RUN = {"id": uuid.uuid4(), "owner": "alice"}


class Peer:
    """An ASGI server's side of one response: records bodies; `pause()` makes sends wait."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.bodies: list[bytes] = []
        self.sends = 0
        self.fail_on = fail_on
        self.writable = asyncio.Event()
        self.writable.set()
        self.disconnected = asyncio.Event()
        self.complete = False

    def pause(self) -> None:
        self.writable.clear()

    def resume(self) -> None:
        self.writable.set()

    async def send(self, message: ASGIMessage) -> None:
        await self.writable.wait()
        self.sends += 1
        if self.sends == self.fail_on:
            raise RuntimeError("the server refused this send")
        if message["type"] == "http.response.body":
            self.bodies.append(message["body"])
            self.complete = not message["more_body"]

    async def receive(self) -> ASGIMessage:
        await self.disconnected.wait()
        return {"type": "http.disconnect"}

    def progress_values(self) -> list[int]:
        """The `progress` of every update received, in the order received."""
        found = []
        for line in b"".join(self.bodies).decode().splitlines():
            if line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                if data["event"] == "update":
                    found.append(data["progress"])
        return found


@pytest.fixture
async def hub(db: AsyncEngine, database_dsn: str) -> AsyncIterator[Hub]:
    hub = Hub(db, database_dsn, send_timeout_s=0.5)
    await hub.start()
    yield hub
    await hub.stop()


@asynccontextmanager
async def streaming(db: AsyncEngine, hub: Hub, peer: Peer) -> AsyncIterator[asyncio.Task[None]]:
    """A global stream of alice's runs, served to `peer` until the block ends."""
    stream = await open_global_stream(db, hub, ALICE, None)
    response = SubscriptionResponse(stream, hub, retry_ms=3000)
    scope: dict[str, Any] = {"type": "http", "method": "GET"}
    serving = asyncio.create_task(response(scope, peer.receive, peer.send))
    try:
        yield serving
    finally:
        peer.resume()
        peer.disconnected.set()
        await asyncio.wait_for(asyncio.gather(serving, return_exceptions=True), 5)


async def tick(db: AsyncEngine, *progress: int) -> None:
    async with db.begin() as conn:
        for value in progress:
            await runs.notify_progress(conn, RUN, "transcribing", value)


async def until(condition: Any, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_an_idle_stream_gets_every_message_once_and_in_order(
    db: AsyncEngine, hub: Hub
) -> None:
    peer = Peer()
    async with streaming(db, hub, peer):
        await until(lambda: peer.bodies)
        await tick(db, *range(1, 51))
        await until(lambda: len(peer.progress_values()) == 50)
        await asyncio.sleep(0.1)
    assert peer.progress_values() == list(range(1, 51))


async def test_transitions_committed_together_reach_a_stream_in_one_write(
    db: AsyncEngine, hub: Hub
) -> None:
    audio = await make_audio(db, "alice")
    peer = Peer()
    async with streaming(db, hub, peer):
        await until(lambda: peer.bodies)
        async with db.begin() as conn:
            created = await runs.create_run(
                conn, audio_id=audio["id"], owner="alice", engine="local", model=None, language=None
            )
            await runs.start(conn, created.run["id"], attempts=1, stage="analyzing", progress=10)
        await until(lambda: len(peer.bodies) > 1)
        await asyncio.sleep(0.1)
    _opening, *delivered, end = peer.bodies
    assert len(delivered) == 1, "one write for the two messages"
    assert end == b"" and peer.complete
    assert delivered[0].count(b"data: ") == 2


async def test_what_arrives_while_a_send_waits_follows_it_in_order(
    db: AsyncEngine, hub: Hub
) -> None:
    peer = Peer()
    async with streaming(db, hub, peer):
        await until(lambda: peer.bodies)
        await tick(db, 1, 2)
        await until(lambda: peer.progress_values() == [1, 2])
        peer.pause()
        await tick(db, *range(3, 41))
        await asyncio.sleep(0.2)
        assert peer.progress_values() == [1, 2], "nothing is written while the client waits"
        peer.resume()
        await until(lambda: len(peer.progress_values()) >= 40)
        await tick(db, 41, 42)
        await until(lambda: len(peer.progress_values()) >= 42)
    assert peer.progress_values() == list(range(1, 43))


async def test_a_client_that_stops_reading_is_cut_off_at_the_send_deadline(
    db: AsyncEngine, hub: Hub
) -> None:
    peer, reader = Peer(), Peer()
    async with streaming(db, hub, peer) as stalled, streaming(db, hub, reader):
        await until(lambda: peer.bodies and reader.bodies)
        peer.pause()
        await tick(db, 1)
        await asyncio.wait_for(stalled, 5)
        assert hub.subscriber_count == 1, "the stalled stream let go of its subscription"
        await tick(db, 2)
        await until(lambda: reader.progress_values() == [1, 2])
    assert not peer.complete, "cut off, not ended politely: the connection is closed under it"


async def test_a_send_that_fails_in_the_hubs_delivery_fails_only_its_own_stream(
    db: AsyncEngine, hub: Hub
) -> None:
    failing, reader = Peer(fail_on=4), Peer()
    async with streaming(db, hub, failing) as doomed, streaming(db, hub, reader):
        await until(lambda: failing.bodies and reader.bodies)
        await tick(db, 1, 2, 3)
        with pytest.raises(RuntimeError, match="refused"):
            await asyncio.wait_for(doomed, 5)
        await until(lambda: reader.progress_values() == [1, 2, 3])
    assert failing.progress_values() == [1]
    assert hub.subscriber_count == 0


async def test_the_global_replay_reads_no_partials(db: AsyncEngine) -> None:
    """Issue 15, finding 6: the replay read up to 10,000 rows including partial transcripts it
    then threw away; now they stay in the table."""
    from service.engines.base import Partial, Segment
    from service.queries import q

    audio = await make_audio(db, "alice")
    async with db.begin() as conn:
        created = await runs.create_run(
            conn, audio_id=audio["id"], owner="alice", engine="local", model=None, language=None
        )
        for index in range(30):
            segment = Segment(index * 1000, index * 1000 + 500, f"chunk {index}")
            partial = Partial(index, index * 1000, index * 1000 + 1000, (segment,))
            await runs.record_partial(conn, created.run, partial)
        await runs.start(conn, created.run["id"], attempts=1, stage="analyzing", progress=10)
    params = {"after_id": 0, "owner": "alice", "limit": 10}
    async with db.connect() as conn:
        rows = (await conn.execute(q("global_replay_after"), params)).mappings().all()
    assert [row["type"] for row in rows] == ["queued", "started"]
