"""Running one claimed job: deadline, lease renewal, cancellation, and recording the outcome.

Used by the worker loop and by the API for inline processing, so both leave the same rows.
A job's handler does the work; the outcome (success, retry later, fail now) is written in one
transaction together with the handler's own bookkeeping (the run row and its event).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service import queue
from service.config import Settings
from service.errors import JobTimeout, RunCancelled, TapelineError, classify
from service.queue import ClaimedJob

log = logging.getLogger(__name__)

RELEASE_TIMEOUT_S = 5.0


class JobHandler(Protocol):
    """What a job type does, and how its own rows follow the job's outcome."""

    async def run(self, job: ClaimedJob) -> Any: ...

    async def on_success(self, conn: AsyncConnection, job: ClaimedJob, result: Any) -> None: ...

    async def on_retry(
        self, conn: AsyncConnection, job: ClaimedJob, error: TapelineError
    ) -> None: ...

    async def on_failure(
        self, conn: AsyncConnection, job: ClaimedJob, error: TapelineError
    ) -> None: ...

    async def on_release(self, conn: AsyncConnection, job: ClaimedJob) -> None: ...


class Executor:
    """Executes claimed jobs for one worker identity."""

    def __init__(
        self,
        db: AsyncEngine,
        settings: Settings,
        handlers: Mapping[str, JobHandler],
        worker_id: str,
    ) -> None:
        self.db = db
        self.settings = settings
        self.handlers = handlers
        self.worker_id = worker_id
        self._work: dict[int, asyncio.Task[Any]] = {}
        self._stopped_by_us: set[int] = set()

    @property
    def running_job_ids(self) -> list[int]:
        return list(self._work)

    def stop_job(self, job_id: int) -> bool:
        """Abandon a job that was cancelled or whose lease was lost; nothing more is written."""
        work = self._work.get(job_id)
        if work is None or work.done():
            return False
        self._stopped_by_us.add(job_id)
        work.cancel()
        return True

    async def execute(self, job: ClaimedJob) -> None:
        handler = self.handlers[job.job_type]
        work = asyncio.create_task(handler.run(job), name=f"job-{job.id}")
        self._work[job.id] = work
        keeper = asyncio.create_task(self._keep_lease(job), name=f"lease-{job.id}")
        try:
            done, _ = await asyncio.wait({work}, timeout=self.settings.job_timeout_ms / 1000)
            if not done:
                await self._abandon(work)
                await self._record_failure(job, handler, JobTimeout())
                return
            if job.id in self._stopped_by_us:
                return
            try:
                result = work.result()
            except asyncio.CancelledError:
                await self._record_failure(job, handler, RunCancelled())
            except Exception as exc:
                error = classify(exc)
                if not isinstance(exc, TapelineError) or error.code == "internal_error":
                    log.exception("job %s failed unexpectedly", job.id, extra={"job_id": job.id})
                await self._record_failure(job, handler, error)
            else:
                await self._record_success(job, handler, result)
        except asyncio.CancelledError:
            await self._abandon(work)
            await asyncio.shield(self._release(job, handler))
            raise
        finally:
            keeper.cancel()
            self._work.pop(job.id, None)
            self._stopped_by_us.discard(job.id)

    async def _abandon(self, work: asyncio.Task[Any]) -> None:
        """Cancel the handler and give it a moment to clean up, but never wait on it for ever."""
        work.cancel()
        await asyncio.wait({work}, timeout=RELEASE_TIMEOUT_S)

    async def _keep_lease(self, job: ClaimedJob) -> None:
        interval = self.settings.job_lease_ms / 3000
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.db.begin() as conn:
                    held = await queue.renew_leases(
                        conn, self.worker_id, [job.id], self.settings.job_lease_ms
                    )
            except Exception:
                log.warning("could not renew the lease of job %s; will try again", job.id)
                continue
            if job.id not in held:
                log.info("job %s was cancelled or taken over; stopping it", job.id)
                self.stop_job(job.id)
                return

    async def _record_success(self, job: ClaimedJob, handler: JobHandler, result: Any) -> None:
        async with self.db.begin() as conn:
            if await queue.finish(conn, job.id, self.worker_id, "succeeded"):
                await handler.on_success(conn, job, result)

    async def _record_failure(
        self, job: ClaimedJob, handler: JobHandler, error: TapelineError
    ) -> None:
        last_error = f"{error.code}: {error.message}"
        async with self.db.begin() as conn:
            if isinstance(error, RunCancelled):
                await queue.finish(conn, job.id, self.worker_id, "cancelled", last_error)
            elif error.transient and not job.last_attempt:
                delay = self.settings.retry_delay_ms(job.attempts)
                if await queue.schedule_retry(conn, job.id, self.worker_id, last_error, delay):
                    await handler.on_retry(conn, job, error)
            elif await queue.finish(conn, job.id, self.worker_id, "failed", last_error):
                await handler.on_failure(conn, job, error)

    async def _release(self, job: ClaimedJob, handler: JobHandler) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(RELEASE_TIMEOUT_S), self.db.begin() as conn:
                if await queue.release(conn, job.id, self.worker_id):
                    await handler.on_release(conn, job)
