"""The user's audio files: accepting an upload (probe, store, record) and reading them back."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.audio import probe
from service.cpu import run_cpu
from service.errors import AudioUnreadable
from service.queries import q
from service.runs import Row
from service.storage import Storage, audio_key
from service.uploads import ReceivedUpload


async def accept_upload(
    db: AsyncEngine, storage: Storage, owner: str, upload: ReceivedUpload
) -> Row:
    """Probe the staged file; keep it and record it only if it is readable audio."""
    try:
        if upload.size_bytes == 0:
            raise AudioUnreadable("The file is empty. Upload a recording with sound in it.")
        info = await run_cpu(probe, upload.path)
        key = audio_key(owner)
        await storage.adopt(upload.path, key)
    finally:
        upload.path.unlink(missing_ok=True)
    params: dict[str, Any] = {
        "owner": owner,
        "filename": upload.filename,
        "content_type": upload.content_type,
        "size_bytes": upload.size_bytes,
        "duration_ms": info.duration_ms,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "sha256": upload.sha256,
        "storage_key": key,
    }
    try:
        async with db.begin() as conn:
            return (await conn.execute(q("insert_audio"), params)).mappings().one()
    except BaseException:
        await storage.delete(key)
        raise


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
