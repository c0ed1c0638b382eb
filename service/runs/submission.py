"""What users do with runs: submit (queued or inline), cancel, retry."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from service.context import Context
from service.database import Row
from service.errors import Conflict, Deleted, EngineNotConfigured, NotFound
from service.jobs import queue
from service.media import library as audio_library
from service.media import tombstones, tus
from service.runs import store as runs
from service.runs.analysis import request_analysis, require_analysis
from service.tokens import Principal

SYNC_PRIORITY = 10


def runs_inline(ctx: Context, audio: Row) -> bool:
    """Small audio is transcribed in the request (everything, with TASKS_INLINE_PROCESSING)."""
    s = ctx.settings
    small = (
        audio["size_bytes"] <= s.transcribe_sync_max_bytes
        and audio["duration_ms"] <= s.transcribe_sync_max_duration_ms
    )
    return s.tasks_inline_processing or small


async def submit_run(
    ctx: Context,
    principal: Principal,
    audio_id: uuid.UUID,
    *,
    engine: str | None = None,
    language: str | None = None,
    model: str | None = None,
    idempotency_key: str | None = None,
    analysis: bool = False,
    prompt: str | None = None,
) -> Row:
    """Queue a run for the audio; small audio is processed before this returns.

    With an `idempotency_key` the owner's earlier run under that key is returned instead of
    a new one, however many retries race.

    An inline job is claimed in the transaction that creates it, so no worker can take it; if
    this process dies, its lease expires and a worker finishes it like any other job.
    """
    engine = engine or ctx.settings.tapeline_engine
    if engine not in ctx.engines:
        raise EngineNotConfigured(
            f"The engine {engine!r} is not available here. Available: {', '.join(ctx.engines)}."
        )
    if analysis:
        require_analysis(ctx.settings)
    async with ctx.db.begin() as conn:
        audio = await audio_library.get(conn, audio_id, principal.scope)
        if audio is None:
            raise await tombstones.missing(conn, "audio", audio_id, principal.scope)
        if audio["purged_at"] is not None:
            raise Deleted("This audio's recording was removed by the retention policy.")
        fields: dict[str, Any] = {
            "audio_id": audio_id,
            "owner": audio["owner"],
            "engine": engine,
            "model": model,
            "language": language,
            "prompt": prompt,
        }
        if idempotency_key is None:
            created = await runs.create_run(conn, **fields)
        else:
            once = await runs.create_run_once(conn, **fields, idempotency_key=idempotency_key)
            if once is None:
                earlier = await runs.by_idempotency_key(conn, audio["owner"], idempotency_key)
                assert earlier is not None
                return earlier
            created = once
        if analysis:
            await request_analysis(conn, created.run["id"])
        inline = runs_inline(ctx, audio)
        job_id = await queue.enqueue(
            conn,
            job_type=queue.TRANSCRIBE_SYNC if inline else queue.TRANSCRIBE_LONG,
            run_id=created.run["id"],
            max_attempts=ctx.settings.max_attempts,
            priority=SYNC_PRIORITY if inline else 0,
        )
        claimed = None
        if inline:
            claimed = await queue.claim_by_id(
                conn, job_id, ctx.executor.worker_id, ctx.settings.job_lease_ms
            )
    if claimed is None:
        return created.run
    await ctx.executor.execute(claimed)
    async with ctx.db.connect() as conn:
        run = await runs.get(conn, created.run["id"], None)
    assert run is not None
    return run


async def cancel_run(ctx: Context, principal: Principal, run_id: uuid.UUID) -> Row:
    """Cancel the run and its jobs; jobs first, like every transaction (job, run, event)."""
    async with ctx.db.begin() as conn:
        await _visible_run(conn, run_id, principal)
        await queue.cancel_for_run(conn, run_id)
        change = await runs.cancel(conn, run_id)
        if change is None:
            raise Conflict("The run has already finished, so it cannot be cancelled.")
        return change.run


async def retry_run(ctx: Context, principal: Principal, run_id: uuid.UUID) -> Row:
    async with ctx.db.begin() as conn:
        await _visible_run(conn, run_id, principal)
        change = await runs.reset(conn, run_id)
        if change is None:
            raise Conflict("Only a failed or cancelled run can be retried.")
        await queue.enqueue(
            conn,
            job_type=queue.TRANSCRIBE_LONG,
            run_id=run_id,
            max_attempts=ctx.settings.max_attempts,
        )
        return change.run


async def _visible_run(conn: AsyncConnection, run_id: uuid.UUID, principal: Principal) -> Row:
    run = await runs.get(conn, run_id, principal.scope)
    if run is None:
        raise NotFound("No run with that id exists for you.")
    return run


async def complete_upload(ctx: Context, upload: Row) -> Row:
    """A tus upload's last byte is in: it becomes audio and, with autoTranscribe, a queued run."""
    audio = await tus.assemble(ctx, upload)
    options = tus.upload_options(upload["metadata"])
    run_id = None
    if options["auto_transcribe"]:
        run = await submit_run(
            ctx,
            Principal(owner=upload["owner"]),
            audio["id"],
            engine=options["engine"],
            language=options["language"],
            model=options["model"],
        )
        run_id = run["id"]
    return await tus.mark_completed(ctx.db, upload, audio["id"], run_id)
