"""The worker loop with the real transcription pipeline, engines that misbehave, real Postgres."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.context import Context, open_context
from service.engines.base import Engine
from service.errors import EngineRefused, UpstreamUnavailable
from service.jobs import queue
from service.jobs.worker import Worker
from service.media.storage import LocalStorage
from service.runs import submission as transcription
from service.tokens import Principal
from tests.fakes_engines import EchoEngine, HangingEngine, ScriptedEngine
from tests.integration.helpers import RecordingHandler, event_types, queue_run, run_state

WorkerFactory = Callable[..., AbstractAsyncContextManager[Context]]


@pytest.fixture
def running_worker(db: AsyncEngine, settings: Settings) -> WorkerFactory:
    """Open a context with the given engines and a started worker; stop it afterwards."""

    @asynccontextmanager
    async def start(engine: Engine, **overrides: object) -> AsyncIterator[Context]:
        tuned = settings.model_copy(update=overrides)
        async with open_context(tuned, engines={"local": engine}) as ctx:
            ctx.worker = ctx.make_worker()
            await ctx.worker.start()
            yield ctx

    return start


async def wait_for_status(
    db: AsyncEngine, run_id: object, statuses: tuple[str, ...], timeout: float = 10
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = await run_state(db, run_id)  # type: ignore[arg-type]
        if run["status"] in statuses:
            return str(run["status"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"run never reached {statuses}; last seen {run['status']}")


def storage_of(ctx: Context) -> LocalStorage:
    assert isinstance(ctx.storage, LocalStorage)
    return ctx.storage


async def test_a_run_goes_through_every_stage_to_succeeded(
    db: AsyncEngine, running_worker: WorkerFactory
) -> None:
    async with running_worker(EchoEngine()) as ctx:
        run, _ = await queue_run(db, storage=storage_of(ctx))
        assert await wait_for_status(db, run["id"], ("succeeded",)) == "succeeded"
    done = await run_state(db, run["id"])
    assert (done["stage"], done["progress"], done["attempts"]) == ("done", 100, 1)
    assert done["transcript"]["text"] == "hello from the echo engine"
    assert await event_types(db, run["id"]) == ["queued", "started", "stage", "stage", "succeeded"]


async def test_transient_failures_are_retried_on_the_configured_schedule(
    db: AsyncEngine, running_worker: WorkerFactory
) -> None:
    engine = ScriptedEngine([UpstreamUnavailable()] * 10)
    async with running_worker(engine, worker_retry_delays=[300, 600, 900]) as ctx:
        run, _job_id = await queue_run(db, storage=storage_of(ctx), max_attempts=4)
        await wait_for_status(db, run["id"], ("failed",), timeout=15)
    failed = await run_state(db, run["id"])
    assert (failed["error_code"], failed["attempts"], engine.calls) == (
        "upstream_unavailable",
        4,
        4,
    )
    async with db.connect() as conn:
        starts = (
            (
                await conn.execute(
                    text(
                        "SELECT created_at FROM run_event WHERE run_id = :r AND type = 'started' "
                        "ORDER BY id"
                    ),
                    {"r": run["id"]},
                )
            )
            .scalars()
            .all()
        )
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert [round(g, 1) >= d for g, d in zip(gaps, (0.3, 0.6, 0.9), strict=True)] == [True] * 3
    assert all(g < d + 1.0 for g, d in zip(gaps, (0.3, 0.6, 0.9), strict=True)), gaps
    assert (await event_types(db, run["id"])).count("retry_scheduled") == 3


async def test_a_bug_fails_the_run_at_once_as_internal_error_with_its_traceback_logged(
    db: AsyncEngine, running_worker: WorkerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The reported case: a TypeError from a library on this audio would happen again on
    every retry, so there is none, and the message promises none."""
    engine = ScriptedEngine([TypeError("'NoneType' object is not iterable")] * 4)
    async with running_worker(engine) as ctx:
        run, job_id = await queue_run(db, storage=storage_of(ctx), max_attempts=4)
        await wait_for_status(db, run["id"], ("failed",))
    failed = await run_state(db, run["id"])
    assert (failed["error_code"], failed["attempts"], engine.calls) == ("internal_error", 1, 1)
    assert "TypeError" in failed["error_message"]
    assert "retr" not in failed["error_message"].lower()
    assert "retry_scheduled" not in await event_types(db, run["id"])
    async with db.connect() as conn:
        job = await conn.execute(text("SELECT status FROM job WHERE id = :j"), {"j": job_id})
        assert job.scalar_one() == "failed"
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is TypeError]
    assert logged, "the traceback is in the log"


async def test_a_transient_failure_that_goes_away_ends_succeeded(
    db: AsyncEngine, running_worker: WorkerFactory
) -> None:
    engine = ScriptedEngine([UpstreamUnavailable()])
    async with running_worker(engine) as ctx:
        run, _ = await queue_run(db, storage=storage_of(ctx))
        await wait_for_status(db, run["id"], ("succeeded",))
    assert (await run_state(db, run["id"]))["attempts"] == 2


async def test_permanent_failures_fail_at_once(
    db: AsyncEngine, running_worker: WorkerFactory
) -> None:
    engine = ScriptedEngine([EngineRefused("That audio is refused.")])
    async with running_worker(engine) as ctx:
        run, _ = await queue_run(db, storage=storage_of(ctx))
        await wait_for_status(db, run["id"], ("failed",))
    failed = await run_state(db, run["id"])
    assert (failed["error_code"], failed["error_message"]) == (
        "engine_refused",
        "That audio is refused.",
    )
    assert (failed["attempts"], engine.calls) == (1, 1)


async def test_job_timeout_stops_an_engine_that_hangs(
    db: AsyncEngine, running_worker: WorkerFactory
) -> None:
    engine = HangingEngine()
    async with running_worker(engine, job_timeout_ms=700, worker_max_retries=0) as ctx:
        run, _ = await queue_run(db, storage=storage_of(ctx), max_attempts=1)
        started = time.monotonic()
        await wait_for_status(db, run["id"], ("failed",))
        took = time.monotonic() - started
    failed = await run_state(db, run["id"])
    assert failed["error_code"] == "job_timeout"
    assert engine.cancelled.is_set(), "the hanging call was cancelled, not left running"
    assert took < 5


async def test_cancel_stops_a_running_job_and_nothing_overwrites_it(
    db: AsyncEngine, running_worker: WorkerFactory
) -> None:
    engine = HangingEngine()
    async with running_worker(engine) as ctx:
        run, job_id = await queue_run(db, storage=storage_of(ctx))
        await wait_for_status(db, run["id"], ("processing",))
        await asyncio.sleep(0.2)
        await transcription.cancel_run(ctx, Principal("alice"), run["id"])
        await asyncio.wait_for(engine.cancelled.wait(), 3)
        assert ctx.worker is not None
        await asyncio.sleep(0.3)
        assert ctx.worker.executor.running_job_ids == []
    assert (await run_state(db, run["id"]))["status"] == "cancelled"
    async with db.connect() as conn:
        status = (
            await conn.execute(text("SELECT status FROM job WHERE id = :i"), {"i": job_id})
        ).scalar_one()
    assert status == "cancelled"


async def test_a_job_whose_worker_vanished_is_finished_by_another(
    db: AsyncEngine, running_worker: WorkerFactory, settings: Settings
) -> None:
    async with running_worker(EchoEngine()) as ctx:
        assert ctx.worker is not None
        await ctx.worker.stop()
        run, _job_id = await queue_run(db, storage=storage_of(ctx))
        async with db.begin() as conn:
            await queue.claim(conn, "ghost:1:dead", [queue.TRANSCRIBE_LONG], 1, 200)
        ctx.worker = ctx.make_worker()
        await ctx.worker.start()
        await wait_for_status(
            db, run["id"], ("succeeded",), timeout=settings.job_lease_ms / 1000 + 3
        )
    types = await event_types(db, run["id"])
    assert "requeued" in types and types[-1] == "succeeded"
    assert (await run_state(db, run["id"]))["attempts"] == 2


async def test_stopping_a_worker_hands_its_running_job_back(
    db: AsyncEngine, running_worker: WorkerFactory
) -> None:
    engine = HangingEngine()
    async with running_worker(engine, worker_shutdown_grace_ms=200) as ctx:
        run, job_id = await queue_run(db, storage=storage_of(ctx))
        await wait_for_status(db, run["id"], ("processing",))
        assert ctx.worker is not None
        started = time.monotonic()
        await ctx.worker.stop()
        assert time.monotonic() - started < 8
    released = await run_state(db, run["id"])
    assert released["status"] == "queued"
    async with db.connect() as conn:
        job = (await conn.execute(text("SELECT * FROM job WHERE id = :i"), {"i": job_id})).one()
    assert (job.status, job.locked_by, job.attempts) == ("queued", None, 0)


async def test_inline_processing_leaves_the_same_rows_as_a_worker(
    db: AsyncEngine, settings: Settings
) -> None:
    async with open_context(settings, engines={"local": EchoEngine()}) as ctx:
        run, _ = await queue_run(db, storage=storage_of(ctx))
        audio_id = run["audio_id"]
        inline = await transcription.submit_run(ctx, Principal("alice"), audio_id)
    assert inline["status"] == "succeeded"
    assert await event_types(db, inline["id"]) == [
        "queued",
        "started",
        "stage",
        "stage",
        "succeeded",
    ]
    async with db.connect() as conn:
        job = (
            await conn.execute(text("SELECT * FROM job WHERE run_id = :r"), {"r": inline["id"]})
        ).one()
    assert (job.job_type, job.status, job.attempts) == ("transcribe_sync", "succeeded", 1)


async def test_workers_wake_on_notify_not_on_the_poll_interval(
    db: AsyncEngine, running_worker: WorkerFactory
) -> None:
    async with running_worker(EchoEngine(), poll_interval_ms=60_000) as ctx:
        await asyncio.sleep(0.3)
        run, _ = await queue_run(db, storage=storage_of(ctx))
        started = time.monotonic()
        await wait_for_status(db, run["id"], ("succeeded",), timeout=5)
    assert time.monotonic() - started < 5, "picked up long before the 60 s poll"


async def test_a_worker_never_runs_more_jobs_than_its_concurrency(
    db: AsyncEngine, settings: Settings, database_dsn: str
) -> None:
    running = most = 0

    async def work(_job: object) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.02)
        running -= 1

    async with db.begin() as conn:
        await queue.enqueue_many(conn, ["noop"] * 60)
    handler = RecordingHandler(work)
    worker = Worker(db, database_dsn, settings, {"noop": handler}, concurrency=4)
    await worker.start()
    try:
        while len(handler.outcomes) < 60:
            await asyncio.sleep(0.05)
    finally:
        await worker.stop()
    assert most == 4
    finished = [job_id for _, job_id, _ in handler.outcomes]
    assert len(finished) == len(set(finished)) == 60
