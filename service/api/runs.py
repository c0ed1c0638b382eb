"""/api/runs and /api/transcribe: submit, list, read, download, cancel, retry."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.api.params import (
    body_uuid,
    idempotency_key,
    is_json,
    json_object,
    limit,
    optional_flag,
    optional_str,
    path_uuid,
)
from service.auth import authenticate
from service.context import Context
from service.database import Row
from service.errors import Conflict, Deleted, InvalidRequest
from service.inputs import check_run_options, language_tag
from service.media import library as audio_library
from service.media import tombstones
from service.media.fetch import Fetcher
from service.media.quotas import ensure_room
from service.media.uploads import declared_length, receive_audio
from service.runs import store as runs
from service.runs import webhooks
from service.runs.formats import MEDIA_TYPES, RENDERERS
from service.runs.representations import decode_cursor, page_json, progress_json, run_json
from service.runs.results import stored_transcript, transcript_so_far
from service.runs.search import MAX_QUERY_CHARS, matches_json, search
from service.runs.store import ACTIVE_STATUSES
from service.runs.submission import cancel_run, retry_run, submit_run, submit_url
from service.runs.webhooks import WebhookRequest
from service.tokens import Principal

STATUSES = ("queued", "processing", "succeeded", "failed", "cancelled")


async def _submitted(ctx: Context, run: Row) -> JSONResponse:
    """200 with a finished run (processed inline), 202 with a run still on its way."""
    if run["status"] in ACTIVE_STATUSES:
        return JSONResponse(run_json(run), status_code=202)
    return JSONResponse(await with_transcript(ctx, run))


async def with_transcript(ctx: Context, run: Row) -> dict[str, Any]:
    """The run's JSON with its transcript, words included: the row keeps segments only, so a
    succeeded run's transcript is read from storage (the row's copy if that is gone)."""
    data = run_json(run, with_transcript=True)
    if run["status"] == "succeeded" and run["transcript_key"] is not None:
        with contextlib.suppress(Deleted):
            data["transcript"] = (await stored_transcript(ctx, run)).to_json()
    return data


def _webhook(ctx: Context, principal: Principal, fields: dict[str, Any]) -> WebhookRequest | None:
    return webhooks.requested(
        principal,
        fields.get("webhookUrl"),
        fields.get("webhookEvents"),
        ctx.settings.webhook_allow_private,
    )


async def create_run(request: Request) -> JSONResponse:
    """A run of an uploaded audio (`audioId`) or of the audio at `audioUrl`."""
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    body = await json_object(request)
    options: dict[str, Any] = {
        **{k: optional_str(body, k) for k in ("engine", "language", "model", "prompt", "hotwords")},
        "idempotency_key": idempotency_key(request),
        "analysis": optional_flag(body, "analysis"),
        "webhook": _webhook(ctx, principal, body),
    }
    if body.get("audioUrl") is not None and "audioId" not in body:
        return await _submitted_url(ctx, principal, body["audioUrl"], "audioUrl", options)
    if "audioId" not in body:
        raise InvalidRequest("`audioId` (or `audioUrl`) is required.")
    run = await submit_run(ctx, principal, body_uuid(body["audioId"], "audioId"), **options)
    return await _submitted(ctx, run)


def _run_options(ctx: Context, fields: dict[str, Any]) -> dict[str, Any]:
    """The run options of a form or a JSON body, checked as `submit_run` will check them."""
    names = ("engine", "model", "prompt", "hotwords")
    options: dict[str, Any] = {k: optional_str(fields, k) for k in names}
    options["language"] = language_tag(optional_str(fields, "language"))
    options["analysis"] = optional_flag(fields, "analysis")
    engine = options["engine"] or ctx.settings.tapeline_engine
    check_run_options(ctx.settings, ctx.engines, engine, options["model"])
    return options


def _form_field_check(ctx: Context) -> Callable[[str, str], None]:
    """Each option as it arrives, so a bad one is refused before the file is read on (the
    model once the form is in: it is checked against the engine, which may come after it)."""

    def check(name: str, value: str) -> None:
        if name in RUN_OPTIONS and name != "model":
            _run_options(ctx, {name: value})

    return check


RUN_OPTIONS = ("engine", "language", "model", "analysis")


async def _submitted_url(
    ctx: Context, principal: Principal, url: object, field: str, options: dict[str, Any]
) -> JSONResponse:
    checked = Fetcher.from_settings(ctx.settings).check(url, field)
    key = options["idempotency_key"]
    if key is not None:
        async with ctx.db.connect() as conn:
            earlier = await runs.by_idempotency_key(conn, principal.owner, key)
        if earlier is not None:
            return await _submitted(ctx, earlier)
    await ensure_room(ctx.db, ctx.settings, ctx.storage, principal.owner, 0)
    return await _submitted(ctx, await submit_url(ctx, principal, checked, **options))


async def transcribe(request: Request) -> JSONResponse:
    """Upload and run in one call: multipart `file`, optional `engine`, `language`, `model`,
    `prompt`, `hotwords`, `webhookUrl`, `webhookEvents`; or JSON `{"url": ...}` with the same
    options, for audio fetched from a URL. A staged file is removed on every way out; only
    accepted audio keeps its bytes."""
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    key = idempotency_key(request)
    if is_json(request):
        body = await json_object(request)
        options = _run_options(ctx, body)
        options["idempotency_key"] = key
        options["webhook"] = _webhook(ctx, principal, body)
        return await _submitted_url(ctx, principal, body.get("url"), "url", options)
    await ensure_room(ctx.db, ctx.settings, ctx.storage, principal.owner, declared_length(request))
    staging = ctx.storage.staging_path()
    try:
        upload = await receive_audio(
            request, staging, ctx.settings.max_upload_bytes, _form_field_check(ctx)
        )
        options = _run_options(ctx, upload.fields)
        webhook = _webhook(ctx, principal, dict(upload.fields))
        if key is not None:
            async with ctx.db.connect() as conn:
                earlier = await runs.by_idempotency_key(conn, principal.owner, key)
            if earlier is not None:
                return await _submitted(ctx, earlier)
        audio = await audio_library.accept_upload(
            ctx.db,
            ctx.storage,
            principal.owner,
            upload,
            max_duration_ms=ctx.settings.max_audio_duration_ms,
        )
    finally:
        await asyncio.to_thread(staging.unlink, missing_ok=True)
    run = await submit_run(
        ctx, principal, audio["id"], **options, idempotency_key=key, webhook=webhook
    )
    return await _submitted(ctx, run)


async def list_webhooks(request: Request) -> JSONResponse:
    """The run's webhook deliveries, each with every attempt."""
    run = await visible_run(request, await authenticate(request))
    ctx: Context = request.app.state.ctx
    async with ctx.db.connect() as conn:
        deliveries = await webhooks.for_run(conn, run["id"])
    return JSONResponse({"items": deliveries})


async def redeliver_webhook(request: Request) -> JSONResponse:
    """Send one delivery again (same `webhook-id`), one attempt."""
    run = await visible_run(request, await authenticate(request))
    ctx: Context = request.app.state.ctx
    async with ctx.db.begin() as conn:
        delivery = await webhooks.redeliver(conn, run["id"], request.path_params["delivery_id"])
    return JSONResponse(delivery, status_code=202)


async def list_runs(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    words = "".join(" " if c < " " else c for c in request.query_params.get("q", "")).strip()
    if words:
        return await search_runs(request, principal, words)
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        raise InvalidRequest(f"`status` must be one of: {', '.join(STATUSES)}.")
    page = limit(request)
    before = decode_cursor(request.query_params.get("cursor"))
    async with ctx.db.connect() as conn:
        rows = await runs.list_for(conn, principal.scope, status=status, before=before, limit=page)
    return JSONResponse(page_json(rows, page, run_json))


async def search_runs(request: Request, principal: Principal, words: str) -> JSONResponse:
    """`?q=`: the caller's finished runs whose transcript holds every word, best match first,
    each with the matching moments (`matches`: startMs, endMs, snippet, highlights)."""
    if len(words) > MAX_QUERY_CHARS:
        raise InvalidRequest(f"`q` must be at most {MAX_QUERY_CHARS} characters.")
    ctx: Context = request.app.state.ctx
    page = limit(request, default=20, maximum=100)
    async with ctx.db.connect() as conn:
        rows = await search(conn, principal.scope, words, page)
    items = [
        {**run_json(row), "filename": row["filename"], "matches": matches_json(row)} for row in rows
    ]
    return JSONResponse({"items": items, "nextCursor": None})


Fetch = Callable[[AsyncConnection, uuid.UUID, str | None], Awaitable[Row | None]]


async def visible_run(request: Request, principal: Principal, fetch: Fetch = runs.get) -> Row:
    """The run named in the path, read with `fetch`, or 404 if the caller may not see it."""
    ctx: Context = request.app.state.ctx
    run_id = path_uuid(request, "run_id", "run")
    async with ctx.db.connect() as conn:
        run = await fetch(conn, run_id, principal.scope)
        if run is None:
            raise await tombstones.missing(conn, "run", run_id, principal.scope)
    return run


async def get_run(request: Request) -> JSONResponse:
    run = await visible_run(request, await authenticate(request))
    return JSONResponse(await with_transcript(request.app.state.ctx, run))


async def get_transcript(request: Request) -> Response:
    """The finished transcript; with `partial=1`, what is finished so far of a run that is not
    done yet. `Transcript-Complete` says which of the two the body is."""
    run = await visible_run(request, await authenticate(request))
    fmt = request.query_params.get("format", "json")
    if fmt not in RENDERERS:
        raise InvalidRequest(f"`format` must be one of: {', '.join(RENDERERS)}.")
    complete = run["status"] == "succeeded" and run["transcript"] is not None
    if complete:
        transcript = await stored_transcript(request.app.state.ctx, run)
    elif optional_flag(dict(request.query_params), "partial"):
        transcript = await transcript_so_far(request.app.state.ctx, run)
    else:
        raise Conflict(
            f"The run is {run['status']}; its transcript exists once it has succeeded. "
            "Ask with partial=1 for what is transcribed so far."
        )
    filename = f"transcript-{run['id']}{'' if complete else '-partial'}.{fmt}"
    headers = {
        "Content-Disposition": f'inline; filename="{filename}"',
        "Transcript-Complete": "true" if complete else "false",
    }
    return Response(RENDERERS[fmt](transcript), media_type=MEDIA_TYPES[fmt], headers=headers)


async def get_progress(request: Request) -> JSONResponse:
    row = await visible_run(request, await authenticate(request), runs.progress)
    return JSONResponse(progress_json(row))


async def cancel(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    run = await cancel_run(request.app.state.ctx, principal, path_uuid(request, "run_id", "run"))
    return JSONResponse(run_json(run))


async def retry(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    run = await retry_run(request.app.state.ctx, principal, path_uuid(request, "run_id", "run"))
    return JSONResponse(run_json(run), status_code=202)
