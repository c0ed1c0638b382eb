from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.engines.base import Segment, Transcript
from service.runs.pipeline import checked_transcript
from service.runs.representations import progress_json


def test_engine_output_is_ordered_clamped_and_stripped() -> None:
    raw = Transcript(
        text="",
        language="en",
        segments=[Segment(9_000, 12_000, " late "), Segment(-5, 400, "early"), Segment(1, 2, " ")],
    )
    checked = checked_transcript(raw, duration_ms=10_000)
    assert [(s.start_ms, s.end_ms, s.text) for s in checked.segments] == [
        (0, 400, "early"),
        (9_000, 10_000, "late"),
    ]
    assert checked.text == "early late"


def _progress_row(**changes: object) -> dict[str, object]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    row: dict[str, object] = {
        "id": "r",
        "audio_id": "a",
        "status": "processing",
        "stage": "analyzing",
        "progress": 25,
        "error_code": None,
        "error_message": None,
        "created_at": now - timedelta(seconds=12),
        "started_at": now - timedelta(seconds=10),
        "finished_at": None,
        "now": now,
        "filename": "f.wav",
        "duration_ms": 1,
        "size_bytes": 2,
        "jobs": [],
    }
    row.update(changes)
    return row


def test_remaining_time_is_extrapolated_from_progress() -> None:
    progress = progress_json(_progress_row())
    assert progress["timeElapsed"] == 12_000
    assert progress["estimatedTimeRemaining"] == 30.0


def test_no_estimate_before_there_is_progress_and_zero_when_finished() -> None:
    assert (
        progress_json(_progress_row(status="queued", progress=0))["estimatedTimeRemaining"] is None
    )
    assert progress_json(_progress_row(status="failed"))["estimatedTimeRemaining"] == 0.0
