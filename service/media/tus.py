"""Resumable uploads, tus 1.0.0: core, creation, creation-with-upload, termination, expiration,
checksum. The HTTP side is in `service/api/uploads.py`; this module is the protocol's logic.

An upload's state (length, offset, metadata, the storage backend's append state, expiry) is a
row in `upload`, and its bytes are appended in the storage backend, so any API process can take
the next PATCH. A PATCH holds a short lease on the row (renewed while bytes flow), which keeps
two requests from appending at once; a process that dies simply lets the lease run out.

When the last byte arrives the upload becomes audio exactly like `POST /api/audio` (probed,
hashed, deduplicated), and with `autoTranscribe` a run is queued at once.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import ClientDisconnect

from service.database import Row
from service.errors import (
    ChecksumMismatch,
    Conflict,
    InvalidRequest,
    OffsetMismatch,
    TapelineError,
    UploadExpired,
    UploadLocked,
    UploadTooLarge,
)
from service.inputs import (
    check_run_options,
    clean_filename,
    language_tag,
    printable,
    whole_number,
)
from service.media import library as audio_library
from service.media import quotas, tombstones
from service.media.storage import Storage, audio_key
from service.queries import q
from service.tokens import Principal

if TYPE_CHECKING:
    from service.context import Context

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,termination,expiration,checksum"
CHECKSUM_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "md5": hashlib.md5}
LEASE_S = 60.0
RENEW_EVERY_S = 10.0
METADATA_MAX_BYTES = 4096
TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class Checksum:
    algorithm: str
    digest: bytes

    def matches(self, digest: bytes) -> bool:
        return digest == self.digest


def parse_metadata(header: str | None) -> dict[str, str]:
    """`Upload-Metadata`: comma-separated `key base64value` pairs (the value may be absent)."""
    if not header:
        return {}
    if len(header) > METADATA_MAX_BYTES:
        raise InvalidRequest("Upload-Metadata is too long.")
    metadata: dict[str, str] = {}
    for pair in header.split(","):
        parts = pair.strip().split(" ")
        if not parts[0] or len(parts) > 2:
            raise InvalidRequest("Upload-Metadata must be comma-separated `key base64value` pairs.")
        key = parts[0]
        if key in metadata:
            raise InvalidRequest(f"Upload-Metadata repeats the key {key!r}.")
        try:
            value = base64.b64decode(parts[1], validate=True).decode() if len(parts) == 2 else ""
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidRequest(f"Upload-Metadata value for {key!r} is not base64.") from None
        metadata[printable(key)] = printable(value)
    return metadata


def encode_metadata(metadata: Mapping[str, str]) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" if value else key
        for key, value in metadata.items()
    )


def parse_checksum(header: str | None) -> Checksum | None:
    """`Upload-Checksum: <algorithm> <base64 digest>`; unknown algorithms are a 400."""
    if not header:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise InvalidRequest(
            f"Upload-Checksum algorithm must be one of: {', '.join(CHECKSUM_ALGORITHMS)}."
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise InvalidRequest("Upload-Checksum must carry a base64 digest.") from None
    return Checksum(algorithm, digest)


def parse_length(value: str | None, header: str) -> int:
    number = whole_number(value)
    if number is None:
        raise InvalidRequest(f"{header} must be a non-negative whole number.")
    return number


def upload_options(metadata: Mapping[str, str]) -> dict[str, Any]:
    """What the metadata asks of the finished upload (Uppy and tus-js-client send `filename` or
    `name`, and `filetype` or `type`)."""
    filename = metadata.get("filename") or metadata.get("name") or "audio"
    return {
        "filename": clean_filename(filename),
        "content_type": metadata.get("filetype") or metadata.get("type") or None,
        "language": metadata.get("language") or None,
        "engine": metadata.get("engine") or None,
        "model": metadata.get("model") or None,
        "prompt": metadata.get("prompt") or None,
        "hotwords": metadata.get("hotwords") or None,
        "auto_transcribe": metadata.get("autoTranscribe", "").lower() in TRUE,
    }


async def create(ctx: Context, principal: Principal, length: int, metadata: dict[str, str]) -> Row:
    if length > ctx.settings.max_upload_bytes:
        raise UploadTooLarge(
            f"The file is larger than this server accepts ({ctx.settings.max_upload_bytes} bytes)."
        )
    options = upload_options(metadata)
    language_tag(options["language"])
    if options["engine"] is not None or options["model"] is not None:
        engine = options["engine"] or ctx.settings.tapeline_engine
        check_run_options(ctx.settings, ctx.engines, engine, options["model"])
    params = {
        "owner": principal.owner,
        "length": length,
        "metadata": json.dumps(metadata),
        "storage_key": audio_key(principal.owner),
        "expiry_s": ctx.settings.upload_expiry_hours * 3600,
    }
    async with ctx.db.begin() as conn:
        await quotas.lock_quota(conn, principal.owner)
        await quotas.check_quota(
            conn, ctx.settings, principal.owner, incoming_bytes=length, new_upload=True
        )
        return (await conn.execute(q("insert_upload"), params)).mappings().one()


async def get(db: AsyncEngine, principal: Principal, upload_id: uuid.UUID) -> Row:
    """The caller's upload, or the 404/410 that says why it is not there."""
    async with db.connect() as conn:
        params = {"upload_id": upload_id, "owner": principal.scope}
        row = (await conn.execute(q("get_upload"), params)).mappings().first()
        if row is None:
            raise await tombstones.missing(conn, "upload", upload_id, principal.scope)
    if row["status"] == "expired" or (
        row["status"] == "receiving" and row["expires_at"] <= row["now"]
    ):
        raise UploadExpired()
    return row


async def append(
    ctx: Context,
    principal: Principal,
    upload_id: uuid.UUID,
    offset: int,
    body: AsyncIterator[bytes],
    checksum: Checksum | None,
) -> Row:
    """Append one request's body at `offset`; returns the upload after it (`is_complete` once
    the last byte is in). A dropped connection keeps what arrived, unless a checksum was sent (then
    nothing can be verified and nothing is kept); a checksum mismatch keeps nothing."""
    upload = await get(ctx.db, principal, upload_id)
    if upload["status"] != "receiving":
        raise Conflict("This upload is complete; it accepts no more bytes.")
    if is_complete(upload):
        if offset != upload["upload_offset"]:
            raise OffsetMismatch(
                f"Upload-Offset is {offset} but the upload stands at {upload['upload_offset']}."
            )
        async for chunk in body:
            if chunk:
                raise InvalidRequest("The body goes past Upload-Length.")
        return upload  # every byte is in: the caller finishes the completion an error cut short
    token = uuid.uuid4()
    lease = {"upload_id": upload_id, "token": token, "lease_s": LEASE_S}
    async with ctx.db.begin() as conn:
        locked = (
            (await conn.execute(q("lock_upload"), {**lease, "owner": upload["owner"]}))
            .mappings()
            .first()
        )
    if locked is None:
        upload = await get(ctx.db, principal, upload_id)
        if upload["status"] != "receiving":
            raise Conflict("This upload is complete; it accepts no more bytes.")
        raise UploadLocked()
    try:
        if locked["upload_offset"] != offset:
            raise OffsetMismatch(
                f"Upload-Offset is {offset} but the upload stands at {locked['upload_offset']}."
            )
        state = await _receive(ctx, locked, lease, body, checksum)
    except BaseException:
        with contextlib.suppress(Exception):
            async with ctx.db.begin() as conn:
                await conn.execute(q("release_upload_lock"), lease)
        raise
    new_offset, storage_state = state
    params = {
        **lease,
        "upload_offset": new_offset,
        "storage_state": json.dumps(storage_state),
        "expiry_s": ctx.settings.upload_expiry_hours * 3600,
    }
    async with ctx.db.begin() as conn:
        row = (await conn.execute(q("commit_upload_bytes"), params)).mappings().first()
    if row is None:
        raise Conflict("The upload was terminated or taken over while this request ran.")
    return row


async def _receive(
    ctx: Context,
    upload: Row,
    lease: dict[str, Any],
    body: AsyncIterator[bytes],
    checksum: Checksum | None,
) -> tuple[int, dict[str, Any]]:
    storage: Storage = ctx.storage
    offset = int(upload["upload_offset"])
    room = int(upload["length"]) - offset
    digest = CHECKSUM_ALGORITHMS[checksum.algorithm]() if checksum else None
    appender = await storage.append(upload["storage_key"], upload["storage_state"], offset)
    received = 0
    renewed = time.monotonic()
    try:
        try:
            async for chunk in body:
                received += len(chunk)
                if received > room:
                    raise InvalidRequest("The body goes past Upload-Length.")
                if digest is not None:
                    digest.update(chunk)
                await appender.write(chunk)
                if time.monotonic() - renewed > RENEW_EVERY_S:
                    renewed = time.monotonic()
                    async with ctx.db.begin() as conn:
                        if (await conn.execute(q("renew_upload_lock"), lease)).first() is None:
                            raise Conflict("The upload was terminated while this request ran.")
        except ClientDisconnect:
            if checksum is not None:
                raise
        if checksum is not None and digest is not None and not checksum.matches(digest.digest()):
            raise ChecksumMismatch()
    except BaseException:
        await appender.rollback()
        raise
    return offset + received, await appender.commit()


def is_complete(upload: Row) -> bool:
    """Whether the last byte is in: then `runs.submission.complete_upload` makes it audio."""
    return bool(upload["status"] == "receiving" and upload["upload_offset"] == upload["length"])


async def assemble(ctx: Context, upload: Row) -> Row:
    """The last byte is in: assemble the blob and validate it as audio, like `POST /api/audio`.

    The audio is recorded on the upload at once, so a completion retried after a later step
    failed (the run's submission) returns that audio instead of assembling again."""
    if upload["audio_id"] is not None:
        async with ctx.db.connect() as conn:
            existing = await audio_library.get(conn, upload["audio_id"], upload["owner"])
        if existing is not None:
            return existing
    options = upload_options(upload["metadata"])
    await ctx.storage.finish_append(upload["storage_key"], upload["storage_state"])
    try:
        audio = await audio_library.accept_stored(
            ctx.db,
            ctx.storage,
            upload["owner"],
            upload["storage_key"],
            filename=options["filename"],
            content_type=options["content_type"],
            max_duration_ms=ctx.settings.max_audio_duration_ms,
        )
    except TapelineError as error:
        await _finish(ctx.db, upload, "failed", error=error)
        raise
    async with ctx.db.begin() as conn:
        await conn.execute(
            q("set_upload_audio"), {"upload_id": upload["id"], "audio_id": audio["id"]}
        )
    return audio


async def mark_completed(
    db: AsyncEngine, upload: Row, audio_id: uuid.UUID, run_id: uuid.UUID | None
) -> Row:
    """The upload became `audio_id` (and, with autoTranscribe, started `run_id`)."""
    return await _finish(db, upload, "completed", audio_id=audio_id, run_id=run_id)


async def _finish(
    db: AsyncEngine,
    upload: Row,
    status: str,
    *,
    audio_id: uuid.UUID | None = None,
    run_id: uuid.UUID | None = None,
    error: TapelineError | None = None,
) -> Row:
    params = {
        "upload_id": upload["id"],
        "status": status,
        "audio_id": audio_id,
        "run_id": run_id,
        "error_code": error.code if error else None,
        "error_message": error.message if error else None,
    }
    async with db.begin() as conn:
        return (await conn.execute(q("finish_upload"), params)).mappings().one()


async def terminate(ctx: Context, principal: Principal, upload_id: uuid.UUID) -> None:
    """tus termination: the upload's row and partial bytes go; later requests get 404 deleted.
    A finished upload's audio stays (delete it with DELETE /api/audio/{id})."""
    upload = await get(ctx.db, principal, upload_id)
    await discard_upload(ctx.db, ctx.storage, upload, "terminated")


async def discard_upload(db: AsyncEngine, storage: Storage, upload: Row, reason: str) -> None:
    """Remove an upload and its partial bytes, leaving a tombstone (also used by cleanup)."""
    async with db.begin() as conn:
        gone = (await conn.execute(q("delete_upload"), {"upload_id": upload["id"]})).first()
        if gone is None:
            return
        await tombstones.record(conn, "upload", upload["id"], upload["owner"], reason)
    if upload["status"] == "receiving":
        await storage.abort_append(upload["storage_key"], upload["storage_state"])
