"""Everything a Tapeline process shares: settings, the pool, storage, engines, its worker."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.cpu import set_memory_limit
from service.database import (
    asyncpg_dsn,
    check_capacity,
    create_engine,
    database_url,
    direct_url,
    is_pooled,
    pool_size,
)
from service.engines import available_engines, worker_serves
from service.engines.base import Engine
from service.jobs.execution import Executor, JobHandler
from service.jobs.queue import TRANSCRIBE_LONG, TRANSCRIBE_SYNC
from service.jobs.retention import Janitor
from service.jobs.worker import Worker, new_worker_id
from service.live.hub import Hub
from service.media.fetch import Fetcher
from service.media.storage import Storage, open_storage
from service.runs.analysis import Analyzer, make_analyzer
from service.runs.pipeline import TranscriptionHandler
from service.runs.webhooks import DELIVER_WEBHOOK, WebhookHandler


@dataclass
class Context:
    settings: Settings
    url: URL
    db: AsyncEngine
    storage: Storage
    engines: Mapping[str, Engine]
    handlers: Mapping[str, JobHandler]
    executor: Executor
    worker: Worker | None = field(default=None)
    hub: Hub | None = field(default=None)
    direct: URL | None = field(default=None)

    @property
    def dsn(self) -> str:
        """Where LISTEN connects: the server itself, never a transaction pooler."""
        return asyncpg_dsn(self.direct or self.url)

    def make_hub(self) -> Hub:
        settings = self.settings
        return Hub(
            self.db,
            self.dsn,
            settings.sse_buffer_messages,
            heartbeat_s=settings.sse_heartbeat_ms / 1000,
            send_timeout_s=settings.sse_send_timeout_ms / 1000,
        )

    def make_worker(self) -> Worker:
        serves = worker_serves(self.settings, self.engines)
        worker = Worker(self.db, self.dsn, self.settings, self.handlers, serves=serves)
        worker.janitor = Janitor(self.db, self.storage, self.settings)
        return worker


def transcription_handlers(
    db: AsyncEngine,
    storage: Storage,
    engines: Mapping[str, Engine],
    analyzer: Analyzer | None = None,
    fetcher: Fetcher | None = None,
    max_duration_ms: int | None = None,
) -> dict[str, JobHandler]:
    handler = TranscriptionHandler(db, storage, engines, analyzer, fetcher, max_duration_ms)
    return {TRANSCRIBE_LONG: handler, TRANSCRIBE_SYNC: handler}


@contextlib.asynccontextmanager
async def open_context(
    settings: Settings, *, engines: Mapping[str, Engine] | None = None
) -> AsyncIterator[Context]:
    set_memory_limit(settings.cpu_worker_memory_mb)
    url = database_url(settings)
    db = create_engine(url, pool_size=pool_size(settings), pooled=is_pooled(settings))
    try:
        await check_capacity(db, settings)
    except BaseException:
        await db.dispose()
        raise
    storage = open_storage(settings)
    engines = dict(engines) if engines is not None else available_engines(settings, db)
    fetcher = Fetcher.from_settings(settings)
    handlers = transcription_handlers(
        db, storage, engines, make_analyzer(settings), fetcher, settings.max_audio_duration_ms
    )
    handlers[DELIVER_WEBHOOK] = WebhookHandler(db, settings)
    executor = Executor(db, settings, handlers, "inline:" + new_worker_id())
    ctx = Context(settings, url, db, storage, engines, handlers, executor)
    ctx.direct = direct_url(settings)
    try:
        yield ctx
    finally:
        if ctx.worker is not None:
            await ctx.worker.stop()
        if ctx.hub is not None:
            await ctx.hub.stop()
        await db.dispose()
