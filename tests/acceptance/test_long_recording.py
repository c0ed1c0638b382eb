"""A 20-minute recording through the offline engine: the one long test, by design."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from service.engines.base import EngineOptions
from service.engines.local import LocalEngine
from tests.fakes_engines import RecordingReporter
from tests.speech import long_recording

pytestmark = pytest.mark.timeout(600)


async def test_twenty_minutes_come_back_as_ordered_segments_within_the_audio(
    speech_dir: Path,
) -> None:
    path, spoken = long_recording(speech_dir / "twenty.wav", 20)
    duration_ms = 20 * 60 * 1000
    reporter = RecordingReporter()
    transcript = await LocalEngine().transcribe(path, EngineOptions(), reporter)

    segments = transcript.segments
    assert len(segments) > 100
    starts = [s.start_ms for s in segments]
    assert starts == sorted(starts) and len(set(starts)) == len(starts), "strictly increasing"
    assert all(0 <= s.start_ms <= s.end_ms <= duration_ms + 1000 for s in segments)
    assert segments[-1].end_ms > duration_ms - 60_000, "the end of the recording was heard"

    said = Counter(word for sentence in spoken for word in sentence.split())
    heard = Counter(re.findall(r"[a-z']+", transcript.text))
    recovered = sum((said & heard).values()) / sum(said.values())
    assert recovered > 0.6, f"only {recovered:.0%} of the spoken words were recovered"
    assert reporter.stages == ["analyzing"]
    assert reporter.fractions[-1] == 1.0 and reporter.fractions == sorted(reporter.fractions)
