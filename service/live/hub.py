"""Fan-out of run changes to this process's stream subscribers.

One LISTEN connection per process hears every worker and API process. A NOTIFY about a persisted
transition only wakes the dispatcher, which reads `run_event` after the last id it published:
event ids grow in commit order (see `lock_event_order`), so reading "after N" is exactly-once and
in order, and catching up after a lost connection is the same read. Progress ticks are not in the
table; they are forwarded straight from their NOTIFY payload. Partial transcripts are persisted
like transitions but go to the run's own streams only, never to the global ones.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sse_starlette import ServerSentEvent

from service.listener import Listener
from service.live.eager import Begun
from service.queries import q
from service.runs.representations import PARTIAL_EVENT, event_data, tick_data

log = logging.getLogger(__name__)

RUNS_CHANNEL = "tapeline_runs"
READ_BATCH = 1000


@dataclass(frozen=True)
class Message:
    """One stream message: `id` is the run_event id of a persisted transition, None for a tick."""

    id: int | None
    run_id: str
    owner: str
    data: dict[str, Any]
    final: bool = False
    run_streams_only: bool = False

    @classmethod
    def of_event(cls, row: Mapping[Any, Any]) -> Message:
        """A `run_event` row as the message every stream that may see it sends."""
        data, final = event_data(row)
        only = row["type"] == PARTIAL_EVENT
        return cls(int(row["id"]), str(row["run_id"]), str(row["owner"]), data, final, only)

    @functools.cached_property
    def frame(self) -> bytes:
        """The SSE wire form, encoded once however many subscribers receive it.

        Unnamed (no `event:` line), so `EventSource.onmessage` sees every message.
        """
        event_id = str(self.id) if self.id is not None else None
        data = json.dumps(self.data, default=str)
        return ServerSentEvent(data=data, id=event_id, sep="\n").encode()


@dataclass(eq=False, slots=True)
class Subscription:
    """One stream's bounded buffer, and what the hub needs to know about the task writing it.

    A subscriber that falls behind is dropped, not waited for: it resumes from the table by
    Last-Event-ID. `writer` is the task sending this stream to its client; while it is inside a
    send (`sending_since` set), a drop, a close or a send that outlives the send timeout cancels
    it, since a client that stopped reading would otherwise hold it for ever.

    While the writer is idle it sets `send_now`, and the hub's delivery writes the messages
    itself rather than waking the writer for them (see `event_stream`); a send that has to wait
    for the client becomes the writer's `handoff`, and messages queue behind it as usual.
    """

    run_id: str | None
    owner: str | None
    maxsize: int
    buffer: list[Message] = field(default_factory=list)
    dropped: bool = False
    closed: bool = False
    heartbeat_due: bool = False
    interrupted: bool = False
    writer: asyncio.Task[Any] | None = None
    sending_since: float | None = None
    last_write: float = 0.0
    send_now: Callable[[list[Message]], bool] | None = None
    handoff: Begun | None = None
    _waiter: asyncio.Future[None] | None = None

    def offer(self, messages: list[Message]) -> None:
        """This stream's share of what the hub is delivering, oldest first."""
        if self.dropped or self.closed:
            return
        if self.send_now is not None and not self.buffer and self.send_now(messages):
            return
        if len(self.buffer) + len(messages) > self.maxsize:
            self.dropped = True
            self.buffer.clear()
            self.interrupt()
        else:
            self.buffer.extend(messages)
        self._wake()

    def take(self) -> list[Message]:
        """Everything buffered, oldest first; a list, not a deque: 56 bytes idle, not 760."""
        batch, self.buffer = self.buffer, []
        return batch

    def close(self) -> None:
        self.closed = True
        self.send_now = None
        self.interrupt()
        self._wake()

    def hand_off(self, send: Begun, since: float) -> None:
        """A send begun outside the writer must wait for the client: the writer finishes it,
        under the send deadline, before anything else."""
        self.handoff = send
        self.sending_since = since
        self.send_now = None
        self._wake()

    def want_heartbeat(self) -> None:
        self.heartbeat_due = True
        self._wake()

    def interrupt(self) -> None:
        """Cancel the writer if it is blocked sending to its client."""
        if self.sending_since is not None and self.writer is not None and not self.interrupted:
            self.interrupted = True
            self.writer.cancel()

    @property
    def ended(self) -> bool:
        return self.dropped or self.closed

    async def wait(self) -> None:
        """Until there is something to send, or the subscription ended."""
        while not (
            self.buffer
            or self.handoff is not None
            or self.heartbeat_due
            or self.dropped
            or self.closed
        ):
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Hub:
    """This process's subscribers, fed from one LISTEN connection.

    Besides fan-out, the hub does for every stream at once what would otherwise cost a timer
    task per connection: a periodic sweep sends heartbeats to idle streams and cancels writers
    stuck sending to a client that stopped reading.
    """

    def __init__(
        self,
        db: AsyncEngine,
        dsn: str,
        buffer_size: int = 1000,
        *,
        heartbeat_s: float = 15.0,
        send_timeout_s: float = 10.0,
    ) -> None:
        self.db = db
        self.buffer_size = buffer_size
        self.heartbeat_s = heartbeat_s
        self.send_timeout_s = send_timeout_s
        self.listener = Listener(dsn, {RUNS_CHANNEL: self._on_notify}, on_reconnect=self._wake_up)
        self.last_event_id = 0
        self.delivered = 0
        self.closing = False
        self.progress: dict[str, dict[str, Any]] = {}
        self._by_run: dict[str, set[Subscription]] = collections.defaultdict(set)
        self._by_owner: dict[str | None, set[Subscription]] = collections.defaultdict(set)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        async with self.db.connect() as conn:
            self.last_event_id = int((await conn.execute(q("last_event_id"))).scalar_one())
        await self.listener.start()
        self._tasks = [
            asyncio.create_task(self._dispatch_loop(), name="hub-dispatcher"),
            asyncio.create_task(self._sweep_loop(), name="hub-sweeper"),
        ]

    async def stop(self) -> None:
        self.close_all()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.listener.stop()

    def close_all(self) -> None:
        """End every stream (they flush what they hold first); later ones end after opening."""
        self.closing = True
        for sub in self._subscriptions():
            sub.close()

    @property
    def subscriber_count(self) -> int:
        return sum(map(len, self._by_run.values())) + sum(map(len, self._by_owner.values()))

    def _subscriptions(self) -> list[Subscription]:
        return [
            sub
            for index in (self._by_run, self._by_owner)
            for subs in index.values()
            for sub in subs
        ]

    # --- subscribers ---------------------------------------------------------------------------

    def subscribe_run(self, run_id: uuid.UUID) -> Subscription:
        sub = Subscription(run_id=str(run_id), owner=None, maxsize=self.buffer_size)
        self._by_run[sub.run_id].add(sub)  # type: ignore[index]
        return self._opened(sub)

    def subscribe_owner(self, owner: str | None) -> Subscription:
        """Every run of `owner`; None subscribes to every owner's runs (admin)."""
        sub = Subscription(run_id=None, owner=owner, maxsize=self.buffer_size)
        self._by_owner[owner].add(sub)
        return self._opened(sub)

    def _opened(self, sub: Subscription) -> Subscription:
        sub.last_write = asyncio.get_running_loop().time()
        if self.closing:
            sub.close()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        if sub.run_id is not None:
            _discard(self._by_run, sub.run_id, sub)
        else:
            _discard(self._by_owner, sub.owner, sub)

    def _publish(self, messages: list[Message]) -> None:
        """Offer every subscriber its share of `messages` in one piece.

        Messages read together (committed while the last ones were being delivered) then cost
        one write per stream, not one each: under a burst the hub catches up instead of falling
        further behind.
        """
        if len(messages) == 1:
            targets = self._targets(messages[0])
            for sub in targets:
                sub.offer(messages)
            self.delivered += len(targets)
            return
        shares: dict[Subscription, list[Message]] = {}
        for message in messages:
            for sub in self._targets(message):
                shares.setdefault(sub, []).append(message)
        for sub, share in shares.items():
            sub.offer(share)
            self.delivered += len(share)

    def _targets(self, message: Message) -> list[Subscription]:
        targets = list(self._by_run.get(message.run_id, ()))
        if not message.run_streams_only:
            targets += [*self._by_owner.get(message.owner, ()), *self._by_owner.get(None, ())]
        return targets

    # --- notifications -------------------------------------------------------------------------

    def _on_notify(self, payload: str) -> None:
        try:
            note = json.loads(payload)
        except json.JSONDecodeError:
            log.warning("ignoring a malformed NOTIFY payload")
            return
        if note.get("type") == "progress":
            run_id = str(note["runId"])
            self.progress[run_id] = {"stage": note["stage"], "progress": note["progress"]}
            if note.get("detail"):
                self.progress[run_id]["detail"] = note["detail"]
            self._publish([Message(None, run_id, str(note["owner"]), tick_data(note))])
        else:
            self._wake.set()

    async def _wake_up(self) -> None:
        """After a reconnect: read whatever was committed while we were not listening."""
        self._wake.set()

    async def _sweep_loop(self) -> None:
        """Heartbeats for streams idle for `heartbeat_s`; cancel sends older than the timeout."""
        loop = asyncio.get_running_loop()
        every = min(self.heartbeat_s, self.send_timeout_s) / 4
        while True:
            await asyncio.sleep(every)
            now = loop.time()
            for sub in self._subscriptions():
                if sub.sending_since is not None:
                    if now - sub.sending_since >= self.send_timeout_s:
                        log.info(
                            "cutting off a stream whose client has not read for %.0f s",
                            now - sub.sending_since,
                        )
                        sub.interrupt()
                elif now - sub.last_write >= self.heartbeat_s:
                    sub.want_heartbeat()

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._publish_new_events()
            except Exception:
                log.exception("reading new run events failed; retrying")
                await asyncio.sleep(0.5)
                self._wake.set()

    async def _publish_new_events(self) -> None:
        while True:
            params = {"after_id": self.last_event_id, "owner": None, "limit": READ_BATCH}
            async with self.db.connect() as conn:
                rows = (await conn.execute(q("owner_events_after"), params)).mappings().all()
            messages = [Message.of_event(row) for row in rows]
            for message in messages:
                if not message.run_streams_only:
                    self.progress.pop(message.run_id, None)
            if messages:
                self._publish(messages)
                self.last_event_id = int(rows[-1]["id"])
            if len(rows) < READ_BATCH:
                return


def _discard(index: dict[Any, set[Subscription]], key: Any, sub: Subscription) -> None:
    """Remove a subscriber, and its key once empty, so nothing outlives a disconnect."""
    subs = index.get(key)
    if subs is not None:
        subs.discard(sub)
        if not subs:
            del index[key]
