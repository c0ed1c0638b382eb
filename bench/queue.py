"""How fast is Tapeline's Postgres queue next to pgqueuer and procrastinate?

On one PostgreSQL server, each queue gets its own fresh database and pushes the same no-op work:
N jobs enqueued in one batch statement, then consumed by one worker process-equivalent (an
asyncio consumer in this process) at the same concurrency, until every job is recorded as done
in the database. For each queue the consumer is started first and warmed up on a small batch
(not timed), so connection set-up, LISTEN, schema checks and statement preparation are excluded
alike; then the timed batch is enqueued (timed on its own) and processed (timed from the enqueue's
commit until the database shows every job finished).

    python bench/queue.py [--jobs 10000] [--concurrency 20]
                          [--database-url postgresql://postgres@127.0.0.1:5432/test]

The URL names an existing database used only to create and drop the scratch databases
`tapeline_bench`, `pgqueuer_bench` and `procrastinate_bench` on the same server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from service import queue
from service.config import load_settings
from service.database import asyncpg_dsn, create_engine, normalize_url
from service.errors import TapelineError
from service.queue import ClaimedJob
from service.schema import upgrade
from service.worker import Worker

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
NOOP = "noop"
WARMUP_JOBS = 200
POLL_S = 1.0  # every consumer's fallback poll interval; all of them wake on NOTIFY
DONE_POLL_S = 0.005  # how often the database is asked "all done?" once the handlers ran
TIMEOUT_S = 120.0  # per phase; a stuck queue fails its row instead of hanging the run


@dataclass
class Result:
    name: str
    jobs: int
    enqueue_s: float = float("nan")
    process_s: float = float("nan")
    note: str = ""
    error: str | None = None

    @property
    def total_s(self) -> float:
        return self.enqueue_s + self.process_s

    @property
    def ok(self) -> bool:
        return self.error is None

    def rate(self, seconds: float) -> float:
        return self.jobs / seconds if seconds > 0 else float("nan")


class Counter:
    """Counts handler calls and fires once a target is reached (cheaper than polling SQL)."""

    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.reached = asyncio.Event()

    def expect(self, target: int) -> None:
        self.target = target
        self.reached.clear()
        if self.count >= target:
            self.reached.set()

    def hit(self) -> None:
        self.count += 1
        if self.count >= self.target:
            self.reached.set()


async def wait_done(
    counter: Counter, target: int, finished: Callable[[], Awaitable[int]], what: str
) -> None:
    """Wait until the handlers ran `target` times in total and the database shows them done."""
    async with asyncio.timeout(TIMEOUT_S):
        await counter.reached.wait()
        while (done := await finished()) < target:
            await asyncio.sleep(DONE_POLL_S)
    if done != target:
        raise RuntimeError(f"{what}: expected {target} finished jobs, found {done}")


# --- scratch databases -----------------------------------------------------------------------------


def scratch_url(admin: URL, name: str) -> URL:
    return admin.set(database=name)


async def recreate_database(admin: URL, name: str) -> URL:
    conn = await asyncpg.connect(asyncpg_dsn(admin))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return scratch_url(admin, name)


async def drop_database(admin: URL, name: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(admin))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# --- (a) Tapeline ----------------------------------------------------------------------------------


class NoopHandler:
    """A JobHandler that does nothing and owns no rows."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    async def run(self, job: ClaimedJob) -> None:
        self.counter.hit()

    async def on_success(self, conn: AsyncConnection, job: ClaimedJob, result: Any) -> None:
        pass

    async def on_retry(self, conn: AsyncConnection, job: ClaimedJob, error: TapelineError) -> None:
        pass

    async def on_failure(
        self, conn: AsyncConnection, job: ClaimedJob, error: TapelineError
    ) -> None:
        pass

    async def on_release(self, conn: AsyncConnection, job: ClaimedJob) -> None:
        pass


async def bench_tapeline(admin: URL, jobs: int, concurrency: int) -> Result:
    result = Result("Tapeline", jobs, note=f"Worker(concurrency={concurrency}), pool 10+10")
    url = normalize_url((await recreate_database(admin, "tapeline_bench")).render_as_string(False))
    await asyncio.to_thread(upgrade, url)
    settings = load_settings(
        database_url=url.render_as_string(hide_password=False),
        poll_interval_ms=int(POLL_S * 1000),
        max_concurrent_jobs=concurrency,
        worker_max_retries=0,
    )
    db = create_engine(url)  # the pool every Tapeline process uses (pool_size=10)
    producer = create_engine(url, pool_size=1)  # stands in for the API process
    counter = Counter()
    worker = Worker(
        db, asyncpg_dsn(url), settings, {NOOP: NoopHandler(counter)}, concurrency=concurrency
    )

    async def enqueue(n: int) -> None:
        async with producer.begin() as conn:
            queued = await queue.enqueue_many(conn, [NOOP] * n, max_attempts=1)
        assert queued == n, queued

    async def succeeded() -> int:
        async with producer.connect() as conn:
            return int(
                (
                    await conn.execute(text("SELECT count(*) FROM job WHERE status = 'succeeded'"))
                ).scalar_one()
            )

    try:
        await worker.start()
        counter.expect(WARMUP_JOBS)
        await enqueue(WARMUP_JOBS)
        await wait_done(counter, WARMUP_JOBS, succeeded, "Tapeline warm-up")

        counter.expect(WARMUP_JOBS + jobs)
        started = time.perf_counter()
        await enqueue(jobs)
        enqueued = time.perf_counter()
        await wait_done(counter, WARMUP_JOBS + jobs, succeeded, "Tapeline")
        result.enqueue_s, result.process_s = enqueued - started, time.perf_counter() - enqueued
    finally:
        await worker.stop(grace_ms=1000)
        await producer.dispose()
        await db.dispose()
    return result


# --- (b) pgqueuer ----------------------------------------------------------------------------------


async def bench_pgqueuer(admin: URL, jobs: int, concurrency: int, pooled: bool) -> Result:
    from pgqueuer import AsyncpgDriver, AsyncpgPoolDriver, Job, Queries, QueueManager

    batch = min(10, max(1, concurrency // 2))  # 10 is pgqueuer's default; cap must be >= 2x
    how = "asyncpg pool of 10" if pooled else "one asyncpg connection (its default)"
    result = Result(
        "pgqueuer" + (" (pool)" if pooled else ""),
        jobs,
        note=f"QueueManager(max_concurrent_tasks={concurrency}, batch_size={batch}), {how}",
    )
    dsn = asyncpg_dsn(await recreate_database(admin, "pgqueuer_bench"))
    producer_conn = await asyncpg.connect(dsn)
    consumer_conn: Any = None
    pool: Any = None
    try:
        producer = Queries(AsyncpgDriver(producer_conn))
        await producer.install()
        if pooled:
            pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
            driver: Any = AsyncpgPoolDriver(pool)
        else:
            consumer_conn = await asyncpg.connect(dsn)
            driver = AsyncpgDriver(consumer_conn)
        qm = QueueManager(Queries(driver))
        counter = Counter()

        @qm.entrypoint(NOOP)
        async def noop(job: Job) -> None:
            counter.hit()

        table = producer.qbe.settings.queue_table

        async def enqueue(n: int) -> None:
            ids = await producer.enqueue([NOOP] * n, [None] * n, [0] * n)
            assert len(ids) == n, len(ids)

        async def finished_total() -> int:
            # pgqueuer moves a finished job from its queue table to its log table.
            left = int(await producer_conn.fetchval(f"SELECT count(*) FROM {table}"))
            return counter.target - left

        consumer = asyncio.create_task(
            qm.run(
                dequeue_timeout=timedelta(seconds=POLL_S),
                batch_size=batch,
                max_concurrent_tasks=concurrency,
            )
        )
        try:
            counter.expect(WARMUP_JOBS)
            await enqueue(WARMUP_JOBS)
            await wait_done(counter, WARMUP_JOBS, finished_total, "pgqueuer warm-up")

            counter.expect(WARMUP_JOBS + jobs)
            started = time.perf_counter()
            await enqueue(jobs)
            enqueued = time.perf_counter()
            await wait_done(counter, WARMUP_JOBS + jobs, finished_total, "pgqueuer")
            result.enqueue_s, result.process_s = enqueued - started, time.perf_counter() - enqueued
        finally:
            qm.shutdown.set()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(consumer, 15)
    finally:
        await producer_conn.close()
        if consumer_conn is not None:
            await consumer_conn.close()
        if pool is not None:
            await pool.close()
    return result


# --- (c) procrastinate -----------------------------------------------------------------------------


async def bench_procrastinate(admin: URL, jobs: int, concurrency: int) -> Result:
    import procrastinate

    pool_size = concurrency + 2  # a connection per running job, plus LISTEN and the fetch loop
    result = Result(
        "procrastinate",
        jobs,
        note=f"run_worker_async(concurrency={concurrency}), psycopg pool of {pool_size}",
    )
    conninfo = asyncpg_dsn(await recreate_database(admin, "procrastinate_bench"))
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=conninfo, min_size=pool_size, max_size=pool_size
        )
    )
    producer_app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=conninfo, min_size=1, max_size=1)
    )
    counter = Counter()

    async def noop() -> None:
        counter.hit()

    task = app.task(name=NOOP)(noop)
    producer_task = producer_app.task(name=NOOP)(noop)

    async with app.open_async(), producer_app.open_async():
        await producer_app.schema_manager.apply_schema_async()
        producer_pool = producer_app.connector.pool

        async def enqueue(n: int) -> None:
            ids = await producer_task.batch_defer_async(*({} for _ in range(n)))
            assert len(ids) == n, len(ids)

        async def succeeded() -> int:
            async with producer_pool.connection() as conn:
                cursor = await conn.execute(
                    "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
                )
                row = await cursor.fetchone()
                return int(row[0]) if row else 0

        assert task.name == producer_task.name
        consumer = asyncio.create_task(
            app.run_worker_async(
                concurrency=concurrency,
                wait=True,
                fetch_job_polling_interval=POLL_S,
                abort_job_polling_interval=POLL_S,
                install_signal_handlers=False,
                listen_notify=True,
            )
        )
        try:
            counter.expect(WARMUP_JOBS)
            await enqueue(WARMUP_JOBS)
            await wait_done(counter, WARMUP_JOBS, succeeded, "procrastinate warm-up")

            counter.expect(WARMUP_JOBS + jobs)
            started = time.perf_counter()
            await enqueue(jobs)
            enqueued = time.perf_counter()
            await wait_done(counter, WARMUP_JOBS + jobs, succeeded, "procrastinate")
            result.enqueue_s, result.process_s = enqueued - started, time.perf_counter() - enqueued
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(consumer, 15)
    return result


# --- report ----------------------------------------------------------------------------------------


def fmt(value: float, spec: str) -> str:
    return "—" if value != value else format(value, spec)  # NaN-safe


def report(results: list[Result], jobs: int, concurrency: int) -> None:
    print()
    print(f"{jobs} no-op jobs per queue, concurrency {concurrency}, same PostgreSQL server")
    header = (
        f"{'queue':<16}{'enqueue s':>10}{'process s':>10}{'total s':>9}"
        f"{'enqueue/s':>11}{'process/s':>11}{'total/s':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        if not r.ok:
            print(f"{r.name:<16}failed: {r.error}")
            continue
        print(
            f"{r.name:<16}{r.enqueue_s:>10.3f}{r.process_s:>10.3f}{r.total_s:>9.3f}"
            f"{fmt(r.rate(r.enqueue_s), ',.0f'):>11}{fmt(r.rate(r.process_s), ',.0f'):>11}"
            f"{fmt(r.rate(r.total_s), ',.0f'):>9}"
        )
    print()
    for r in results:
        print(f"  {r.name}: {r.note}")
    by_name = {r.name: r for r in results if r.ok}
    tapeline = by_name.get("Tapeline")
    if tapeline is None:
        return
    print()
    for name in ("pgqueuer", "pgqueuer (pool)", "procrastinate"):
        other = by_name.get(name)
        if other is None:
            continue
        print(
            f"Tapeline/{name} throughput: total {other.total_s / tapeline.total_s:.2f}x, "
            f"processing {other.process_s / tapeline.process_s:.2f}x, "
            f"enqueue {other.enqueue_s / tapeline.enqueue_s:.2f}x"
            "  (>1 means Tapeline is faster)"
        )


async def run_one(name: str, bench: Awaitable[Result]) -> Result:
    print(f"running {name} ...", flush=True)
    try:
        result = await bench
    except Exception as exc:
        print(f"  {name} failed: {type(exc).__name__}: {exc}", flush=True)
        return Result(name, 0, error=f"{type(exc).__name__}: {exc}")
    print(
        f"  {name}: enqueue {result.enqueue_s:.3f}s, process {result.process_s:.3f}s",
        flush=True,
    )
    return result


async def main_async(args: argparse.Namespace) -> list[Result]:
    admin = normalize_url(args.database_url)
    results = [
        await run_one("Tapeline", bench_tapeline(admin, args.jobs, args.concurrency)),
        await run_one("pgqueuer", bench_pgqueuer(admin, args.jobs, args.concurrency, False)),
    ]
    if args.pgqueuer_pool:
        results.append(
            await run_one(
                "pgqueuer (pool)", bench_pgqueuer(admin, args.jobs, args.concurrency, True)
            )
        )
    if not args.skip_procrastinate:
        results.append(
            await run_one(
                "procrastinate", bench_procrastinate(admin, args.jobs, args.concurrency)
            )
        )
    if not args.keep:
        for name in ("tapeline_bench", "pgqueuer_bench", "procrastinate_bench"):
            with contextlib.suppress(Exception):
                await drop_database(admin, name)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or DEFAULT_URL)
    parser.add_argument(
        "--pgqueuer-pool",
        action="store_true",
        help="also run pgqueuer over an asyncpg pool instead of its single connection",
    )
    parser.add_argument("--skip-procrastinate", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    args = parser.parse_args()
    if args.concurrency < 2:
        parser.error("--concurrency must be at least 2 (pgqueuer needs twice its batch size)")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    results = asyncio.run(main_async(args))
    report(results, args.jobs, args.concurrency)


if __name__ == "__main__":
    main()
