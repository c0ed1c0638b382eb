"""Where SSE messages are written: sse-starlette's response, fed straight from a subscription.

`EventSourceResponse` runs four tasks per stream (the body, a ping timer, an exit-signal
listener, a disconnect listener) and opens a cancel scope around every send. Measured at
thousands of idle streams that is ~50 KiB and ~60 µs of one core per message per stream, which
makes a change take seconds to reach 5,000 subscribers. Here one loop writes and one task
listens for the client going away; what every stream needs on a timer (heartbeats, the send
deadline) the hub does for all of them in one sweep, and one task per process turns the
server's shutdown into the end of every stream. Headers, framing and the shutdown signal stay
sse-starlette's.

Waking that one loop per message still cost a third of the CPU of a delivery (a task switch
through the whole ASGI stack, twice), so while a stream is idle the hub's own delivery writes
the message: a send to a client that is reading finishes without waiting. Only a send that
must wait for the client goes to the stream's own task, which finishes it under the hub's send
deadline before it sends anything else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Message as ASGIMessage
from starlette.types import Receive, Scope, Send

from service.live.eager import Begun
from service.live.hub import Hub, Message
from service.live.streams import Stream

log = logging.getLogger(__name__)

HEARTBEAT = ServerSentEvent(comment="ping", sep="\n").encode()


HEADERS = EventSourceResponse(iter(()), headers={"Cache-Control": "no-cache"}, sep="\n").raw_headers
END = {"type": "http.response.body", "body": b"", "more_body": False}


class SubscriptionResponse(EventSourceResponse):
    """A stream's opening messages, then its subscription's, until it ends or the client goes.

    A stream ends after its final message (per-run streams), when the hub drops it for falling
    behind or closes it at shutdown (the client resumes by Last-Event-ID, elsewhere if need
    be), or when its client disconnects. A client that stops reading is cut off by the hub's
    send deadline, without a goodbye: the connection is closed under it.
    """

    def __init__(self, stream: Stream, hub: Hub, retry_ms: int) -> None:
        # Not EventSourceResponse.__init__: it builds per-stream headers, a send lock and a body
        # iterator that this class never uses; every stream shares one header list instead.
        self.status_code = 200
        self.background = None
        self.raw_headers = HEADERS
        self.stream = stream
        self.hub = hub
        self.send: Send  # the server's, from __call__ on
        retry = ServerSentEvent(retry=retry_ms, sep="\n").encode()
        self.opening = retry + b"".join(message.frame for message in stream.opening)
        stream.opening.clear()  # a stream may stay open for hours: keep only the bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sub = self.stream.sub
        self.send = send
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if scope["method"] == "HEAD":
                await send(END)
                return
            sub.writer = writer = asyncio.current_task()
            assert writer is not None
            watcher = asyncio.create_task(_close_on_disconnect(receive, self.stream))
            try:
                opening, self.opening = self.opening, b""
                await self._write(opening)
                if not self.stream.finished:
                    await self._forward()
                await send(END)
            except asyncio.CancelledError:
                if not sub.interrupted:
                    raise
                writer.uncancel()
            finally:
                watcher.cancel()
                if sub.handoff is not None:
                    sub.handoff.close()
        finally:
            self.hub.unsubscribe(sub)

    async def _forward(self) -> None:
        stream, sub = self.stream, self.stream.sub
        while True:
            sub.send_now = self._send_now
            await sub.wait()
            sub.send_now = None
            if sub.handoff is not None:
                handoff, sub.handoff = sub.handoff, None
                await self._until_sent(handoff)
            chunks: list[bytes] = []
            final = False
            for message in sub.take():
                if not self._is_new(message):
                    continue
                chunks.append(message.frame)
                if message.final and stream.ends_on_final:
                    final = True
                    break
            if sub.heartbeat_due and not chunks:
                chunks.append(HEARTBEAT)
            sub.heartbeat_due = False
            if chunks:
                await self._write(b"".join(chunks))
            if final or sub.ended:
                return

    def _is_new(self, message: Message) -> bool:
        """Whether a message is not one the opening or an earlier send covered; a new one with
        an id counts as sent from here on, since the caller sends it next."""
        if message.id is None:
            return True
        if message.id <= self.stream.sent:
            return False
        self.stream.sent = message.id
        return True

    def _send_now(self, messages: list[Message]) -> bool:
        """Write `messages` within the hub's delivery; False leaves them to the writer's queue.

        Called only while the writer is idle, so nothing of this stream is being sent. A
        stream's last message goes through the writer, which then ends the response.
        """
        stream = self.stream
        if stream.ends_on_final and any(message.final for message in messages):
            return False
        frames = [message.frame for message in messages if self._is_new(message)]
        if not frames:
            return True
        sub = stream.sub
        now = asyncio.get_running_loop().time()
        send = Begun(self.send(_body(b"".join(frames))))
        if send.finished:
            sub.last_write = now
        else:
            sub.hand_off(send, now)
        return True

    async def _write(self, body: bytes) -> None:
        self.stream.sub.sending_since = asyncio.get_running_loop().time()
        await self._until_sent(self.send(_body(body)))

    async def _until_sent(self, sending: Awaitable[None]) -> None:
        """Await a send dated by `sending_since`, with the hub watching the clock: it cancels a
        send that takes too long."""
        sub = self.stream.sub
        started = sub.sending_since
        assert started is not None
        try:
            await sending
        finally:
            sub.sending_since = None
        sub.last_write = started


def _body(body: bytes) -> ASGIMessage:
    return {"type": "http.response.body", "body": body, "more_body": True}


async def _close_on_disconnect(receive: Receive, stream: Stream) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    stream.sub.close()


async def close_streams_on_shutdown(hub: Hub) -> None:
    """When the server starts shutting down, end every stream, so it need not wait for them.

    Uvicorn waits for open connections before it finishes; sse-starlette's signal (its
    handle_exit hook and its check of the running server) says when that has begun.
    """
    await EventSourceResponse._listen_for_exit_signal()
    log.info("shutting down: ending %d open streams", hub.subscriber_count)
    hub.close_all()
