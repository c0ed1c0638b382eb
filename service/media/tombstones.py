"""What was deleted: a 404 says `deleted` for things that existed, `not_found` for the rest."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncConnection

from service.errors import Deleted, NotFound, TapelineError, UploadExpired
from service.queries import q

REASONS = {
    "deleted": "deleted by its owner",
    "terminated": "terminated by its owner",
    "retention": "removed by the retention policy",
}


async def record(conn: AsyncConnection, kind: str, id_: uuid.UUID, owner: str, reason: str) -> None:
    await conn.execute(
        q("insert_tombstone"), {"id": id_, "kind": kind, "owner": owner, "reason": reason}
    )


async def missing(
    conn: AsyncConnection, kind: str, id_: uuid.UUID, owner: str | None
) -> TapelineError:
    """The error for an id the caller cannot find: deleted (and why), expired, or never there."""
    params = {"id": id_, "kind": kind, "owner": owner}
    row = (await conn.execute(q("get_tombstone"), params)).mappings().first()
    if row is None:
        return NotFound(f"No {kind} with that id exists for you.")
    if row["reason"] == "expired":
        return UploadExpired()
    when = row["deleted_at"].isoformat(timespec="seconds")
    why = REASONS.get(row["reason"], row["reason"])
    return Deleted(f"That {kind} was {why} at {when}.")
