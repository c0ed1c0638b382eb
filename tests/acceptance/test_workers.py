"""Worker processes as they run in production: racing, killed, stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.jobs import queue
from service.media.storage import LocalStorage
from tests.integration.helpers import event_types, queue_run, run_state
from tests.server import process

WORKER = [sys.executable, "-m", "tests.acceptance.worker_process"]


async def wait_until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def scalar(db: AsyncEngine, sql: str, **params: object) -> object:
    async with db.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def test_two_worker_processes_never_run_one_job_twice(
    db: AsyncEngine, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    async with db.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS race_execution"))
        await conn.execute(text("CREATE TABLE race_execution (job_id bigint, worker_id text)"))
    jobs = 1500
    args = [*WORKER, "--concurrency", "8"]
    with (
        process(args, subprocess_env, tmp_path / "w1.log"),
        process(args, subprocess_env, tmp_path / "w2.log"),
    ):
        await asyncio.sleep(1.0)
        for _ in range(jobs // 100):
            async with db.begin() as conn:
                await queue.enqueue_many(conn, ["race_noop"] * 100)

        async def all_done() -> bool:
            done = await scalar(db, "SELECT count(*) FROM job WHERE status = 'succeeded'")
            return done == jobs

        await wait_until(all_done, 90, "every job to finish")
    executions = await scalar(db, "SELECT count(*) FROM race_execution")
    distinct = await scalar(db, "SELECT count(DISTINCT job_id) FROM race_execution")
    workers = await scalar(db, "SELECT count(DISTINCT worker_id) FROM race_execution")
    async with db.begin() as conn:
        await conn.execute(text("DROP TABLE race_execution"))
    assert (executions, distinct) == (jobs, jobs)
    assert workers == 2, "both processes took part in the race"


async def test_a_sigkilled_worker_s_job_is_finished_by_another_within_the_lease(
    db: AsyncEngine, settings: Settings, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    storage = LocalStorage(settings.tapeline_data_dir / "blobs")
    run, _job_id = await queue_run(db, storage=storage)
    with process(
        [*WORKER, "--engine-delay", "60"], subprocess_env, tmp_path / "doomed.log"
    ) as doomed:

        async def processing() -> bool:
            return (await run_state(db, run["id"]))["stage"] == "analyzing"

        await wait_until(processing, 30, "the doomed worker to start the job")
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait()
    killed_at = time.monotonic()
    with process([*WORKER, "--engine-delay", "0.2"], subprocess_env, tmp_path / "rescuer.log"):

        async def succeeded() -> bool:
            return (await run_state(db, run["id"]))["status"] == "succeeded"

        await wait_until(succeeded, 30, "the rescuer to finish the job")
    recovered_in = time.monotonic() - killed_at
    lease_s = settings.job_lease_ms / 1000
    startup_allowance = 5.0
    assert recovered_in < lease_s + settings.poll_interval_ms / 1000 + startup_allowance
    types = await event_types(db, run["id"])
    assert types.count("started") == 2 and "requeued" in types and types[-1] == "succeeded"
    assert (await run_state(db, run["id"]))["attempts"] == 2


async def test_sigterm_lets_the_running_job_finish_and_claims_nothing_more(
    db: AsyncEngine, settings: Settings, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    storage = LocalStorage(settings.tapeline_data_dir / "blobs")
    first, _ = await queue_run(db, storage=storage)
    with process(
        [*WORKER, "--engine-delay", "1.5", "--concurrency", "1"], subprocess_env, tmp_path / "w.log"
    ) as worker:

        async def started() -> bool:
            return (await run_state(db, first["id"]))["stage"] == "analyzing"

        await wait_until(started, 30, "the job to start")
        second, _ = await queue_run(db, storage=storage)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0
    assert (await run_state(db, first["id"]))["status"] == "succeeded"
    assert (await run_state(db, second["id"]))["status"] == "queued"
    state = await scalar(db, "SELECT state FROM worker ORDER BY heartbeat_at DESC LIMIT 1")
    assert state == "stopped"


pytestmark = pytest.mark.timeout(180)
