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
from service.media import library as audio_library
from service.media import tombstones
from service.media.storage import ensure_free_space
from service.media.uploads import receive_audio
from service.runs import store as runs
from service.runs.formats import MEDIA_TYPES, RENDERERS
from service.runs.representations import decode_cursor, page_json, progress_json, run_json
from service.runs.results import stored_transcript, transcript_so_far
from service.runs.store import ACTIVE_STATUSES
from service.runs.submission import cancel_run, retry_run, submit_run
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


async def create_run(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    body = await json_object(request)
    if "audioId" not in body:
        raise InvalidRequest("`audioId` is required.")
    run = await submit_run(
        request.app.state.ctx,
        principal,
        body_uuid(body["audioId"], "audioId"),
        engine=optional_str(body, "engine"),
        language=optional_str(body, "language"),
        model=optional_str(body, "model"),
        idempotency_key=idempotency_key(request),
        analysis=optional_flag(body, "analysis"),
        prompt=optional_str(body, "prompt"),
        hotwords=optional_str(body, "hotwords"),
    )
    return await _submitted(request.app.state.ctx, run)


async def transcribe(request: Request) -> JSONResponse:
    """Upload and run in one call: multipart `file`, optional `engine`, `language`, `model`,
    `prompt`, `hotwords`."""
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    ensure_free_space(ctx.settings)
    upload = await receive_audio(request, ctx.storage.staging_path(), ctx.settings.max_upload_bytes)
    fields = ("engine", "language", "model", "prompt", "hotwords")
    options = {k: optional_str(upload.fields, k) for k in fields}
    key = idempotency_key(request)
    if key is not None:
        async with ctx.db.connect() as conn:
            earlier = await runs.by_idempotency_key(conn, principal.owner, key)
        if earlier is not None:
            await asyncio.to_thread(upload.path.unlink, missing_ok=True)
            return await _submitted(ctx, earlier)
    analysis = optional_flag(upload.fields, "analysis")
    audio = await audio_library.accept_upload(ctx.db, ctx.storage, principal.owner, upload)
    run = await submit_run(
        ctx, principal, audio["id"], **options, idempotency_key=key, analysis=analysis
    )
    return await _submitted(ctx, run)


async def list_runs(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        raise InvalidRequest(f"`status` must be one of: {', '.join(STATUSES)}.")
    page = limit(request)
    before = decode_cursor(request.query_params.get("cursor"))
    async with ctx.db.connect() as conn:
        rows = await runs.list_for(conn, principal.scope, status=status, before=before, limit=page)
    return JSONResponse(page_json(rows, page, run_json))


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
