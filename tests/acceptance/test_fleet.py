"""A fleet of different workers on one database: each claims only what it serves, and a job
nobody serves waits, visibly, instead of being failed by the wrong worker."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.database import Row
from service.jobs import queue
from service.media.storage import LocalStorage
from service.runs import store as runs
from service.runs.representations import progress_json
from tests.integration.cloud import spoken, store_audio
from tests.integration.helpers import run_state
from tests.server import env_with, process, tapeline

pytestmark = pytest.mark.timeout(180)


async def queue_needing(
    db: AsyncEngine, storage: LocalStorage, wav: Path, engine: str, needs: str
) -> tuple[Row, int]:
    audio = await store_audio(db, storage, wav, "alice")
    async with db.begin() as conn:
        change = await runs.create_run(
            conn, audio_id=audio["id"], owner="alice", engine=engine, model=None, language=None
        )
        job_id = await queue.enqueue(
            conn,
            job_type=queue.TRANSCRIBE_LONG,
            run_id=change.run["id"],
            max_attempts=2,
            needs=needs,
        )
    return change.run, job_id


async def test_two_workers_claim_only_what_they_serve(
    db: AsyncEngine,
    settings: Settings,
    subprocess_env: dict[str, str],
    speech_dir: Path,
    tmp_path: Path,
) -> None:
    storage = LocalStorage(settings.tapeline_data_dir / "blobs")
    wav = spoken(speech_dir, 5)
    local_model = settings.whisper_model
    cpu_env = env_with(subprocess_env, TAPELINE_WORKER_ENGINES="local")
    cloud_env = env_with(
        subprocess_env,
        TAPELINE_WORKER_ENGINES="gemini",
        GEMINI_API_KEY="AIza-fleet-test-key",
        GEMINI_BASE_URL="http://127.0.0.1:9",
        WORKER_RETRY_DELAYS="60000",
    )
    cpu_log, cloud_log = tmp_path / "cpu.log", tmp_path / "cloud.log"
    with (
        process(tapeline("worker", "--no-migrate"), cpu_env, cpu_log),
        process(tapeline("worker", "--no-migrate"), cloud_env, cloud_log),
    ):
        local, local_job = await queue_needing(db, storage, wav, "local", f"local/{local_model}")
        large, _ = await queue_needing(db, storage, wav, "local", "local/large-v3")
        cloud, cloud_job = await queue_needing(db, storage, wav, "gemini", "gemini")
        deadline = time.monotonic() + 90
        while (await run_state(db, local["id"]))["status"] != "succeeded":
            assert time.monotonic() < deadline, cpu_log.read_text()[-3000:]
            await asyncio.sleep(0.1)
        while f"job {cloud_job} started" not in cloud_log.read_text():
            assert time.monotonic() < deadline, cloud_log.read_text()[-3000:]
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        async with db.connect() as conn:
            waiting = await queue.unserved(conn)
            progress = await runs.progress(conn, large["id"], None)
            workers = (await conn.exec_driver_sql("SELECT serves FROM worker")).scalars().all()
    assert f"job {local_job} started" in cpu_log.read_text()
    assert f"job {cloud_job} started" not in cpu_log.read_text()
    assert f"job {local_job} started" not in cloud_log.read_text()
    assert (await run_state(db, large["id"]))["status"] == "queued", "never failed by a worker"
    assert waiting == {"local/large-v3": 1}
    assert progress is not None
    shown = progress_json(progress)
    assert shown["waiting"] == "waiting for a worker that serves local/large-v3"
    assert sorted(map(tuple, workers)) == sorted([(f"local/{local_model}",), ("gemini",)])
    assert (await run_state(db, cloud["id"]))["status"] in ("processing", "queued", "failed")
