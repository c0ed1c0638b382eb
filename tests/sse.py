"""A test's SSE client: httpx-sse over a real connection, with a deadline on every read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import aconnect_sse


@dataclass
class Received:
    id: str | None
    data: dict[str, Any]
    event_name: str
    retry: int | None

    @property
    def kind(self) -> str:
        return str(self.data.get("event"))


async def collect(
    client: httpx.AsyncClient,
    url: str,
    *,
    until: Callable[[list[Received]], bool] = lambda _m: False,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
    allow_drop: bool = False,
) -> tuple[list[Received], httpx.Headers]:
    """Read messages until `until(messages)` holds or the server ends the stream.

    With `allow_drop`, a connection the server cuts mid-stream (as a process shutting down
    does) ends the read like a closed stream, the way a browser's EventSource treats it.
    """
    messages: list[Received] = []
    async with asyncio.timeout(timeout):
        async with aconnect_sse(client, "GET", url, headers=headers or {}) as source:
            source.response.raise_for_status()
            try:
                async for sse in source.aiter_sse():
                    if not sse.data:
                        continue  # a heartbeat comment, which carries no message
                    data = json.loads(sse.data)
                    messages.append(Received(sse.id or None, data, sse.event, sse.retry))
                    if until(messages):
                        break
            except (httpx.RemoteProtocolError, httpx.ReadError):
                if not allow_drop:
                    raise
            return messages, source.response.headers


def transitions(messages: list[Received], run_id: str) -> list[tuple[int, str]]:
    """(event id, transition) of the run's persisted transitions, in arrival order.

    Progress ticks carry no id of their own (clients keep the last one), so they are left out.
    """
    return [
        (int(m.id or 0), str(m.data["transition"]))
        for m in messages
        if m.data.get("runId") == run_id and m.data.get("transition") not in (None, "progress")
    ]


def done_for(run_id: str) -> Callable[[list[Received]], bool]:
    return lambda messages: any(
        m.data.get("runId") == run_id and m.kind in ("done", "error") for m in messages
    )
