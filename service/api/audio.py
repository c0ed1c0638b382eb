"""/api/audio: upload, list and read audio files."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from service import audio_library
from service.api.params import limit, path_uuid
from service.auth import authenticate
from service.context import Context
from service.errors import NotFound
from service.representations import audio_json, decode_cursor, page_json
from service.uploads import receive_audio


async def upload_audio(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    upload = await receive_audio(request, ctx.storage.staging_path(), ctx.settings.max_upload_bytes)
    row = await audio_library.accept_upload(ctx.db, ctx.storage, principal.owner, upload)
    return JSONResponse(audio_json(row), status_code=201)


async def list_audio(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    page = limit(request)
    before = decode_cursor(request.query_params.get("cursor"))
    async with ctx.db.connect() as conn:
        rows = await audio_library.list_for(conn, principal.scope, before=before, limit=page)
    return JSONResponse(page_json(rows, page, audio_json))


async def get_audio(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    audio_id = path_uuid(request, "audio_id", "audio")
    async with ctx.db.connect() as conn:
        row = await audio_library.get(conn, audio_id, principal.scope)
    if row is None:
        raise NotFound("No audio with that id exists for you.")
    return JSONResponse(audio_json(row))
