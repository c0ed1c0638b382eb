"""The user's audio files: accepting an upload (probe, store, record) and reading them back."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.cpu import run_cpu
from service.database import Row
from service.errors import AudioUnreadable, RecordingTooLong
from service.media.audio import AudioInfo, is_playable, media_type, probe
from service.media.storage import Storage, audio_key, file_sha256
from service.media.uploads import ReceivedUpload
from service.queries import q


async def _probe(path: Path, size_bytes: int, max_duration_ms: int | None) -> AudioInfo:
    if size_bytes == 0:
        raise AudioUnreadable("The file is empty. Upload a recording with sound in it.")
    return await run_cpu(probe, path, max_duration_ms)


async def accept_upload(
    db: AsyncEngine,
    storage: Storage,
    owner: str,
    upload: ReceivedUpload,
    *,
    max_duration_ms: int | None = None,
) -> Row:
    """Probe the staged file; keep it and record it only if it is readable audio no longer
    than `max_duration_ms`.

    A file whose sha256 matches audio the owner already has returns that audio.
    """
    try:
        info = await _probe(upload.path, upload.size_bytes, max_duration_ms)
        key = audio_key(owner)
        await storage.adopt(upload.path, key)
    finally:
        await asyncio.to_thread(upload.path.unlink, missing_ok=True)
    params = _audio_row(
        owner, upload.filename, upload.content_type, upload.size_bytes, info, upload.sha256, key
    )
    return await _record(db, storage, params)


async def accept_stored(
    db: AsyncEngine,
    storage: Storage,
    owner: str,
    key: str,
    *,
    filename: str,
    content_type: str | None,
    max_duration_ms: int | None = None,
) -> Row:
    """Validate a blob already at `key` (a finished resumable upload) exactly as an upload:
    probed, hashed, deduplicated. An unreadable blob is deleted and AudioUnreadable raised."""
    try:
        async with storage.local_file(key) as path:
            size = (await asyncio.to_thread(path.stat)).st_size
            info = await _probe(path, size, max_duration_ms)
            sha256 = await file_sha256(path)
    except (AudioUnreadable, RecordingTooLong):
        await storage.delete(key)
        raise
    params = _audio_row(owner, filename, content_type, size, info, sha256, key)
    return await _record(db, storage, params)


def _audio_row(
    owner: str,
    filename: str,
    content_type: str | None,
    size_bytes: int,
    info: AudioInfo,
    sha256: str,
    key: str,
) -> dict[str, Any]:
    """The audio row's values. A type the client did not give, or gave as something other than
    audio or video (`application/octet-stream`, say), is the one the probe found, so a player
    is told what it gets."""
    if not is_playable(content_type):
        content_type = media_type(info.container) or content_type
    return {
        "owner": owner,
        "filename": filename,
        "content_type": content_type,
        "size_bytes": size_bytes,
        "duration_ms": info.duration_ms,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "sha256": sha256,
        "storage_key": key,
    }


async def _record(db: AsyncEngine, storage: Storage, params: dict[str, Any]) -> Row:
    """Insert the audio row, or return the owner's audio with the same bytes (the new blob is
    then removed). An advisory lock on (owner, sha256) makes concurrent duplicates one row."""
    try:
        async with db.begin() as conn:
            await conn.execute(q("lock_audio_sha256"), params)
            existing = (await conn.execute(q("find_audio_by_sha256"), params)).mappings().first()
            if existing is None:
                return (await conn.execute(q("insert_audio"), params)).mappings().one()
    except BaseException:
        await storage.delete(params["storage_key"])
        raise
    await storage.delete(params["storage_key"])
    return existing


async def get(conn: AsyncConnection, audio_id: uuid.UUID, owner: str | None) -> Row | None:
    return (
        (await conn.execute(q("get_audio"), {"audio_id": audio_id, "owner": owner}))
        .mappings()
        .first()
    )


async def list_for(
    conn: AsyncConnection,
    owner: str | None,
    *,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Row]:
    params = {
        "owner": owner,
        "before_created": before[0] if before else None,
        "before_id": before[1] if before else None,
        "limit": limit,
    }
    return list((await conn.execute(q("list_audio"), params)).mappings().all())


async def rename(
    conn: AsyncConnection, audio_id: uuid.UUID, owner: str | None, filename: str
) -> Row | None:
    params = {"audio_id": audio_id, "owner": owner, "filename": filename}
    return (await conn.execute(q("rename_audio"), params)).mappings().first()
