"""The worker loop: claim due jobs up to MAX_CONCURRENT_JOBS, run them, keep the queue healthy.

Wakes on NOTIFY `tapeline_jobs` (polling every POLL_INTERVAL_MS is only the fallback), requeues
jobs whose lease expired, heartbeats its `worker` row, and on stop finishes or releases its jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from service import metrics
from service.config import Settings
from service.errors import WorkerLost
from service.jobs import queue
from service.jobs.execution import Executor, JobHandler
from service.jobs.retention import Janitor
from service.jobs.retention import stop as stop_janitor
from service.listener import Listener
from service.queries import q

log = logging.getLogger(__name__)


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(
        self,
        db: AsyncEngine,
        dsn: str,
        settings: Settings,
        handlers: Mapping[str, JobHandler],
        *,
        worker_id: str | None = None,
        concurrency: int | None = None,
        serves: Sequence[str] | None = None,
    ) -> None:
        self.db = db
        self.serves = None if serves is None else list(serves)
        """What this worker claims (`local/base`, `gemini`, …); None claims every job."""
        self.settings = settings
        self.handlers = handlers
        self.id = worker_id or new_worker_id()
        self.concurrency = concurrency or settings.max_concurrent_jobs
        self._wake = asyncio.Event()
        self.executor = Executor(db, settings, handlers, self.id, on_handler_done=self._wake.set)
        self.listener = Listener(
            dsn,
            {queue.JOBS_CHANNEL: self._on_job_notify, queue.CANCEL_CHANNEL: self._on_cancel},
        )
        self.state = "stopped"
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._main: asyncio.Task[None] | None = None
        self.janitor: Janitor | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Run the loop in the background (used when the API hosts a worker)."""
        if self._main is None or self._main.done():
            self._stopping.clear()
            self._main = asyncio.create_task(self.run(), name=f"worker-{self.id}")

    async def stop(self, grace_ms: int | None = None) -> None:
        """Stop claiming, let running jobs finish within the grace period, release the rest."""
        self._stopping.set()
        self._wake.set()
        if self._main is not None:
            grace = self.settings.worker_shutdown_grace_ms if grace_ms is None else grace_ms
            done, _ = await asyncio.wait({self._main}, timeout=grace / 1000 + 10)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("worker %s stopped with an error", self.id, exc_info=task.exception())
            if not done:
                log.error("worker %s did not stop in time; cancelling it", self.id)
                self._main.cancel()
                await asyncio.wait({self._main}, timeout=5)
            self._main = None

    @property
    def running(self) -> bool:
        return self._main is not None and not self._main.done()

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "concurrency": self.concurrency,
            "currentJobs": self.executor.running_job_ids,
            "listening": self.listener.alive,
            "serves": self.serves,
        }

    async def run(self) -> None:
        """Work until `stop()` is called."""
        self.state = "running"
        await self._heartbeat()
        await self.listener.start()
        chores = asyncio.create_task(self._chores(), name=f"chores-{self.id}")
        cleanup = self.janitor.start() if self.janitor is not None else None
        try:
            await self._claim_loop()
            await self._drain()
        finally:
            chores.cancel()
            await stop_janitor(cleanup)
            await self.listener.stop()
            self.state = "stopped"
            with contextlib.suppress(Exception):
                await self._heartbeat()

    # --- the loop ------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        poll_s = self.settings.poll_interval_ms / 1000
        job_types = list(self.handlers)
        while not self._stopping.is_set():
            self._wake.clear()
            free = self._free_slots()
            claimed = []
            if free > 0:
                try:
                    async with self.db.begin() as conn:
                        claimed = await queue.claim(
                            conn,
                            self.id,
                            job_types,
                            free,
                            self.settings.job_lease_ms,
                            self.serves,
                        )
                except Exception:
                    log.exception("claiming jobs failed; retrying after the poll interval")
                for job in claimed:
                    self.executor.reserve(job.id)
                    task = asyncio.create_task(self.executor.execute(job), name=f"execute-{job.id}")
                    self._tasks.add(task)
                    task.add_done_callback(self._job_done)
            if claimed and len(claimed) == free:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll_s)

    def _free_slots(self) -> int:
        """Slots free for new jobs: a slot frees when its handler returns, while the outcome
        is still being written, but never more than `concurrency` jobs wait on their writes."""
        running = self.concurrency - self.executor.busy
        writing = 2 * self.concurrency - len(self._tasks)
        return max(0, min(running, writing))

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("job task crashed", exc_info=task.exception())
        self._wake.set()

    async def _drain(self) -> None:
        self.state = "stopping"
        with contextlib.suppress(Exception):
            await self._heartbeat()
        if self._tasks:
            grace = self.settings.worker_shutdown_grace_ms / 1000
            await asyncio.wait(set(self._tasks), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)

    # --- chores: heartbeat and lease expiry -------------------------------------------------------

    async def _chores(self) -> None:
        interval = min(self.settings.poll_interval_ms, self.settings.job_lease_ms // 3) / 1000
        while True:
            try:
                await self._heartbeat()
                await self.reclaim_expired()
            except Exception:
                log.exception("worker chores failed; retrying")
            await asyncio.sleep(interval)

    async def reclaim_expired(self) -> int:
        """Requeue jobs of workers that stopped renewing their lease (SIGKILL, lost pod).

        One job per transaction, so locks are always taken job row, then run row, then the
        event-order lock, as in every other transaction: no deadlocks.
        """
        error = WorkerLost()
        reclaimed = 0
        while True:
            async with self.db.begin() as conn:
                expired = await queue.reclaim_expired(conn, f"{error.code}: {error.message}", 1)
                for job in expired:
                    handler = self.handlers.get(job.job_type)
                    if handler is None:
                        continue
                    claimed = queue.ClaimedJob(job.id, job.run_id, job.job_type, job.attempts, 0)
                    if job.status == "failed":
                        await handler.on_failure(conn, claimed, error)
                    else:
                        await handler.on_retry(conn, claimed, error)
                    metrics.job_reclaimed(error, failed=job.status == "failed")
            if not expired:
                break
            reclaimed += 1
        if reclaimed:
            log.warning("requeued %d job(s) whose worker stopped responding", reclaimed)
            self._wake.set()
        return reclaimed

    async def _heartbeat(self) -> None:
        params = {
            "worker_id": self.id,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "state": self.state,
            "concurrency": self.concurrency,
            "job_ids": self.executor.running_job_ids,
            "serves": self.serves,
        }
        async with self.db.begin() as conn:
            await conn.execute(q("worker_heartbeat"), params)

    # --- notifications -------------------------------------------------------------------------

    def _on_job_notify(self, _payload: str) -> None:
        self._wake.set()

    def _on_cancel(self, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self.executor.stop_job(int(payload))
