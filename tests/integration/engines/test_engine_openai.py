"""The openai engine with the real openai SDK against the fake OpenAI server."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.engines import available_engines
from service.engines.base import EngineOptions
from service.engines.openai import OpenAIEngine
from service.engines.splitting import BIT_RATE
from service.runs import store as runs
from tests.fakes import Fakes, OpenAISegment, Transcription, TranscriptionCall
from tests.fakes_engines import RecordingReporter
from tests.integration.cloud import cloud_settings, queue_audio_run, spoken, until_final, worker_on

MAX_REQUEST_BYTES = 25 * 1024 * 1024


def seconds_of(call: TranscriptionCall) -> float:
    """How long the MP3 chunk in a request is (constant bit rate)."""
    assert call.file_size is not None and call.file_name and call.file_name.endswith(".mp3")
    return call.file_size * 8 / BIT_RATE


def segment_every(seconds: float = 700) -> Transcription:
    """Segments of 5 s each (the engine drops those past the chunk's end), numbered so
    stitching can be checked."""
    starts = [float(s) for s in range(0, max(1, int(seconds)), 5)]
    return Transcription(
        segments=tuple(OpenAISegment(s, min(seconds, s + 4.5), f"words at {s:g}") for s in starts),
        duration=seconds,
    )


async def test_a_run_on_openai_succeeds_with_whisper_segments(
    db: AsyncEngine, settings: Settings, fakes: Fakes, speech_dir: Path
) -> None:
    wav = spoken(speech_dir, 8)
    async with worker_on(cloud_settings(settings, fakes)) as ctx:
        run = await queue_audio_run(ctx, wav, "openai", language="en-US")
        done = await until_final(db, run["id"])
    assert done["status"] == "succeeded", done["error_message"]
    first = done["transcript"]["segments"][0]
    assert (first["start_ms"], first["end_ms"], first["text"]) == (
        0,
        1800,
        "Hello from the fake OpenAI.",
    )
    assert "words" not in first, "the run row keeps segments only"
    async with db.connect() as conn:
        words = (await runs.partials(conn, run["id"]))[0].segments[0].words
    assert [w.text for w in words] == ["Hello", "from", "the", "fake", "OpenAI."]
    assert words[0].start_ms == 0 and words[-1].end_ms == 1800
    (call,) = fakes.openai.transcriptions
    assert (call.model, call.response_format, call.language) == ("whisper-1", "verbose_json", "en")
    assert call.timestamp_granularities == ["segment", "word"]
    assert call.file_name is not None and call.file_name.endswith(".flac")
    assert call.file_size is not None and 0 < call.file_size < MAX_REQUEST_BYTES
    headers = fakes.openai.requests[0].headers
    assert headers["authorization"] == "<redacted>"


async def test_gpt_4o_transcribe_gets_json_and_one_segment_per_chunk(
    settings: Settings, fakes: Fakes, speech_dir: Path
) -> None:
    engine = OpenAIEngine(cloud_settings(settings, fakes, openai_chunk_ms=10_000))
    wav = spoken(speech_dir, 25)
    transcript = await engine.transcribe(
        wav, EngineOptions(model="gpt-4o-transcribe"), RecordingReporter()
    )
    calls = fakes.openai.transcriptions
    assert len(calls) >= 2
    assert {c.response_format for c in calls} == {"json"}
    assert len(transcript.segments) == len(calls)
    assert transcript.segments[-1].end_ms >= 24_000


async def test_long_audio_is_chunked_stitched_and_prompted_with_the_previous_words(
    settings: Settings, fakes: Fakes, speech_dir: Path
) -> None:
    fakes.openai.transcribe_to(lambda call: segment_every(seconds_of(call)))
    tuned = cloud_settings(
        settings,
        fakes,
        openai_chunk_ms=10_000,
        engine_max_concurrent_chunks=1,
        openai_chunk_format="mp3",
    )
    ticks = RecordingReporter()
    transcript = await OpenAIEngine(tuned).transcribe(
        spoken(speech_dir, 40), EngineOptions(), ticks
    )
    calls = fakes.openai.transcriptions
    assert len(calls) >= 4
    assert all(seconds_of(c) <= 10.5 for c in calls)
    assert calls[0].prompt is None
    assert all(c.prompt and c.prompt.startswith("words at") for c in calls[1:]), [
        (c.file_name, c.prompt) for c in calls
    ]
    starts = [s.start_ms for s in transcript.segments]
    assert starts == sorted(starts) and starts[0] == 0
    assert transcript.segments[-1].end_ms > 35_000
    assert ticks.stages == ["analyzing"]
    assert ticks.fractions == sorted(ticks.fractions) and ticks.fractions[-1] == 1.0
    assert len(ticks.fractions) == len(calls)


async def test_the_engines_exist_only_when_their_keys_are_set(
    settings: Settings, fakes: Fakes
) -> None:
    assert set(available_engines(settings)) == {"local"}
    configured = cloud_settings(settings, fakes)
    assert set(available_engines(configured)) == {"local", "gemini", "openai"}
    only_openai = configured.model_copy(update={"gemini_api_key": None})
    assert set(available_engines(only_openai)) == {"local", "openai"}


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_a_60_minute_recording_goes_as_requests_under_25_mb_with_stitched_times(
    settings: Settings, fakes: Fakes, tmp_path: Path
) -> None:
    fakes.openai.transcribe_to(segment_every())
    wav = spoken(tmp_path, 60 * 60)
    transcript = await OpenAIEngine(
        cloud_settings(settings, fakes, job_timeout_ms=600_000)
    ).transcribe(wav, EngineOptions(), RecordingReporter())
    calls = fakes.openai.transcriptions
    assert len(calls) >= 6
    assert all(c.file_size is not None and c.file_size < MAX_REQUEST_BYTES for c in calls)
    segments = transcript.segments
    assert all(a.start_ms <= b.start_ms for a, b in itertools.pairwise(segments))
    assert all(s.start_ms <= s.end_ms for s in segments)
    assert segments[0].start_ms == 0 and segments[-1].end_ms > 3590_000
    gaps = [b.start_ms - a.end_ms for a, b in itertools.pairwise(segments)]
    assert max(gaps) < 6_000
