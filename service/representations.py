"""How rows look in the API and the events: camelCase JSON, ISO timestamps."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Any

from service.errors import InvalidRequest
from service.runs import Row


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def error_json(row: Row) -> dict[str, str] | None:
    if not row["error_code"]:
        return None
    return {"code": row["error_code"], "message": row["error_message"] or ""}


def audio_json(row: Row) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "owner": row["owner"],
        "filename": row["filename"],
        "contentType": row["content_type"],
        "sizeBytes": row["size_bytes"],
        "durationMs": row["duration_ms"],
        "sampleRate": row["sample_rate"],
        "channels": row["channels"],
        "sha256": row["sha256"],
        "createdAt": _iso(row["created_at"]),
    }


def run_json(row: Row, *, with_transcript: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(row["id"]),
        "audioId": str(row["audio_id"]),
        "owner": row["owner"],
        "engine": row["engine"],
        "model": row["model"],
        "language": row["language"],
        "status": row["status"],
        "stage": row["stage"],
        "progress": row["progress"],
        "attempts": row["attempts"],
        "error": error_json(row),
        "createdAt": _iso(row["created_at"]),
        "startedAt": _iso(row["started_at"]),
        "finishedAt": _iso(row["finished_at"]),
    }
    if with_transcript:
        data["transcript"] = row["transcript"]
    return data


def progress_json(row: Row) -> dict[str, Any]:
    """The `/progress` shape (also the `init` event of the per-run stream)."""
    now: datetime = row["now"]
    end = row["finished_at"] or now
    elapsed_ms = max(0, int((end - row["created_at"]).total_seconds() * 1000))
    return {
        "runId": str(row["id"]),
        "audioId": str(row["audio_id"]),
        "status": row["status"],
        "stage": row["stage"],
        "progress": row["progress"],
        "timeElapsed": elapsed_ms,
        "estimatedTimeRemaining": _estimate_s(row, now),
        "audio": {
            "id": str(row["audio_id"]),
            "filename": row["filename"],
            "durationMs": row["duration_ms"],
            "sizeBytes": row["size_bytes"],
        },
        "jobs": row["jobs"],
        "error": error_json(row),
    }


def _estimate_s(row: Row, now: datetime) -> float | None:
    """Seconds left, extrapolated from progress so far; None until there is something to go on."""
    if row["status"] in ("succeeded", "failed", "cancelled"):
        return 0.0
    progress = int(row["progress"])
    if row["status"] != "processing" or row["started_at"] is None or progress <= 0:
        return None
    spent = (now - row["started_at"]).total_seconds()
    return round(float(spent) * (100 - progress) / progress, 1)


def encode_cursor(row: Row) -> str:
    raw = f"{row['created_at'].isoformat()}|{row['id']}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, run_id = raw.split("|", 1)
        return datetime.fromisoformat(created), uuid.UUID(run_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest("The `cursor` parameter is not one this server gave out.") from None
