"""Running claimed jobs: deadline, leases, cancellation, and recording each outcome.

Used by the worker loop and by the API for inline processing, so both leave the same rows.
A job's handler does the work; its outcome (success, retry later, fail now) is written in one
transaction together with the handler's own bookkeeping (the run row and its event).

Two things keep the queue fast when jobs are short: successes that finish while another
success is being written are recorded together in the next transaction, and one task renews
the leases of every running job in one statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service import logs, metrics
from service.config import Settings
from service.errors import JobTimeout, RunCancelled, TapelineError, classify
from service.jobs import queue
from service.jobs.queue import ClaimedJob

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


@dataclass(slots=True)
class _Success:
    job: ClaimedJob
    handler: JobHandler
    result: Any
    written: asyncio.Future[None]


class Executor:
    """Executes claimed jobs for one worker identity."""

    def __init__(
        self,
        db: AsyncEngine,
        settings: Settings,
        handlers: Mapping[str, JobHandler],
        worker_id: str,
        *,
        on_handler_done: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.handlers = handlers
        self.worker_id = worker_id
        self.on_handler_done = on_handler_done
        self._work: dict[int, asyncio.Task[Any]] = {}
        self._reserved: set[int] = set()
        self._held: set[int] = set()
        self._stopped_by_us: set[int] = set()
        self._successes: list[_Success] = []
        self._writer: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None

    @property
    def running_job_ids(self) -> list[int]:
        """Jobs whose lease this executor holds (running, or having their outcome written)."""
        return sorted(self._held)

    @property
    def busy(self) -> int:
        """Handlers working or about to start: what a worker's concurrency limit counts."""
        return len(self._work) + len(self._reserved)

    def reserve(self, job_id: int) -> None:
        """Count a just-claimed job as busy before its `execute` task gets to run."""
        self._reserved.add(job_id)

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
        bound = logs.bind_job(job.id, job.run_id)
        started = time.monotonic()
        log.info("job %s started (%s, attempt %d)", job.id, job.job_type, job.attempts)
        self._held.add(job.id)
        self._ensure_keeper()
        work = asyncio.create_task(handler.run(job), name=f"job-{job.id}")
        self._work[job.id] = work
        self._reserved.discard(job.id)
        work.add_done_callback(lambda _task: self._handler_done(job.id))
        try:
            done, _ = await asyncio.wait({work}, timeout=self.settings.job_timeout_ms / 1000)
            error: TapelineError | None = None
            if not done:
                await self._abandon(work)
                error = JobTimeout()
            elif job.id in self._stopped_by_us:
                return
            elif work.cancelled():
                error = RunCancelled()
            elif (exc := work.exception()) is not None:
                error = classify(exc)
                if not isinstance(exc, TapelineError) or error.code == "internal_error":
                    log.error("job %s failed unexpectedly", job.id, exc_info=exc)
            if error is None:
                await self._record_success(job, handler, work.result())
                outcome: str | None = "succeeded"
            else:
                outcome = await self._record_failure(job, handler, error)
            if outcome is not None:
                engine = str(logs.job_fields().get("engine", job.job_type))
                metrics.job_outcome(engine, outcome, started, error)
                log.info(
                    "job %s %s after %.1fs%s",
                    job.id,
                    outcome,
                    time.monotonic() - started,
                    f" ({error.code}: {error.message})" if error else "",
                )
        except asyncio.CancelledError:
            if not work.done():
                await self._abandon(work)
                await asyncio.shield(self._release(job, handler))
            raise
        finally:
            self._held.discard(job.id)
            self._stopped_by_us.discard(job.id)
            logs.reset(bound)

    def _handler_done(self, job_id: int) -> None:
        self._work.pop(job_id, None)
        if self.on_handler_done is not None:
            self.on_handler_done()

    async def _abandon(self, work: asyncio.Task[Any]) -> None:
        """Cancel the handler and give it a moment to clean up, but never wait on it for ever."""
        work.cancel()
        await asyncio.wait({work}, timeout=RELEASE_TIMEOUT_S)

    # --- leases --------------------------------------------------------------------------------

    def _ensure_keeper(self) -> None:
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.create_task(self._keep_leases(), name="lease-keeper")

    async def _keep_leases(self) -> None:
        """Renew every held lease in one statement; stop jobs that were cancelled or lost."""
        interval = self.settings.job_lease_ms / 3000
        while self._held:
            await asyncio.sleep(interval)
            job_ids = list(self._held)
            if not job_ids:
                return
            try:
                async with self.db.begin() as conn:
                    held = await queue.renew_leases(
                        conn, self.worker_id, job_ids, self.settings.job_lease_ms
                    )
            except Exception:
                log.warning("could not renew leases; will try again", exc_info=True)
                continue
            for job_id in set(job_ids) - held:
                if self.stop_job(job_id):
                    log.info("job %s was cancelled or taken over; stopped it", job_id)

    # --- outcomes ------------------------------------------------------------------------------

    async def _record_success(self, job: ClaimedJob, handler: JobHandler, result: Any) -> None:
        written = asyncio.get_running_loop().create_future()
        self._successes.append(_Success(job, handler, result, written))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_successes(), name="success-writer")
        await asyncio.shield(written)

    async def _write_successes(self) -> None:
        """Write every success waiting, one transaction per batch, until none is left."""
        while self._successes:
            batch, self._successes = self._successes, []
            batch.sort(key=lambda s: s.job.id)
            try:
                await self._write_batch(batch)
            except Exception:
                log.warning("writing %d successes together failed; one by one", len(batch))
                for success in batch:
                    try:
                        await self._write_batch([success])
                    except Exception:
                        log.exception(
                            "could not record job %s; its lease will expire", success.job.id
                        )
            for success in batch:
                if not success.written.done():
                    success.written.set_result(None)

    async def _write_batch(self, batch: list[_Success]) -> None:
        async with self.db.begin() as conn:
            held = await queue.finish_succeeded(conn, [s.job.id for s in batch], self.worker_id)
            for success in batch:
                if success.job.id in held:
                    await success.handler.on_success(conn, success.job, success.result)

    async def _record_failure(
        self, job: ClaimedJob, handler: JobHandler, error: TapelineError
    ) -> str | None:
        """Write the failure; the outcome recorded (cancelled, retried, failed), or None when
        this worker no longer held the job."""
        last_error = f"{error.code}: {error.message}"
        async with self.db.begin() as conn:
            if isinstance(error, RunCancelled):
                if await queue.finish(conn, job.id, self.worker_id, "cancelled", last_error):
                    return "cancelled"
            elif (
                error.transient and (delay := self._retry_delay_ms(job, handler, error)) is not None
            ):
                if await queue.schedule_retry(conn, job.id, self.worker_id, last_error, delay):
                    await handler.on_retry(conn, job, error)
                    return "retried"
            elif await queue.finish(conn, job.id, self.worker_id, "failed", last_error):
                await handler.on_failure(conn, job, error)
                return "failed"
        return None

    def _retry_delay_ms(
        self, job: ClaimedJob, handler: JobHandler, error: TapelineError
    ) -> int | None:
        """When to try a transient failure again, or None to give up: the handler's own
        schedule if it has one (webhooks: WEBHOOK_RETRY_DELAYS), else WORKER_RETRY_DELAYS."""
        if job.last_attempt:
            return None
        schedule = getattr(handler, "retry_delay_ms", None)
        if schedule is None:
            return self.settings.retry_delay_ms(job.attempts)
        delay: int | None = schedule(job, error)
        return delay

    async def _release(self, job: ClaimedJob, handler: JobHandler) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(RELEASE_TIMEOUT_S), self.db.begin() as conn:
                if await queue.release(conn, job.id, self.worker_id):
                    await handler.on_release(conn, job)
