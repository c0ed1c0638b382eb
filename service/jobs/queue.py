"""The job queue on Postgres: enqueue, claim, lease, finish. Statements live in sql/queries.sql.

A job is claimed with one `FOR UPDATE SKIP LOCKED` statement and carries a lease
(`locked_by`, `locked_until`) that its worker renews; any worker requeues jobs whose lease ran out.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from service.queries import q

JOBS_CHANNEL = "tapeline_jobs"
CANCEL_CHANNEL = "tapeline_cancel"
TRANSCRIBE_LONG = "transcribe_long"
TRANSCRIBE_SYNC = "transcribe_sync"


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: int
    run_id: uuid.UUID | None
    job_type: str
    attempts: int
    max_attempts: int

    @property
    def last_attempt(self) -> bool:
        return self.attempts >= self.max_attempts


async def enqueue(
    conn: AsyncConnection,
    *,
    job_type: str,
    run_id: uuid.UUID | None,
    max_attempts: int,
    priority: int = 0,
    delay_ms: int = 0,
    needs: str | None = None,
) -> int:
    """Queue a job; `needs` (such as `local/base` or `gemini`) limits which workers claim it."""
    params = {
        "run_id": run_id,
        "job_type": job_type,
        "priority": priority,
        "max_attempts": max_attempts,
        "delay_ms": delay_ms,
        "needs": needs,
    }
    return int((await conn.execute(q("enqueue_job"), params)).scalar_one())


async def enqueue_many(
    conn: AsyncConnection, job_types: Sequence[str], *, max_attempts: int = 1, priority: int = 0
) -> int:
    params = {"job_types": list(job_types), "max_attempts": max_attempts, "priority": priority}
    return int((await conn.execute(q("enqueue_jobs_bulk"), params)).scalar_one())


async def claim(
    conn: AsyncConnection,
    worker_id: str,
    job_types: Sequence[str],
    limit: int,
    lease_ms: int,
    serves: Sequence[str] | None = None,
) -> list[ClaimedJob]:
    """Claim due jobs of `job_types`; with `serves`, only those whose needs are in it (or that
    need nothing in particular)."""
    params = {
        "worker_id": worker_id,
        "job_types": list(job_types),
        "limit": limit,
        "lease_ms": lease_ms,
        "serves": None if serves is None else list(serves),
    }
    rows = (await conn.execute(q("claim_jobs"), params)).mappings().all()
    return [ClaimedJob(**row) for row in rows]


async def claim_by_id(
    conn: AsyncConnection, job_id: int, worker_id: str, lease_ms: int
) -> ClaimedJob | None:
    params = {"job_id": job_id, "worker_id": worker_id, "lease_ms": lease_ms}
    row = (await conn.execute(q("claim_job_by_id"), params)).mappings().first()
    return ClaimedJob(**row) if row else None


async def renew_leases(
    conn: AsyncConnection, worker_id: str, job_ids: Sequence[int], lease_ms: int
) -> set[int]:
    """Extend this worker's leases; returns the ids it still holds."""
    params = {"worker_id": worker_id, "job_ids": list(job_ids), "lease_ms": lease_ms}
    return {row[0] for row in (await conn.execute(q("renew_leases"), params)).all()}


async def finish(
    conn: AsyncConnection,
    job_id: int,
    worker_id: str,
    status: Literal["succeeded", "failed", "cancelled"],
    last_error: str | None = None,
) -> bool:
    """Record the outcome; False if this worker no longer held the job."""
    params = {"job_id": job_id, "worker_id": worker_id, "status": status, "last_error": last_error}
    return (await conn.execute(q("finish_job"), params)).first() is not None


async def finish_succeeded(
    conn: AsyncConnection, job_ids: Sequence[int], worker_id: str
) -> set[int]:
    """Record successes in one statement; returns the ids this worker still held."""
    params = {"job_ids": list(job_ids), "worker_id": worker_id}
    return {row[0] for row in (await conn.execute(q("finish_jobs_succeeded"), params)).all()}


async def schedule_retry(
    conn: AsyncConnection, job_id: int, worker_id: str, last_error: str, delay_ms: int
) -> bool:
    params = {
        "job_id": job_id,
        "worker_id": worker_id,
        "last_error": last_error,
        "delay_ms": delay_ms,
    }
    return (await conn.execute(q("schedule_retry"), params)).first() is not None


async def release(conn: AsyncConnection, job_id: int, worker_id: str) -> bool:
    params = {"job_id": job_id, "worker_id": worker_id}
    return (await conn.execute(q("release_job"), params)).first() is not None


@dataclass(frozen=True, slots=True)
class ExpiredJob:
    id: int
    run_id: uuid.UUID | None
    job_type: str
    status: str
    attempts: int


async def reclaim_expired(
    conn: AsyncConnection, last_error: str, limit: int = 100
) -> list[ExpiredJob]:
    params = {"last_error": last_error, "limit": limit}
    rows = (await conn.execute(q("reclaim_expired_jobs"), params)).mappings()
    return [ExpiredJob(**row) for row in rows.all()]


async def cancel_for_run(conn: AsyncConnection, run_id: uuid.UUID) -> list[int]:
    return [row[0] for row in (await conn.execute(q("cancel_run_jobs"), {"run_id": run_id})).all()]


async def depth(conn: AsyncConnection) -> dict[str, int]:
    rows = (await conn.execute(q("queue_depth"))).all()
    return {status: int(count) for status, count in rows}


async def unserved(conn: AsyncConnection) -> dict[str, int]:
    """Queued jobs that no live worker serves, by what they need."""
    rows = (await conn.execute(q("unserved_jobs"))).all()
    return {str(needs): int(count) for needs, count in rows}


async def active_depth(conn: AsyncConnection) -> dict[str, int]:
    """Queued and processing jobs; what a metrics scrape reads every few seconds."""
    rows = (await conn.execute(q("metrics_queue_depth"))).all()
    return {status: int(count) for status, count in rows}
