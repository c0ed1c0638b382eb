"""What the cloud engine tests share: settings pointing at the fakes, spoken audio in storage,
and a worker running the real pipeline until a run is final."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.context import Context, open_context
from service.database import Row
from service.jobs import queue
from service.media.audio import probe
from service.media.storage import LocalStorage
from service.queries import q
from service.runs import analysis as analysis_module
from service.runs import store as runs
from service.runs.store import FINAL_STATUSES
from tests.fakes import Fakes
from tests.integration.helpers import run_state
from tests.speech import long_recording

GEMINI_KEY = "AIza-test-gemini-key-0123456789"
OPENAI_KEY = "sk-test-openai-key-0123456789"


def cloud_settings(settings: Settings, fakes: Fakes, **overrides: Any) -> Settings:
    """The test settings with both cloud engines on the fakes and every bound short."""
    values: dict[str, Any] = {
        "gemini_api_key": SecretStr(GEMINI_KEY),
        "gemini_base_url": fakes.gemini_url,
        "openai_api_key": SecretStr(OPENAI_KEY),
        "openai_base_url": fakes.openai_url,
        "engine_request_timeout_ms": 1_000,
        "engine_retry_base_ms": 20,
        "engine_retry_max_ms": 100,
        "engine_max_attempts": 3,
        "gemini_upload_timeout_ms": 3_000,
        "gemini_poll_timeout_ms": 1_000,
        "gemini_poll_interval_ms": 50,
        "gemini_generate_timeout_ms": 2_000,
        "job_timeout_ms": 15_000,
        "worker_max_retries": 1,
    }
    values.update(overrides)
    return settings.model_copy(update=values)


def spoken(directory: Path, seconds: float) -> Path:
    """A WAV of flite sentences with pauses, about `seconds` long (made once per length)."""
    path = directory / f"speech-{seconds:g}s.wav"
    if not path.exists():
        long_recording(path, seconds / 60)
    return path


async def store_audio(db: AsyncEngine, storage: LocalStorage, wav: Path, owner: str) -> Row:
    staged = storage.staging_path()
    staged.write_bytes(wav.read_bytes())
    info = probe(staged)
    params = {
        "owner": owner,
        "filename": wav.name,
        "content_type": "audio/wav",
        "size_bytes": staged.stat().st_size,
        "duration_ms": info.duration_ms,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "sha256": uuid.uuid4().hex,
        "storage_key": f"audio/test/{uuid.uuid4()}",
    }
    await storage.adopt(staged, params["storage_key"])
    async with db.begin() as conn:
        return (await conn.execute(q("insert_audio"), params)).mappings().one()


async def queue_audio_run(
    ctx: Context,
    wav: Path,
    engine: str,
    *,
    owner: str = "alice",
    analysis: bool = False,
    language: str | None = None,
) -> Row:
    """A queued run of `wav` on `engine`, as POST /api/runs makes it."""
    assert isinstance(ctx.storage, LocalStorage)
    audio = await store_audio(ctx.db, ctx.storage, wav, owner)
    async with ctx.db.begin() as conn:
        change = await runs.create_run(
            conn, audio_id=audio["id"], owner=owner, engine=engine, model=None, language=language
        )
        if analysis:
            await analysis_module.request_analysis(conn, change.run["id"])
        await queue.enqueue(
            conn,
            job_type=queue.TRANSCRIBE_LONG,
            run_id=change.run["id"],
            max_attempts=ctx.settings.max_attempts,
        )
    return change.run


@asynccontextmanager
async def worker_on(settings: Settings) -> AsyncIterator[Context]:
    """A context built from `settings` (engines as production builds them) with its worker."""
    async with open_context(settings) as ctx:
        ctx.worker = ctx.make_worker()
        await ctx.worker.start()
        yield ctx


async def until_final(db: AsyncEngine, run_id: uuid.UUID, timeout: float = 30) -> Row:
    """The run once it is succeeded, failed or cancelled; fails the test if it never is."""
    deadline = time.monotonic() + timeout
    while True:
        run = await run_state(db, run_id)
        if run["status"] in FINAL_STATUSES:
            return run
        assert time.monotonic() < deadline, f"run still {run['status']} after {timeout} s"
        await asyncio.sleep(0.05)
