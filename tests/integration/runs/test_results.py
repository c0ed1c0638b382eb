"""A run turns succeeded only after its transcript is stored and read back (faults injected into
storage), and downloads read what was stored."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.context import Context, open_context, transcription_handlers
from service.errors import Deleted
from service.media.storage import LocalStorage
from service.runs.results import stored_transcript
from tests.fakes_engines import EchoEngine
from tests.integration.helpers import event_types, queue_run, run_state


class FailingWrites(LocalStorage):
    """Transcript writes raise, as a full disk or a refused PUT would."""

    async def put_bytes(self, key: str, data: bytes) -> None:
        raise OSError(28, "No space left on device")


class CorruptingReads(LocalStorage):
    """Writes seem to succeed but the transcript reads back different (a torn write)."""

    async def get_bytes(self, key: str) -> bytes:
        return (await super().get_bytes(key))[:-3]


Factory = Callable[[type[LocalStorage]], AbstractAsyncContextManager[Context]]


@pytest.fixture
def worker_with(db: AsyncEngine, settings: Settings) -> Factory:
    @asynccontextmanager
    async def start(storage_type: type[LocalStorage]) -> AsyncIterator[Context]:
        async with open_context(settings, engines={"local": EchoEngine()}) as ctx:
            ctx.storage = storage_type(settings.tapeline_data_dir / "blobs")
            ctx.handlers = transcription_handlers(ctx.db, ctx.storage, ctx.engines)
            ctx.worker = ctx.make_worker()
            await ctx.worker.start()
            yield ctx

    return start


async def finished(db: AsyncEngine, run_id: uuid.UUID) -> str:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status = str((await run_state(db, run_id))["status"])
        if status in ("succeeded", "failed"):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError("the run never finished")


@pytest.mark.parametrize("storage_type", [FailingWrites, CorruptingReads])
async def test_a_run_whose_transcript_was_not_stored_never_succeeds(
    db: AsyncEngine, worker_with: Factory, storage_type: type[LocalStorage]
) -> None:
    async with worker_with(storage_type) as ctx:
        assert isinstance(ctx.storage, LocalStorage)
        run, _ = await queue_run(db, storage=ctx.storage, max_attempts=2)
        assert await finished(db, run["id"]) == "failed"
    failed = await run_state(db, run["id"])
    assert failed["error_code"] == "storage_write_failed" and failed["transcript"] is None
    assert failed["attempts"] == 2 and failed["transcript_key"] is None
    assert "succeeded" not in await event_types(db, run["id"])


async def test_a_succeeded_run_has_its_transcript_in_storage(
    db: AsyncEngine, worker_with: Factory
) -> None:
    async with worker_with(LocalStorage) as ctx:
        assert isinstance(ctx.storage, LocalStorage)
        run, _ = await queue_run(db, storage=ctx.storage)
        assert await finished(db, run["id"]) == "succeeded"
        done = await run_state(db, run["id"])
        assert done["transcript_key"] == f"transcripts/{run['id']}.json"
        transcript = await stored_transcript(ctx, done)
        assert transcript.text == "hello from the echo engine"
        await ctx.storage.delete(done["transcript_key"])
        with pytest.raises(Deleted):
            await stored_transcript(ctx, done)
