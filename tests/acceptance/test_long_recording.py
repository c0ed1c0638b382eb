"""A 20-minute recording through the offline engine: the one long test, by design."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from service.config import load_settings
from service.engines.base import EngineOptions
from service.engines.local import LocalEngine
from tests.fakes_engines import RecordingReporter
from tests.speech import long_recording
from tests.wer import word_error_rate

pytestmark = pytest.mark.timeout(600)


async def test_twenty_minutes_come_back_as_ordered_segments_within_the_audio(
    speech_dir: Path,
) -> None:
    path, spoken = long_recording(speech_dir / "twenty.wav", 20)
    duration_ms = 20 * 60 * 1000
    reporter = RecordingReporter()
    started = time.monotonic()
    transcript = await LocalEngine(load_settings()).transcribe(path, EngineOptions(), reporter)
    elapsed = time.monotonic() - started

    segments = transcript.segments
    assert len(segments) > 100
    starts = [s.start_ms for s in segments]
    assert starts == sorted(starts) and len(set(starts)) == len(starts), "strictly increasing"
    assert all(0 <= s.start_ms <= s.end_ms <= duration_ms + 1000 for s in segments)
    assert segments[-1].end_ms > duration_ms - 60_000, "the end of the recording was heard"

    wer = word_error_rate(" ".join(spoken), transcript.text)
    assert wer < 0.15, f"word error rate {wer:.1%}"
    assert reporter.stages == ["analyzing"]
    assert reporter.fractions[-1] == 1.0 and reporter.fractions == sorted(reporter.fractions)
    assert reporter.chunk_segments() == list(segments), "the partials are the transcript"
    assert all(s.start_ms <= w.start_ms <= w.end_ms <= s.end_ms for s in segments for w in s.words)
    print(f"20 minutes in {elapsed:.1f} s ({elapsed / 1200:.3f}x real time), WER {wer:.1%}")
