"""How fast is Tapeline's Postgres queue next to pgqueuer and procrastinate?

On one PostgreSQL server, each queue gets its own fresh database and does the same no-op work:
N jobs enqueued in one batch statement, then consumed by one worker (an asyncio consumer in this
process, using the library's own worker API) at the same concurrency, until the database records
every job as done. Each consumer is started first and warmed up on a small batch (not timed), so
connecting, LISTEN, schema checks and statement preparation are left out for every queue alike.
Then the timed batch is enqueued (timed on its own) and processed (timed from the enqueue's
commit until the database shows every job finished).

    python bench/queue.py [--jobs 10000] [--concurrency 20] [--rounds 1]
                          [--database-url postgresql://postgres@127.0.0.1:5432/test]

The URL names an existing database, used only to drop and create the scratch databases
`tapeline_bench`, `pgqueuer_bench` and `procrastinate_bench` on the same server (dropped again at
the end unless --keep). With --rounds N every queue runs N times, interleaved, and the table shows
each queue's best round (useful on a shared, noisy machine).
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

# `python bench/queue.py` puts bench/ first on sys.path, where this file would shadow the stdlib
# `queue` that asyncio, asyncpg and psycopg import; swap it for the repository root.
sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from service.config import load_settings
from service.database import asyncpg_dsn, create_engine, normalize_url
from service.errors import TapelineError
from service.jobs import queue
from service.jobs.queue import ClaimedJob
from service.jobs.worker import Worker
from service.schema import upgrade

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
SCRATCH_DATABASES = ("tapeline_bench", "pgqueuer_bench", "procrastinate_bench")
NOOP = "noop"
WARMUP_JOBS = 200
POLL_S = 1.0  # every consumer's fallback poll interval; all of them also wake on NOTIFY
DONE_POLL_S = 0.005  # how often the database is asked "all done?" once every handler ran
TIMEOUT_S = 180.0  # per phase: a stuck queue fails its row instead of hanging the run
STOP_TIMEOUT_S = 15.0


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
        while True:
            done = await finished()
            if done >= target:
                break
            await asyncio.sleep(DONE_POLL_S)
    if done != target:
        raise RuntimeError(f"{what}: expected {target} finished jobs, found {done}")


async def timed_batch(
    counter: Counter,
    jobs: int,
    enqueue: Callable[[int], Awaitable[None]],
    finished: Callable[[], Awaitable[int]],
    result: Result,
) -> None:
    """Warm up on WARMUP_JOBS, then time enqueueing and processing `jobs` more."""
    counter.expect(WARMUP_JOBS)
    await enqueue(WARMUP_JOBS)
    await wait_done(counter, WARMUP_JOBS, finished, f"{result.name} warm-up")

    counter.expect(WARMUP_JOBS + jobs)
    started = time.perf_counter()
    await enqueue(jobs)
    enqueued = time.perf_counter()
    await wait_done(counter, WARMUP_JOBS + jobs, finished, result.name)
    result.enqueue_s, result.process_s = enqueued - started, time.perf_counter() - enqueued


async def stop_consumer(task: asyncio.Task[Any], request_stop: Callable[[], object]) -> str | None:
    """Ask a consumer to stop and wait for it; a failure while stopping is reported, not raised
    (it happens after the measurement)."""
    request_stop()
    try:
        await asyncio.wait_for(task, STOP_TIMEOUT_S)
    except asyncio.CancelledError:
        if not task.cancelled():
            raise
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


# --- scratch databases ---------------------------------------------------------------------------


async def recreate_database(admin: URL, name: str) -> URL:
    conn = await asyncpg.connect(asyncpg_dsn(admin))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin.set(database=name)


async def drop_database(admin: URL, name: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(admin))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# --- (a) Tapeline --------------------------------------------------------------------------------


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


async def bench_tapeline(
    admin: URL, jobs: int, concurrency: int, pool_size: int | None, name: str
) -> Result:
    """A real `Worker` on a migrated database. `pool_size=None` builds the engine exactly as
    `tapeline worker` does (`create_engine(url)`: 10 pooled + 10 overflow connections)."""
    pool = (
        "create_engine(url) as shipped: 10+10" if pool_size is None else f"{pool_size}+{pool_size}"
    )
    result = Result(name, jobs, note=f"Worker(concurrency={concurrency}), pool {pool}")
    url = await recreate_database(admin, "tapeline_bench")
    await asyncio.to_thread(upgrade, url)  # Alembic runs its own event loop
    settings = load_settings(
        database_url=url.render_as_string(hide_password=False),
        poll_interval_ms=int(POLL_S * 1000),
        max_concurrent_jobs=concurrency,
        worker_max_retries=0,
    )
    db = create_engine(url) if pool_size is None else create_engine(url, pool_size=pool_size)
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
            statement = text("SELECT count(*) FROM job WHERE status = 'succeeded'")
            return int((await conn.execute(statement)).scalar_one())

    try:
        await worker.start()
        await timed_batch(counter, jobs, enqueue, succeeded, result)
    finally:
        try:
            await worker.stop(grace_ms=1000)
        finally:
            await producer.dispose()
            await db.dispose()
    return result


# --- (b) pgqueuer --------------------------------------------------------------------------------


async def bench_pgqueuer(admin: URL, jobs: int, concurrency: int, pooled: bool) -> Result:
    from pgqueuer import AsyncpgDriver, AsyncpgPoolDriver, Job, Queries, QueueManager

    batch = min(10, max(1, concurrency // 2))  # 10 is its default; the cap must be >= 2x batch
    how = "asyncpg pool of 10" if pooled else "one asyncpg connection (its default driver)"
    result = Result(
        "pgqueuer" + (" (pool)" if pooled else ""),
        jobs,
        note=f"QueueManager.run(max_concurrent_tasks={concurrency}, batch_size={batch}), {how}",
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

        async def finished() -> int:
            # pgqueuer moves a finished job out of its queue table (into its log table).
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
            await timed_batch(counter, jobs, enqueue, finished, result)
        finally:
            if problem := await stop_consumer(consumer, qm.shutdown.set):
                result.note += f" [error while stopping: {problem}]"
    finally:
        await producer_conn.close()
        if consumer_conn is not None:
            await consumer_conn.close()
        if pool is not None:
            await pool.close()
    return result


# --- (c) procrastinate ---------------------------------------------------------------------------


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
    producer_connector = procrastinate.PsycopgConnector(conninfo=conninfo, min_size=1, max_size=1)
    producer_app = procrastinate.App(connector=producer_connector)  # stands in for the API
    counter = Counter()

    async def noop() -> None:
        counter.hit()

    app.task(name=NOOP)(noop)
    producer_task = producer_app.task(name=NOOP)(noop)

    async with app.open_async(), producer_app.open_async():
        await producer_app.schema_manager.apply_schema_async()

        async def enqueue(n: int) -> None:
            ids = await producer_task.batch_defer_async(*({} for _ in range(n)))
            assert len(ids) == n, len(ids)

        async def succeeded() -> int:
            async with producer_connector.pool.connection() as conn:
                cursor = await conn.execute(
                    "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
                )
                row = await cursor.fetchone()
                return int(row[0]) if row else 0

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
            await timed_batch(counter, jobs, enqueue, succeeded, result)
        finally:
            if problem := await stop_consumer(consumer, consumer.cancel):
                result.note += f" [error while stopping: {problem}]"
    return result


# --- report --------------------------------------------------------------------------------------


def fmt(value: float, spec: str) -> str:
    return "-" if value != value else format(value, spec)  # NaN-safe


def report(results: list[Result], args: argparse.Namespace) -> None:
    rounds = f", best of {args.rounds} rounds" if args.rounds > 1 else ""
    print()
    print(
        f"{args.jobs} no-op jobs per queue, concurrency {args.concurrency}, "
        f"one PostgreSQL server{rounds}"
    )
    width = max(len(r.name) for r in results) + 2
    header = (
        f"{'queue':<{width}}{'enqueue s':>10}{'process s':>10}{'total s':>9}"
        f"{'enqueue/s':>11}{'process/s':>11}{'total/s':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        if not r.ok:
            print(f"{r.name:<{width}}failed: {r.error}")
            continue
        print(
            f"{r.name:<{width}}{r.enqueue_s:>10.3f}{r.process_s:>10.3f}{r.total_s:>9.3f}"
            f"{fmt(r.rate(r.enqueue_s), ',.0f'):>11}{fmt(r.rate(r.process_s), ',.0f'):>11}"
            f"{fmt(r.rate(r.total_s), ',.0f'):>9}"
        )
    print()
    for r in results:
        print(f"  {r.name}: {r.note}" if r.note else f"  {r.name}")
    ok = [r for r in results if r.ok]
    ours = [r for r in ok if r.name.startswith("Tapeline")]
    theirs = [r for r in ok if not r.name.startswith("Tapeline")]
    if ours and theirs:
        print()
        print("Throughput ratio Tapeline/other (>1: Tapeline faster): total | processing | enqueue")
        for mine in ours:
            for other in theirs:
                print(
                    f"  {mine.name} / {other.name}: "
                    f"{other.total_s / mine.total_s:.2f}x | "
                    f"{other.process_s / mine.process_s:.2f}x | "
                    f"{other.enqueue_s / mine.enqueue_s:.2f}x"
                )


# --- main ----------------------------------------------------------------------------------------


async def run_one(name: str, bench: Callable[[], Awaitable[Result]]) -> Result:
    print(f"running {name} ...", flush=True)
    try:
        result = await bench()
    except Exception as exc:
        print(f"  {name} failed: {type(exc).__name__}: {exc}", flush=True)
        return Result(name, 0, error=f"{type(exc).__name__}: {exc}")
    print(
        f"  {name}: enqueue {result.enqueue_s:.3f}s, process {result.process_s:.3f}s"
        f" ({result.rate(result.process_s):,.0f} jobs/s processed)",
        flush=True,
    )
    return result


def best(runs: list[Result]) -> Result:
    ok = [r for r in runs if r.ok]
    return min(ok, key=lambda r: r.total_s) if ok else runs[0]


async def main_async(args: argparse.Namespace) -> list[Result]:
    admin = normalize_url(args.database_url)
    jobs, concurrency = args.jobs, args.concurrency
    sized = concurrency + 2  # a connection per running job, plus the claim loop and chores

    benches: list[tuple[str, Callable[[], Awaitable[Result]]]] = [
        ("Tapeline", lambda: bench_tapeline(admin, jobs, concurrency, None, "Tapeline")),
    ]
    if not args.no_sized_pool:
        name = f"Tapeline (pool {sized})"
        benches.append((name, lambda: bench_tapeline(admin, jobs, concurrency, sized, name)))
    benches.append(("pgqueuer", lambda: bench_pgqueuer(admin, jobs, concurrency, False)))
    if not args.no_pgqueuer_pool:
        benches.append(("pgqueuer (pool)", lambda: bench_pgqueuer(admin, jobs, concurrency, True)))
    if not args.skip_procrastinate:
        benches.append(("procrastinate", lambda: bench_procrastinate(admin, jobs, concurrency)))

    runs: dict[str, list[Result]] = {name: [] for name, _ in benches}
    try:
        for round_no in range(1, args.rounds + 1):
            if args.rounds > 1:
                print(f"--- round {round_no}/{args.rounds}", flush=True)
            for name, bench in benches:
                runs[name].append(await run_one(name, bench))
    finally:
        if not args.keep:
            for database in SCRATCH_DATABASES:
                with contextlib.suppress(Exception):
                    await drop_database(admin, database)
    return [best(results) for results in runs.values()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=20, help="for every queue")
    parser.add_argument("--rounds", type=int, default=1, help="runs per queue; best is shown")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL") or DEFAULT_URL,
        help="an existing database on the server to use (default: $DATABASE_URL or this)",
    )
    parser.add_argument(
        "--no-sized-pool",
        action="store_true",
        help="skip the extra Tapeline row with a pool of concurrency+2 connections",
    )
    parser.add_argument(
        "--no-pgqueuer-pool",
        action="store_true",
        help="skip the extra pgqueuer row over an asyncpg pool",
    )
    parser.add_argument("--skip-procrastinate", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    args = parser.parse_args()
    if args.jobs < 1 or args.rounds < 1:
        parser.error("--jobs and --rounds must be at least 1")
    if args.concurrency < 2:
        parser.error("--concurrency must be at least 2 (pgqueuer needs twice its batch size)")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # procrastinate warns that an App built in __main__ cannot be found by import path; the
    # worker here runs in this process, so that does not apply.
    logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)
    report(asyncio.run(main_async(args)), args)


if __name__ == "__main__":
    main()
