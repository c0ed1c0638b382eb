"""A run's transition queues its webhook in the same transaction; a cancel spares deliveries.

No server here: nothing else may claim the jobs this module looks at.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service import tokens
from service.jobs import queue
from service.runs import store, webhooks
from tests.integration.helpers import queue_run


async def test_the_transition_queues_its_webhook_and_a_cancel_spares_deliveries(
    db: AsyncEngine,
) -> None:
    async with db.begin() as conn:
        _, token = await tokens.create(conn, "carl")
    run, _ = await queue_run(db, "carl")
    hook = webhooks.WebhookRequest(
        "https://example.com/h", ("run.started", "run.cancelled"), token["id"]
    )
    async with db.begin() as conn:
        await webhooks.attach(conn, run["id"], hook)
        await store.start(conn, run["id"], attempts=1, stage="uploading", progress=0)
    async with db.begin() as conn:
        await queue.cancel_for_run(conn, run["id"])
        await store.cancel(conn, run["id"])
    async with db.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT m.event_type, j.status FROM webhook_message m"
                " JOIN webhook_job wj ON wj.message_id = m.id JOIN job j ON j.id = wj.job_id"
                " ORDER BY m.created_at"
            )
        )
        assert [tuple(r) for r in rows] == [("run.started", "queued"), ("run.cancelled", "queued")]
        transcribe_job = await conn.execute(
            text("SELECT status FROM job WHERE job_type = 'transcribe_long'")
        )
        assert transcribe_job.scalar_one() == "cancelled"
