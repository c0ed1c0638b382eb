"""The queue statements against a real Postgres: claim, lease, finish, retry, reclaim."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.jobs import queue
from tests.integration.helpers import queue_run

LEASE_MS = 30_000


async def test_enqueue_claim_complete(db: AsyncEngine) -> None:
    run, job_id = await queue_run(db)
    async with db.begin() as conn:
        [job] = await queue.claim(conn, "w1", [queue.TRANSCRIBE_LONG], 5, LEASE_MS)
    assert (job.id, job.run_id, job.attempts) == (job_id, run["id"], 1)
    async with db.begin() as conn:
        assert await queue.claim(conn, "w2", [queue.TRANSCRIBE_LONG], 5, LEASE_MS) == []
        row = (await conn.execute(text("SELECT * FROM job WHERE id = :i"), {"i": job_id})).one()
        assert (row.status, row.locked_by) == ("processing", "w1")
        assert row.locked_until is not None
        assert not await queue.finish(conn, job_id, "w2", "succeeded"), "only the holder finishes"
        assert await queue.finish(conn, job_id, "w1", "succeeded")
        row = (await conn.execute(text("SELECT * FROM job WHERE id = :i"), {"i": job_id})).one()
    assert (row.status, row.locked_by, row.locked_until) == ("succeeded", None, None)


async def test_claim_orders_by_priority_then_due_time_and_skips_future_jobs(
    db: AsyncEngine,
) -> None:
    _, first = await queue_run(db)
    _, second = await queue_run(db)
    async with db.begin() as conn:
        urgent = await queue.enqueue(
            conn, job_type=queue.TRANSCRIBE_LONG, run_id=None, max_attempts=1, priority=5
        )
        await queue.enqueue(
            conn, job_type=queue.TRANSCRIBE_LONG, run_id=None, max_attempts=1, delay_ms=60_000
        )
        jobs = await queue.claim(conn, "w", [queue.TRANSCRIBE_LONG], 10, LEASE_MS)
    assert [j.id for j in jobs] == [urgent, first, second]


async def test_concurrent_claims_never_hand_out_a_job_twice(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        await queue.enqueue_many(conn, ["noop"] * 200)

    async def claimer(name: str) -> list[int]:
        got: list[int] = []
        while True:
            async with db.begin() as conn:
                jobs = await queue.claim(conn, name, ["noop"], 7, LEASE_MS)
            if not jobs:
                return got
            got.extend(j.id for j in jobs)

    results = await asyncio.gather(*(claimer(f"w{i}") for i in range(4)))
    claimed = [job for result in results for job in result]
    assert len(claimed) == 200
    assert len(set(claimed)) == 200


async def test_retry_puts_the_job_back_after_the_delay(db: AsyncEngine) -> None:
    _, job_id = await queue_run(db)
    async with db.begin() as conn:
        [job] = await queue.claim(conn, "w", [queue.TRANSCRIBE_LONG], 1, LEASE_MS)
        assert await queue.schedule_retry(conn, job.id, "w", "upstream_timeout: slow", 400)
        assert await queue.claim(conn, "w", [queue.TRANSCRIBE_LONG], 1, LEASE_MS) == []
    await asyncio.sleep(0.5)
    async with db.begin() as conn:
        [again] = await queue.claim(conn, "w", [queue.TRANSCRIBE_LONG], 1, LEASE_MS)
    assert (again.id, again.attempts) == (job_id, 2)


async def test_expired_leases_are_reclaimed_with_the_attempt_counted(db: AsyncEngine) -> None:
    _, job_id = await queue_run(db, max_attempts=2)
    async with db.begin() as conn:
        await queue.claim(conn, "ghost", [queue.TRANSCRIBE_LONG], 1, 300)
        assert await queue.reclaim_expired(conn, "worker_lost") == [], "lease still valid"
    await asyncio.sleep(0.4)
    async with db.begin() as conn:
        [expired] = await queue.reclaim_expired(conn, "worker_lost")
        assert (expired.id, expired.status, expired.attempts) == (job_id, "queued", 1)
        [_job] = await queue.claim(conn, "ghost", [queue.TRANSCRIBE_LONG], 1, 300)
    await asyncio.sleep(0.4)
    async with db.begin() as conn:
        [expired] = await queue.reclaim_expired(conn, "worker_lost")
    assert (expired.status, expired.attempts) == ("failed", 2), "attempts spent: fail, not loop"


async def test_renewal_tells_a_worker_it_lost_a_cancelled_job(db: AsyncEngine) -> None:
    run, job_id = await queue_run(db)
    async with db.begin() as conn:
        await queue.claim(conn, "w", [queue.TRANSCRIBE_LONG], 1, LEASE_MS)
        assert await queue.renew_leases(conn, "w", [job_id], LEASE_MS) == {job_id}
        assert await queue.cancel_for_run(conn, run["id"]) == [job_id]
        assert await queue.renew_leases(conn, "w", [job_id], LEASE_MS) == set()
