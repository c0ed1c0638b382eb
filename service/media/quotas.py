"""Per-owner limits on disk: bytes stored (audio plus what open uploads reserve) and open tus
uploads, and the server's free space on the disk the blobs are written to.

A tus upload reserves its whole `Upload-Length` when it is created, so a user cannot hold many
half-finished uploads that together pass the quota. The check and the creation happen under one
advisory lock per owner, so parallel requests cannot all fit at once.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.config import Settings
from service.errors import QuotaExceeded
from service.media.storage import Storage, ensure_free_space
from service.queries import q


async def check_quota(
    conn: AsyncConnection,
    settings: Settings,
    owner: str,
    *,
    incoming_bytes: int = 0,
    new_upload: bool = False,
) -> None:
    """Raise QuotaExceeded if `owner` may not add `incoming_bytes` (or open another upload).
    Inside a transaction, call `lock_quota` first so the answer holds until it commits."""
    usage = (await conn.execute(q("owner_usage"), {"owner": owner})).mappings().one()
    max_bytes = settings.owner_max_stored_bytes
    used = int(usage["stored_bytes"]) + int(usage["reserved_bytes"])
    if max_bytes and used + incoming_bytes > max_bytes:
        raise QuotaExceeded(
            f"Your audio and open uploads hold {used} bytes; this would pass your quota of "
            f"{max_bytes} bytes (OWNER_MAX_STORED_BYTES). Delete audio you no longer need."
        )
    max_uploads = settings.owner_max_open_uploads
    if new_upload and max_uploads and int(usage["open_uploads"]) >= max_uploads:
        raise QuotaExceeded(
            f"You have {usage['open_uploads']} unfinished uploads, the most this server keeps "
            f"open for one owner (OWNER_MAX_OPEN_UPLOADS). Finish or delete one first."
        )


async def lock_quota(conn: AsyncConnection, owner: str) -> None:
    await conn.execute(q("lock_owner_quota"), {"owner": owner})


async def ensure_room(
    db: AsyncEngine, settings: Settings, storage: Storage, owner: str, incoming_bytes: int
) -> None:
    """Before receiving an upload: the disk has its reserve, and the owner its quota (for a
    body of `incoming_bytes`, its declared length, or nothing when it declares none: the
    upload's own size cap bounds what one request can add past the quota)."""
    ensure_free_space(settings, storage)
    async with db.connect() as conn:
        await check_quota(conn, settings, owner, incoming_bytes=incoming_bytes)
