"""What users do with runs: submit (queued or inline), cancel, retry."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from service.context import Context
from service.database import Row
from service.engines import job_needs, worker_serves
from service.engines.local import check_run
from service.errors import Conflict, Deleted, InvalidRequest, NotFound
from service.inputs import check_run_options, language_tag
from service.jobs import queue
from service.media import library as audio_library
from service.media import tombstones, tus
from service.media.fetch import DeferToWorker, Fetcher
from service.queries import q
from service.runs import store as runs
from service.runs.analysis import request_analysis, require_analysis
from service.runs.webhooks import WebhookRequest, attach, requested
from service.tokens import Principal

SYNC_PRIORITY = 10
MAX_VOCABULARY_CHARS = 1_000
"""Whisper reads at most about 220 tokens of prompt; longer text would be cut silently."""


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
    audio_id: uuid.UUID | None,
    *,
    audio_url: str | None = None,
    engine: str | None = None,
    language: str | None = None,
    model: str | None = None,
    idempotency_key: str | None = None,
    analysis: bool = False,
    prompt: str | None = None,
    hotwords: str | None = None,
    webhook: WebhookRequest | None = None,
) -> Row:
    """Queue a run for the audio; small audio is processed before this returns.

    `prompt` (context, the spelling of names) and `hotwords` (terms to favour) go to the local
    engine's model. What the engine cannot do (a model not offered, a language an English-only
    model does not know) is refused here, before anything is queued.

    With an `idempotency_key` the owner's earlier run under that key is returned instead of
    a new one, however many retries race.

    An inline job is claimed in the transaction that creates it, so no worker can take it; if
    this process dies, its lease expires and a worker finishes it like any other job.

    With `audio_url` instead of an audio id, the run is queued without audio: the worker
    fetches it first (the `fetching` stage).
    """
    engine = engine or ctx.settings.tapeline_engine
    language = language_tag(language)
    check_run_options(ctx.settings, ctx.engines, engine, model)
    for name, value in (("prompt", prompt), ("hotwords", hotwords)):
        if value is not None and len(value) > MAX_VOCABULARY_CHARS:
            raise InvalidRequest(f"`{name}` may be at most {MAX_VOCABULARY_CHARS} characters.")
    if engine == "local":
        check_run(ctx.settings, language, model)
    needs = job_needs(ctx.settings, engine, model)
    if analysis:
        require_analysis(ctx.settings)
    async with ctx.db.begin() as conn:
        audio = None
        if audio_id is not None:
            audio = await audio_library.get(conn, audio_id, principal.scope)
            if audio is None:
                raise await tombstones.missing(conn, "audio", audio_id, principal.scope)
            if audio["purged_at"] is not None:
                raise Deleted("This audio's recording was removed by the retention policy.")
        fields: dict[str, Any] = {
            "audio_id": audio_id,
            "owner": audio["owner"] if audio is not None else principal.owner,
            "engine": engine,
            "model": model,
            "language": language,
            "prompt": prompt or None,
            "hotwords": hotwords or None,
        }
        if idempotency_key is None:
            created = await runs.create_run(conn, **fields)
        else:
            once = await runs.create_run_once(conn, **fields, idempotency_key=idempotency_key)
            if once is None:
                earlier = await runs.by_idempotency_key(conn, fields["owner"], idempotency_key)
                assert earlier is not None
                return earlier
            created = once
        if analysis:
            await request_analysis(conn, created.run["id"])
        submitted = created.run
        if webhook is not None:
            submitted = await attach(conn, created.run["id"], webhook)
        if audio_url is not None:
            params = {"run_id": created.run["id"], "source_url": audio_url}
            submitted = (await conn.execute(q("set_run_source"), params)).mappings().one()
        inline = (
            audio is not None
            and runs_inline(ctx, audio)
            and needs in worker_serves(ctx.settings, ctx.engines)
        )
        job_id = await queue.enqueue(
            conn,
            job_type=queue.TRANSCRIBE_SYNC if inline else queue.TRANSCRIBE_LONG,
            run_id=created.run["id"],
            max_attempts=ctx.settings.max_attempts,
            priority=SYNC_PRIORITY if inline else 0,
            needs=needs,
        )
        claimed = None
        if inline:
            claimed = await queue.claim_by_id(
                conn, job_id, ctx.executor.worker_id, ctx.settings.job_lease_ms
            )
    if claimed is None:
        return submitted
    await ctx.executor.execute(claimed)
    async with ctx.db.connect() as conn:
        run = await runs.get(conn, created.run["id"], None)
    assert run is not None
    return run


async def submit_url(ctx: Context, principal: Principal, url: str, **options: Any) -> Row:
    """A run of the audio at `url`: fetched here when it says it is at most
    TRANSCRIBE_SYNC_MAX_BYTES (then handled like an upload: inline if short), else queued for a
    worker to fetch in its `fetching` stage."""
    fetcher = Fetcher.from_settings(ctx.settings)
    limit = ctx.settings.transcribe_sync_max_bytes
    try:
        upload = await fetcher.fetch(url, ctx.storage.staging_path(), in_request_limit=limit)
    except DeferToWorker:
        return await submit_run(ctx, principal, None, audio_url=url, **options)
    audio = await audio_library.accept_upload(
        ctx.db,
        ctx.storage,
        principal.owner,
        upload,
        max_duration_ms=ctx.settings.max_audio_duration_ms,
    )
    return await submit_run(ctx, principal, audio["id"], audio_url=url, **options)


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
        run = change.run
        await queue.enqueue(
            conn,
            job_type=queue.TRANSCRIBE_LONG,
            run_id=run_id,
            max_attempts=ctx.settings.max_attempts,
            needs=job_needs(ctx.settings, str(run["engine"]), run["model"]),
        )
        return change.run


async def _visible_run(conn: AsyncConnection, run_id: uuid.UUID, principal: Principal) -> Row:
    run = await runs.get(conn, run_id, principal.scope)
    if run is None:
        raise NotFound("No run with that id exists for you.")
    return run


async def complete_upload(ctx: Context, upload: Row, principal: Principal | None = None) -> Row:
    """A tus upload's last byte is in: it becomes audio and, with autoTranscribe, a queued run.
    The run's webhook (metadata `webhookUrl`, `webhookEvents`, or the token's default) is
    signed with the secret of the token that sent the last byte.
    Idempotent: a completion retried after a failure returns the same audio and run."""
    audio = await tus.assemble(ctx, upload)
    options = tus.upload_options(upload["metadata"])
    run_id = None
    if options["auto_transcribe"]:
        principal = principal or Principal(owner=upload["owner"])
        webhook = upload_webhook(ctx, principal, upload["metadata"])
        run = await submit_run(
            ctx,
            principal,
            audio["id"],
            engine=options["engine"],
            language=options["language"],
            model=options["model"],
            prompt=options.get("prompt"),
            hotwords=options.get("hotwords"),
            idempotency_key=f"tus-upload:{upload['id']}",
            webhook=webhook,
        )
        run_id = run["id"]
    return await tus.mark_completed(ctx.db, upload, audio["id"], run_id)


def upload_webhook(
    ctx: Context, principal: Principal, metadata: dict[str, str]
) -> WebhookRequest | None:
    """The webhook a tus upload's metadata asks for, checked like a submission's."""
    return requested(
        principal,
        metadata.get("webhookUrl"),
        metadata.get("webhookEvents"),
        ctx.settings.webhook_allow_private,
    )
