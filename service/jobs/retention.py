"""Retention and cleanup: expired uploads, old audio bytes, old transcripts.

One pass runs at a time across the cluster: whichever worker takes a Postgres advisory lock
(`try_cleanup_lock`) does it, every CLEANUP_INTERVAL_MS. A pass is idempotent: each blob is
removed before its row, so a pass interrupted half-way leaves rows the next pass finishes, and
deleting a blob that is already gone is not an error.

- Unfinished tus uploads past their expiry (UPLOAD_EXPIRY_HOURS) go with their partial bytes.
- Staging files untouched for STAGING_MAX_AGE_HOURS (a process died mid-upload) go; this part
  is local to the machine, so every worker does it for its own staging area, lock or not.
- Audio older than AUDIO_RETENTION_DAYS loses its bytes; the row stays (`purged_at`) while
  transcripts made from it are kept, and goes once no run refers to it.
- Finished runs older than TRANSCRIPT_RETENTION_DAYS go with their stored transcript, their
  jobs and events.
Each removed audio, run and upload leaves a tombstone, so its 404 says `deleted`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.database import Row
from service.media import tombstones, tus
from service.media.storage import Storage, sweep_staging
from service.queries import q

log = logging.getLogger(__name__)

BATCH = 200
DAY_S = 86_400


@dataclass
class CleanupReport:
    uploads: int = 0
    audio_purged: int = 0
    audio_deleted: int = 0
    runs: int = 0

    @property
    def total(self) -> int:
        return self.uploads + self.audio_purged + self.audio_deleted + self.runs


async def cleanup_once(
    db: AsyncEngine, storage: Storage, settings: Settings
) -> CleanupReport | None:
    """One pass, if this process gets the cluster-wide lock; None if another holds it."""
    async with db.connect() as lock_conn:
        if not (await lock_conn.execute(q("try_cleanup_lock"))).scalar_one():
            return None
        try:
            return await _pass(db, storage, settings)
        finally:
            await lock_conn.execute(q("release_cleanup_lock"))
            await lock_conn.commit()


async def _pass(db: AsyncEngine, storage: Storage, settings: Settings) -> CleanupReport:
    report = CleanupReport()
    while uploads := await _rows(db, "expired_uploads", {}):
        for upload in uploads:
            await tus.discard_upload(db, storage, upload, "expired")
            report.uploads += 1
    if settings.transcript_retention_days is not None:
        params = {"retention_s": settings.transcript_retention_days * DAY_S}
        while runs := await _rows(db, "runs_past_retention", params):
            for run in runs:
                await _delete_run(db, storage, run)
                report.runs += 1
    if settings.audio_retention_days is not None:
        params = {"retention_s": settings.audio_retention_days * DAY_S}
        while audio := await _rows(db, "audio_past_retention", params):
            for row in audio:
                await storage.delete(row["storage_key"])
                async with db.begin() as conn:
                    await conn.execute(q("mark_audio_purged"), {"audio_id": row["id"]})
                report.audio_purged += 1
    while orphans := await _rows(db, "purged_audio_without_runs", {}):
        for row in orphans:
            async with db.begin() as conn:
                await tombstones.record(conn, "audio", row["id"], row["owner"], "retention")
                await conn.execute(q("delete_audio"), {"audio_id": row["id"]})
            report.audio_deleted += 1
    return report


async def _rows(db: AsyncEngine, statement: str, params: Mapping[str, object]) -> list[Row]:
    async with db.connect() as conn:
        result = await conn.execute(q(statement), {**params, "limit": BATCH})
        return list(result.mappings().all())


async def _delete_run(db: AsyncEngine, storage: Storage, run: Row) -> None:
    if run["transcript_key"]:
        await storage.delete(run["transcript_key"])
    async with db.begin() as conn:
        await tombstones.record(conn, "run", run["id"], run["owner"], "retention")
        await conn.execute(q("delete_run"), {"run_id": run["id"]})


async def delete_audio(db: AsyncEngine, storage: Storage, audio: Row) -> None:
    """DELETE /api/audio/{id}: the audio, its runs, their jobs and events, and every blob.

    Rows go first, in one transaction (the user sees it gone at once); blobs after, and a blob
    that cannot be removed now is only logged (it is unreachable and harmless)."""
    params = {"audio_id": audio["id"], "reason": "deleted"}
    async with db.begin() as conn:
        keys = list((await conn.execute(q("audio_transcript_keys"), params)).scalars().all())
        await conn.execute(q("insert_run_tombstones"), params)
        await tombstones.record(conn, "audio", audio["id"], audio["owner"], "deleted")
        await conn.execute(q("delete_audio"), params)
    for key in [audio["storage_key"], *keys]:
        try:
            await storage.delete(key)
        except Exception:
            log.exception("could not remove blob %s of deleted audio %s", key, audio["id"])


class Janitor:
    """Runs `cleanup_once` every CLEANUP_INTERVAL_MS inside a worker process."""

    def __init__(self, db: AsyncEngine, storage: Storage, settings: Settings) -> None:
        self.db = db
        self.storage = storage
        self.settings = settings
        self.id = uuid.uuid4()

    async def run(self) -> None:
        interval = self.settings.cleanup_interval_ms / 1000
        while True:
            try:
                max_age_s = self.settings.staging_max_age_hours * 3600
                swept = await asyncio.to_thread(sweep_staging, self.storage, max_age_s)
                if swept:
                    log.info("cleanup removed %d stale staging files", swept)
                report = await cleanup_once(self.db, self.storage, self.settings)
                if report is not None and report.total:
                    log.info("cleanup removed %s", report)
            except Exception:
                log.exception("cleanup failed; trying again next interval")
            await asyncio.sleep(interval)

    def start(self) -> asyncio.Task[None]:
        return asyncio.create_task(self.run(), name="janitor")


async def stop(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
