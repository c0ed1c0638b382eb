"""/api/audio: upload, list and read audio files."""

from __future__ import annotations

import asyncio
import mimetypes
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from service.api.params import is_json, json_object, limit, path_uuid
from service.auth import authenticate
from service.context import Context
from service.database import Row
from service.errors import AudioMissing, Deleted, InvalidRequest, RangeNotSatisfiable
from service.jobs import retention
from service.media import library as audio_library
from service.media import tombstones
from service.media.audio import is_playable
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


MAX_FILENAME_CHARS = 255
# The audio is the user's own bytes served from the page's origin: never let a browser treat
# it as a page or script, whatever it claims to be.
CONTENT_HEADERS = {
    "Cache-Control": "private, no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


def playable_type(row: Row) -> str:
    """The stored type if it is audio or video, else the filename's, else a neutral one."""
    for candidate in (row["content_type"], mimetypes.guess_type(row["filename"])[0]):
        if is_playable(candidate):
            return str(candidate)
    return "application/octet-stream"


def unsatisfiable(range_header: str | None, size: int) -> bool:
    """A `bytes=` range that starts at or past the end (Starlette answers the rest)."""
    if not range_header or not range_header.strip().lower().startswith("bytes="):
        return False
    for part in range_header.split("=", 1)[1].split(","):
        start, _, _end = part.strip().partition("-")
        if start.strip().isdigit() and int(start) < size:
            return False
        if not start.strip() and _end.strip().isdigit() and int(_end) > 0 and size > 0:
            return False
    return True


async def audio_content(request: Request) -> Response:
    """The recording itself, for a player: Range requests answered with 206 (or 416), or a
    redirect to a short-lived URL of the storage backend. `<audio>` cannot send headers, so
    `?access_token=` works here as on the streams (and is redacted from access logs)."""
    row = await visible_audio(request)
    if row["purged_at"] is not None:
        raise Deleted("The audio was removed by the retention policy; its transcripts are kept.")
    ctx: Context = request.app.state.ctx
    media_type = playable_type(row)
    try:
        where = await ctx.storage.playable(row["storage_key"], media_type)
    except FileNotFoundError:
        raise AudioMissing() from None
    if not isinstance(where, Path):
        return RedirectResponse(where, status_code=307, headers={"Cache-Control": "no-store"})
    size = (await asyncio.to_thread(where.stat)).st_size
    if unsatisfiable(request.headers.get("range"), size):
        error = RangeNotSatisfiable()
        return JSONResponse(
            {"error": error.to_dict()},
            status_code=error.http_status,
            headers={"Content-Range": f"bytes */{size}"},
        )
    return FileResponse(
        where,
        media_type=media_type,
        headers=CONTENT_HEADERS,
        filename=row["filename"],
        content_disposition_type="inline",
    )


async def rename_audio(request: Request) -> JSONResponse:
    """`PATCH {filename}`: the name the page and the lists show; bytes and runs stay."""
    principal = await authenticate(request)
    audio_id = path_uuid(request, "audio_id", "audio")
    filename = (await json_object(request)).get("filename")
    if not isinstance(filename, str) or not filename.strip():
        raise InvalidRequest("`filename` must be a non-empty string.")
    filename = filename.strip()
    if len(filename) > MAX_FILENAME_CHARS or any(ord(c) < 32 or c == "\x7f" for c in filename):
        raise InvalidRequest(
            f"`filename` must be at most {MAX_FILENAME_CHARS} characters, "
            "without control characters."
        )
    ctx: Context = request.app.state.ctx
    async with ctx.db.begin() as conn:
        renamed = await audio_library.rename(conn, audio_id, principal.scope, filename)
        if renamed is None:
            raise await tombstones.missing(conn, "audio", audio_id, principal.scope)
    return JSONResponse(audio_json(renamed))
