"""A dedicated asyncpg connection that LISTENs and hands NOTIFY payloads to callbacks.

It reconnects with backoff when the connection drops (Postgres restart, terminated backend) and
calls `on_reconnect` before going live again, so owners can catch up on what they missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

Callback = Callable[[str], None]
APPLICATION_NAME = "tapeline-listener"  # how these connections show in pg_stat_activity


class Listener:
    def __init__(
        self,
        dsn: str,
        channels: Mapping[str, Callback],
        *,
        on_reconnect: Callable[[], Awaitable[None]] | None = None,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.dsn = dsn
        self.channels = dict(channels)
        self.on_reconnect = on_reconnect
        self.max_backoff_s = max_backoff_s
        self.connected = asyncio.Event()
        self.backend_pid: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="listener")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def alive(self) -> bool:
        return self.connected.is_set()

    async def _run(self) -> None:
        backoff = 0.1
        first = True
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(
                    self.dsn, server_settings={"application_name": APPLICATION_NAME}
                )
                self._lost.clear()
                conn.add_termination_listener(lambda _c: self._lost.set())
                for channel, callback in self.channels.items():
                    await conn.add_listener(channel, self._dispatch(callback))
                self.backend_pid = conn.get_server_pid()
                if not first and self.on_reconnect is not None:
                    await self.on_reconnect()
                first = False
                backoff = 0.1
                self.connected.set()
                await self._watch(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("LISTEN connection failed (%s); retrying in %.1fs", exc, backoff)
            finally:
                self.connected.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 1.0)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)

    async def _watch(self, conn: Any) -> None:
        """Return when the connection is gone: terminated, or failing a cheap liveness query."""
        while not self._lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), timeout=5.0)
            if not self._lost.is_set():
                await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=5.0)

    @staticmethod
    def _dispatch(callback: Callback) -> Callable[..., None]:
        def handle(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            try:
                callback(payload)
            except Exception:
                log.exception("NOTIFY callback failed")

        return handle
