"""A worker process for acceptance tests: the real Worker, with a test engine and a race handler.

    python -m tests.acceptance.worker_process --engine-delay 30

`local` is replaced by an echo engine that takes `--engine-delay` seconds, so a test can kill
the process mid-job; `race_noop` jobs record who ran them in `race_execution`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from service.config import load_settings
from service.context import open_context
from service.errors import TapelineError
from service.jobs.queue import ClaimedJob
from tests.fakes_engines import EchoEngine


class RaceHandler:
    """Records each execution; a job executed twice shows up as two rows."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    async def run(self, job: ClaimedJob) -> None:
        async with self.ctx.db.begin() as conn:
            await conn.execute(
                text("INSERT INTO race_execution (job_id, worker_id) VALUES (:j, :w)"),
                {"j": job.id, "w": self.ctx.worker.id},
            )
        await asyncio.sleep(0.001)

    async def on_success(self, conn: AsyncConnection, job: ClaimedJob, result: Any) -> None: ...

    async def on_retry(self, conn: AsyncConnection, job: ClaimedJob, e: TapelineError) -> None: ...

    async def on_failure(
        self, conn: AsyncConnection, job: ClaimedJob, e: TapelineError
    ) -> None: ...

    async def on_release(self, conn: AsyncConnection, job: ClaimedJob) -> None: ...


async def main(engine_delay: float, concurrency: int, ticks: int) -> None:
    settings = load_settings()
    engine = EchoEngine(delay_s=engine_delay, ticks=ticks)
    async with open_context(settings, engines={"local": engine}) as ctx:
        handlers = dict(ctx.handlers)
        handlers["race_noop"] = RaceHandler(ctx)
        ctx.handlers = handlers
        ctx.worker = ctx.make_worker()
        ctx.worker.concurrency = concurrency
        loop = asyncio.get_running_loop()
        worker = ctx.worker
        loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(worker.stop()))
        print(f"worker {worker.id} ready", flush=True)
        await worker.run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine-delay", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--ticks", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.engine_delay, args.concurrency, args.ticks))
