"""The gemini engine with the real google-genai SDK against the fake Gemini server."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.engines.base import EngineOptions
from service.engines.gemini import GeminiEngine
from service.jobs import queue
from service.runs import store as runs
from tests.fakes import Fakes, FaultKind, transcript_json
from tests.fakes_engines import RecordingReporter
from tests.integration.cloud import cloud_settings, queue_audio_run, spoken, until_final, worker_on
from tests.integration.helpers import run_state


def analysis_or_transcript(body: dict[str, Any]) -> str:
    """Transcripts for requests carrying a file, an analysis for the others."""
    parts = [p for c in body.get("contents", []) for p in c.get("parts", [])]
    if any("fileData" in p or "file_data" in p for p in parts):
        return transcript_json()
    return json.dumps(
        {
            "title": "A fake meeting",
            "summary": "Two people greet each other.",
            "speaker_turns": [
                {"speaker": "A", "start_ms": 0, "end_ms": 1800},
                {"speaker": "B", "start_ms": 1800, "end_ms": 3500},
            ],
        }
    )


async def test_a_run_on_gemini_uploads_waits_generates_and_deletes_its_file(
    db: AsyncEngine, settings: Settings, fakes: Fakes, speech_dir: Path
) -> None:
    fakes.gemini.file_lifecycle(processing_polls=2)
    async with worker_on(cloud_settings(settings, fakes)) as ctx:
        run = await queue_audio_run(ctx, spoken(speech_dir, 8), "gemini")
        done = await until_final(db, run["id"])
    assert done["status"] == "succeeded", done["error_message"]
    assert done["transcript"]["segments"] == [
        {"start_ms": 0, "end_ms": 1800, "text": "Hello from the fake Gemini.", "speaker": "A"},
        {"start_ms": 1800, "end_ms": 3500, "text": "This is the second line.", "speaker": "B"},
    ]
    (file,) = fakes.gemini.uploaded
    assert file.mime_type == "audio/mpeg" and file.gets == 3
    assert fakes.gemini.deleted == [file.name] and fakes.gemini.live_files == []
    (generate,) = fakes.gemini.generate_requests
    config = generate.json["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert "segments" in json.dumps(config)


async def test_long_audio_goes_in_concurrent_chunks_and_every_file_is_deleted(
    settings: Settings, fakes: Fakes, speech_dir: Path
) -> None:
    fakes.gemini.delay(lambda request: 0.3 if "generateContent" in request.path else 0)
    engine = GeminiEngine(cloud_settings(settings, fakes, gemini_chunk_ms=10_000))
    ticks = RecordingReporter()
    started = time.monotonic()
    transcript = await engine.transcribe(spoken(speech_dir, 40), EngineOptions(), ticks)
    took = time.monotonic() - started
    chunks = len(fakes.gemini.uploaded)
    assert chunks >= 4 and len(fakes.gemini.generate_requests) == chunks
    assert fakes.gemini.live_files == []
    assert len(transcript.segments) == 2 * chunks
    starts = [s.start_ms for s in transcript.segments]
    assert starts == sorted(starts) and starts[-1] > 25_000
    assert ticks.fractions[-1] == 1.0
    assert took < 0.3 * chunks + 5


async def test_the_run_asks_for_analysis_and_gets_it_stored_and_in_its_events(
    db: AsyncEngine, settings: Settings, fakes: Fakes, speech_dir: Path
) -> None:
    fakes.gemini.respond_with(analysis_or_transcript)
    async with worker_on(cloud_settings(settings, fakes)) as ctx:
        run = await queue_audio_run(ctx, spoken(speech_dir, 8), "gemini", analysis=True)
        done = await until_final(db, run["id"])
    assert done["status"] == "succeeded", done["error_message"]
    assert done["analysis"]["title"] == "A fake meeting"
    assert [t["speaker"] for t in done["analysis"]["speaker_turns"]] == ["A", "B"]
    async with db.connect() as conn:
        from sqlalchemy import text

        payload = (
            await conn.execute(
                text("SELECT payload FROM run_event WHERE run_id = :r AND type = 'succeeded'"),
                {"r": run["id"]},
            )
        ).scalar_one()
    assert payload["analysis"]["summary"] == "Two people greet each other."


async def test_cancelling_a_run_mid_generation_still_deletes_the_remote_file(
    db: AsyncEngine, settings: Settings, fakes: Fakes, speech_dir: Path
) -> None:
    fakes.gemini.fail(FaultKind.HANG, times=None, path_contains=":generateContent")
    tuned = cloud_settings(
        settings, fakes, gemini_generate_timeout_ms=60_000, job_timeout_ms=60_000
    )
    async with worker_on(tuned) as ctx:
        run = await queue_audio_run(ctx, spoken(speech_dir, 8), "gemini")
        deadline = time.monotonic() + 20
        while not fakes.gemini.generate_requests:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert len(fakes.gemini.live_files) == 1
        async with db.begin() as conn:
            await queue.cancel_for_run(conn, run["id"])
            await runs.cancel(conn, run["id"])
        while fakes.gemini.live_files:
            assert time.monotonic() < deadline, "the remote file was not deleted"
            await asyncio.sleep(0.05)
    assert (await run_state(db, run["id"]))["status"] == "cancelled"
