"""How rows look in the API and the events: camelCase JSON, ISO timestamps."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from service.database import Row
from service.errors import InvalidRequest, RunCancelled


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _id(value: object) -> str | None:
    """An id as JSON; a run fetching its audio URL has no audio yet."""
    return str(value) if value is not None else None


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
        "audioId": _id(row["audio_id"]),
        "owner": row["owner"],
        "engine": row["engine"],
        "model": row["model"],
        "language": row["language"],
        "prompt": row.get("prompt"),
        "hotwords": row.get("hotwords"),
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
    if row["status"] == "succeeded":
        data["noSpeech"] = no_speech(row["transcript"])
    if row.get("analysis_requested"):
        data["analysis"] = row.get("analysis")
    if row.get("source_url"):
        data["sourceUrl"] = row["source_url"]
    if row.get("webhook_url"):
        data["webhook"] = {"url": row["webhook_url"], "events": list(row["webhook_events"])}
    return data


def progress_json(row: Row) -> dict[str, Any]:
    """The `/progress` shape (also the `init` event of the per-run stream)."""
    now: datetime = row["now"]
    end = row["finished_at"] or now
    elapsed_ms = max(0, int((end - row["created_at"]).total_seconds() * 1000))
    return {
        "runId": str(row["id"]),
        "audioId": _id(row["audio_id"]),
        "status": row["status"],
        "stage": row["stage"],
        "progress": row["progress"],
        "timeElapsed": elapsed_ms,
        "estimatedTimeRemaining": _estimate_s(row, now),
        "audio": {
            "id": _id(row["audio_id"]),
            "filename": row["filename"],
            "durationMs": row["duration_ms"],
            "sizeBytes": row["size_bytes"],
        },
        "jobs": row["jobs"],
        "error": error_json(row),
        **({"waiting": waiting_message(row["waiting_for"])} if row.get("waiting_for") else {}),
    }


def waiting_message(needs: str) -> str:
    """What a queued job that no live worker serves is waiting for, for people."""
    return f"waiting for a worker that serves {needs}"


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


FINAL_EVENTS = {"succeeded": "done", "failed": "error", "cancelled": "error"}
PARTIAL_EVENT = "partial"


def no_speech(transcript: Mapping[str, Any] | None) -> bool:
    """Whether a finished run heard nothing: a recording of silence succeeds, and says so."""
    return not (transcript or {}).get("segments")


def transcript_url(run_id: object) -> str:
    return f"/api/runs/{run_id}/transcript"


def event_data(row: Mapping[Any, Any]) -> tuple[dict[str, Any], bool]:
    """A persisted transition as a stream message, and whether it ends the run.

    `succeeded` is `done` (with the transcript's URL); `failed` and `cancelled` are `error`;
    every other transition (queued, started, stage, retry_scheduled, ...) is an `update`; a
    finished chunk is a `partial` with its place in the recording and its segments.
    """
    payload = row["payload"]
    if row["type"] == PARTIAL_EVENT:
        return partial_data(row["run_id"], row["audio_id"], payload), False
    kind = FINAL_EVENTS.get(row["type"], "update")
    error = None
    if payload.get("errorCode"):
        error = {"code": payload["errorCode"], "message": payload.get("errorMessage") or ""}
    elif row["type"] == "cancelled":
        error = RunCancelled().to_dict()
    data: dict[str, Any] = {
        "event": kind,
        "runId": str(row["run_id"]),
        "audioId": _id(row["audio_id"]),
        "transition": row["type"],
        "status": payload["status"],
        "stage": payload["stage"],
        "progress": payload["progress"],
        "attempts": payload["attempts"],
        "error": error,
    }
    if kind == "done":
        data["transcriptUrl"] = transcript_url(row["run_id"])
    return data, kind != "update"


def partial_data(run_id: object, audio_id: object, partial: Mapping[str, Any]) -> dict[str, Any]:
    """A finished chunk (`Partial.to_json()`) as a `partial` stream message."""
    return {"event": PARTIAL_EVENT, "runId": str(run_id), "audioId": _id(audio_id), **partial}


def tick_data(note: dict[str, Any]) -> dict[str, Any]:
    """A progress tick (NOTIFY only) as an `update` message."""
    return {
        "event": "update",
        "runId": str(note["runId"]),
        "transition": "progress",
        "status": "processing",
        "stage": note["stage"],
        "progress": note["progress"],
        **({"detail": note["detail"]} if note.get("detail") else {}),
    }


def final_event(row: Row) -> dict[str, Any]:
    """A finished run's progress row in the shape of its last transition, for `event_data`."""
    return {
        "run_id": row["id"],
        "audio_id": row["audio_id"],
        "type": row["status"],
        "payload": {
            "status": row["status"],
            "stage": row["stage"],
            "progress": row["progress"],
            "attempts": row["attempts"],
            "errorCode": row["error_code"],
            "errorMessage": row["error_message"],
        },
    }


def page_json(
    rows: Sequence[Row], limit: int, render: Callable[[Row], dict[str, Any]]
) -> dict[str, Any]:
    """A page of a keyset-paginated listing; `nextCursor` is null on the last page."""
    cursor = encode_cursor(rows[-1]) if len(rows) == limit else None
    return {"items": [render(row) for row in rows], "nextCursor": cursor}


def upload_json(row: Row) -> dict[str, Any]:
    """A resumable upload as GET /api/uploads/{id} shows it."""
    return {
        "id": str(row["id"]),
        "owner": row["owner"],
        "status": row["status"],
        "length": row["length"],
        "offset": row["upload_offset"],
        "metadata": row["metadata"],
        "audioId": str(row["audio_id"]) if row["audio_id"] else None,
        "runId": str(row["run_id"]) if row["run_id"] else None,
        "error": error_json(row),
        "createdAt": _iso(row["created_at"]),
        "expiresAt": _iso(row["expires_at"]) if row["status"] == "receiving" else None,
    }
