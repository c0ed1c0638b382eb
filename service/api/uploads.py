"""/api/uploads: the tus 1.0.0 endpoint (thin handlers; the protocol is in service/media/tus.py).

Every answer carries `Tus-Resumable`; errors keep Tapeline's JSON body and codes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from email.utils import format_datetime
from functools import wraps

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.api.params import path_uuid
from service.auth import authenticate
from service.context import Context
from service.database import Row
from service.errors import TapelineError, TusVersionUnsupported, UnsupportedMediaType
from service.media import tus
from service.media.storage import ensure_free_space
from service.runs.representations import upload_json
from service.runs.submission import complete_upload, upload_webhook

OCTET_STREAM = "application/offset+octet-stream"
EXPOSED = (
    "Location, Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires, Tus-Resumable, "
    "Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm, Tapeline-Audio-Id, "
    "Tapeline-Run-Id"
)

Handler = Callable[[Request], Awaitable[Response]]


def tus_endpoint(handler: Handler) -> Handler:
    """Check `Tus-Resumable` and add it to every answer, errors included."""

    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            if request.headers.get("tus-resumable") != tus.TUS_VERSION:
                raise TusVersionUnsupported()
            response = await handler(request)
        except TapelineError as exc:
            response = JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status)
            if isinstance(exc, TusVersionUnsupported):
                response.headers["Tus-Version"] = tus.TUS_VERSION
        response.headers["Tus-Resumable"] = tus.TUS_VERSION
        response.headers["Access-Control-Expose-Headers"] = EXPOSED
        return response

    return endpoint


def _state_headers(upload: Row) -> dict[str, str]:
    headers = {
        "Upload-Offset": str(upload["upload_offset"]),
        "Cache-Control": "no-store",
    }
    if upload["status"] == "receiving":
        headers["Upload-Expires"] = format_datetime(upload["expires_at"], usegmt=True)
    if upload["audio_id"] is not None:
        headers["Tapeline-Audio-Id"] = str(upload["audio_id"])
    if upload["run_id"] is not None:
        headers["Tapeline-Run-Id"] = str(upload["run_id"])
    return headers


async def options(request: Request) -> Response:
    """Discovery: what this server supports (no auth, as tus clients expect)."""
    ctx: Context = request.app.state.ctx
    headers = {
        "Tus-Resumable": tus.TUS_VERSION,
        "Tus-Version": tus.TUS_VERSION,
        "Tus-Extension": tus.EXTENSIONS,
        "Tus-Max-Size": str(ctx.settings.max_upload_bytes),
        "Tus-Checksum-Algorithm": ",".join(tus.CHECKSUM_ALGORITHMS),
        "Access-Control-Expose-Headers": EXPOSED,
    }
    return Response(status_code=204, headers=headers)


def _checked_body_type(request: Request) -> None:
    if request.headers.get("content-type", "").split(";")[0].strip() != OCTET_STREAM:
        raise UnsupportedMediaType(f"Send the bytes as {OCTET_STREAM}.")


@tus_endpoint
async def create(request: Request) -> Response:
    """Creation, and creation-with-upload when the POST carries bytes."""
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    ensure_free_space(ctx.settings, ctx.storage)
    length = tus.parse_length(request.headers.get("upload-length"), "Upload-Length")
    metadata = tus.parse_metadata(request.headers.get("upload-metadata"))
    upload_webhook(ctx, principal, metadata)
    upload = await tus.create(ctx, principal, length, metadata)
    location = f"/api/uploads/{upload['id']}"
    has_body = request.headers.get("content-length", "0") != "0" or (
        "transfer-encoding" in request.headers
    )
    if has_body or length == 0:
        if has_body:
            _checked_body_type(request)
        checksum = tus.parse_checksum(request.headers.get("upload-checksum"))
        upload = await tus.append(ctx, principal, upload["id"], 0, request.stream(), checksum)
        if tus.is_complete(upload):
            upload = await complete_upload(ctx, upload, principal)
    headers = _state_headers(upload)
    headers["Location"] = location
    return Response(status_code=201, headers=headers)


@tus_endpoint
async def head(request: Request) -> Response:
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    upload = await tus.get(ctx.db, principal, path_uuid(request, "upload_id", "upload"))
    headers = _state_headers(upload)
    headers["Upload-Length"] = str(upload["length"])
    if upload["metadata"]:
        headers["Upload-Metadata"] = tus.encode_metadata(upload["metadata"])
    return Response(status_code=200, headers=headers)


@tus_endpoint
async def patch(request: Request) -> Response:
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    _checked_body_type(request)
    ensure_free_space(ctx.settings, ctx.storage)
    upload_id = path_uuid(request, "upload_id", "upload")
    offset = tus.parse_length(request.headers.get("upload-offset"), "Upload-Offset")
    checksum = tus.parse_checksum(request.headers.get("upload-checksum"))
    upload = await tus.append(ctx, principal, upload_id, offset, request.stream(), checksum)
    if tus.is_complete(upload):
        upload = await complete_upload(ctx, upload, principal)
    return Response(status_code=204, headers=_state_headers(upload))


@tus_endpoint
async def terminate(request: Request) -> Response:
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    await tus.terminate(ctx, principal, path_uuid(request, "upload_id", "upload"))
    return Response(status_code=204)


async def get_or_head(request: Request) -> Response:
    """HEAD is the tus offset query; GET is Tapeline's JSON view of the upload."""
    if request.method == "HEAD":
        return await head(request)
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    upload = await tus.get(ctx.db, principal, path_uuid(request, "upload_id", "upload"))
    return JSONResponse(upload_json(upload), headers={"Cache-Control": "no-store"})
