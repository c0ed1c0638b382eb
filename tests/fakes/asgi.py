"""Raw ASGI moves that a framework response cannot make: stall, drip, cut, reset.

Starlette responses always answer completely; faults need to answer partially, slowly or not
at all, so they talk to uvicorn's `send`/`receive` directly. Every wait here is bounded by the
client going away or by the server stopping, so a faulted request never outlives its server.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
from dataclasses import dataclass, replace
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

POLL_S = 0.05


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    @classmethod
    def of(cls, status: int, body: bytes, content_type: str, **extra: str) -> RawResponse:
        headers = [("content-type", content_type), ("content-length", str(len(body)))]
        headers += [(name.replace("_", "-"), value) for name, value in extra.items()]
        return cls(status, [(n.encode(), v.encode()) for n, v in headers], body)

    @classmethod
    def json(cls, status: int, payload: Any, **extra: str) -> RawResponse:
        return cls.of(status, json.dumps(payload).encode(), "application/json", **extra)

    def with_body(self, body: bytes) -> RawResponse:
        """The same status and headers, Content-Length fixed to the new body."""
        headers = [(n, v) for n, v in self.headers if n.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        return replace(self, headers=headers, body=body)


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the already-read body to the app once, then defers to uvicorn."""
    sent = False

    async def receive_again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again


async def send_response(send: Send, response: RawResponse) -> None:
    await send(
        {"type": "http.response.start", "status": response.status, "headers": response.headers}
    )
    await send({"type": "http.response.body", "body": response.body})


async def capture(app: ASGIApp, scope: Scope, receive: Receive) -> RawResponse:
    """Run the app and keep its whole answer instead of sending it."""
    status = 500
    headers: list[tuple[bytes, bytes]] = []
    body = bytearray()

    async def keep(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    await app(scope, receive, keep)
    return RawResponse(status, headers, bytes(body))


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def wait_until_gone(receive: Receive, stopping: threading.Event, seconds: float) -> bool:
    """Sleep up to `seconds` (inf: forever); True as soon as the client or the server leaves.

    Call only once the request body has been read: uvicorn's `receive` then blocks until the
    client disconnects.
    """
    watcher = asyncio.ensure_future(_disconnected(receive))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    try:
        while not stopping.is_set():
            left = deadline - loop.time()
            if left <= 0:
                return False
            done, _ = await asyncio.wait({watcher}, timeout=min(POLL_S, left))
            if done:
                return True
        return True
    finally:
        watcher.cancel()


async def reset_connection(send: Send) -> None:
    """Close the client's TCP connection with an RST, without any HTTP response.

    uvicorn passes its per-request `send` as a bound method of the request cycle, which holds
    the connection's transport; SO_LINGER 0 turns the close into a reset. If that internal
    detail ever changes, fall back to announcing a body and dying halfway through it (uvicorn
    then closes the connection, which the client sees as a protocol error).
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if isinstance(transport, asyncio.Transport):
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        # Let uvicorn see the connection lost before the app returns, or it answers a 500.
        await asyncio.sleep(0.01)
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]}
    )
    await send({"type": "http.response.body", "body": b"{", "more_body": True})
    raise ConnectionAbortedError("fake reset: dropping the connection mid-body")


async def trickle(
    send: Send,
    receive: Receive,
    response: RawResponse,
    *,
    interval: float,
    chunk_size: int,
    stopping: threading.Event,
) -> None:
    """Send the headers at once, then the body `chunk_size` bytes every `interval` seconds."""
    await send(
        {"type": "http.response.start", "status": response.status, "headers": response.headers}
    )
    body = response.body
    for start in range(0, len(body), chunk_size):
        if start and await wait_until_gone(receive, stopping, interval):
            return
        piece = body[start : start + chunk_size]
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
