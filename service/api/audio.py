"""/api/audio: upload, list and read audio files."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.api.params import is_json, json_object, limit, path_uuid
from service.auth import authenticate
from service.context import Context
from service.database import Row
from service.jobs import retention
from service.media import library as audio_library
from service.media import tombstones
from service.media.fetch import Fetcher
from service.media.quotas import ensure_room
from service.media.uploads import declared_length, receive_audio
from service.runs.representations import audio_json, decode_cursor, page_json


async def upload_audio(request: Request) -> JSONResponse:
    """A multipart upload, or JSON `{"url": ...}`: the file fetched into storage in this request
    (within FETCH_TIMEOUT_MS and MAX_UPLOAD_BYTES), then probed like an upload."""
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    staging = ctx.storage.staging_path()
    try:
        if is_json(request):
            fetcher = Fetcher.from_settings(ctx.settings)
            url = fetcher.check((await json_object(request)).get("url"))
            await ensure_room(ctx.db, ctx.settings, ctx.storage, principal.owner, 0)
            upload = await fetcher.fetch(url, staging)
        else:
            await ensure_room(
                ctx.db, ctx.settings, ctx.storage, principal.owner, declared_length(request)
            )
            upload = await receive_audio(request, staging, ctx.settings.max_upload_bytes)
        row = await audio_library.accept_upload(
            ctx.db,
            ctx.storage,
            principal.owner,
            upload,
            max_duration_ms=ctx.settings.max_audio_duration_ms,
        )
    finally:
        await asyncio.to_thread(staging.unlink, missing_ok=True)
    return JSONResponse(audio_json(row), status_code=201)


async def list_audio(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    page = limit(request)
    before = decode_cursor(request.query_params.get("cursor"))
    async with ctx.db.connect() as conn:
        rows = await audio_library.list_for(conn, principal.scope, before=before, limit=page)
    return JSONResponse(page_json(rows, page, audio_json))


async def visible_audio(request: Request) -> Row:
    """The `{audio_id}` audio if the caller may see it; else 404 saying deleted or not found."""
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    audio_id = path_uuid(request, "audio_id", "audio")
    async with ctx.db.connect() as conn:
        row = await audio_library.get(conn, audio_id, principal.scope)
        if row is None:
            raise await tombstones.missing(conn, "audio", audio_id, principal.scope)
    return row


async def get_audio(request: Request) -> JSONResponse:
    return JSONResponse(audio_json(await visible_audio(request)))


async def delete_audio(request: Request) -> Response:
    """Remove the audio, its blob, its runs (with their jobs, events and transcripts)."""
    row = await visible_audio(request)
    ctx: Context = request.app.state.ctx
    await retention.delete_audio(ctx.db, ctx.storage, row)
    return Response(status_code=204)
