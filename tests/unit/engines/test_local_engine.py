"""The offline engine on real speech: what flite said is what Whisper hears."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import load_settings
from service.engines.base import EngineOptions
from service.engines.local import (
    FIRST_WINDOW_MS,
    WINDOW_MS,
    LocalEngine,
    check_run,
    compute_threads,
    first_window_ms,
    primary_language,
)
from service.errors import AudioUnreadable, EngineRefused, ModelNotAllowed
from tests.fakes_engines import RecordingReporter
from tests.speech import speak
from tests.wer import word_error_rate


async def test_a_spoken_sentence_comes_back_nearly_verbatim_with_words(tmp_path: Path) -> None:
    said = "the quick brown fox jumps over the lazy dog"
    clip = speak(said, tmp_path / "fox.wav")
    reporter = RecordingReporter()
    engine = LocalEngine(load_settings())
    transcript = await engine.transcribe(clip, EngineOptions(), reporter)
    assert word_error_rate(said, transcript.text) <= 0.15, transcript.text
    assert transcript.language == "en"
    assert reporter.stages == ["analyzing"] and reporter.fractions[-1] == 1.0
    assert all(0 <= s.start_ms <= s.end_ms <= 4_000 for s in transcript.segments)
    assert reporter.chunk_segments() == list(transcript.segments)
    for segment in transcript.segments:
        assert segment.words, "every segment carries its words"
        assert all(
            segment.start_ms <= w.start_ms <= w.end_ms <= segment.end_ms for w in segment.words
        )
        assert all(0 <= (w.probability or 0) <= 1 for w in segment.words)


@pytest.mark.parametrize("language", ["de", "fr-FR", "zh"])
def test_an_english_only_model_refuses_other_languages_before_queueing(language: str) -> None:
    with pytest.raises(EngineRefused, match="English only"):
        check_run(load_settings(), language, None)


@pytest.mark.parametrize("language", [None, "", "en", "en-US", "en_GB", "English"])
def test_english_in_any_spelling_is_accepted(language: str | None) -> None:
    check_run(load_settings(), language, None)
    assert primary_language(language) in (None, "en")


def test_a_model_must_be_allowed_by_name() -> None:
    settings = load_settings(whisper_model="base", whisper_models_allowed="small,large-v3")
    assert check_run(settings, None, "large-v3") == "large-v3"
    with pytest.raises(ModelNotAllowed):
        check_run(settings, None, "someone/huge-model")


def test_concurrent_jobs_share_the_cores_instead_of_oversubscribing_them() -> None:
    assert compute_threads(load_settings(max_concurrent_jobs=3), cores=2) == (2, 1)
    assert compute_threads(load_settings(max_concurrent_jobs=1), cores=8) == (1, 8)
    assert compute_threads(load_settings(max_concurrent_jobs=4), cores=8) == (4, 2)


async def test_an_unreadable_upload_fails_with_its_own_code(tmp_path: Path) -> None:
    notes = tmp_path / "notes.mp3"
    notes.write_text("not audio at all\n" * 50)
    with pytest.raises(AudioUnreadable) as caught:
        await LocalEngine(load_settings()).transcribe(notes, EngineOptions(), RecordingReporter())
    assert caught.value.code == "audio_unreadable"


@pytest.mark.parametrize(
    ("duration_ms", "first_ms"),
    [(30_000, WINDOW_MS), (60_000, WINDOW_MS), (60_001, FIRST_WINDOW_MS), (None, FIRST_WINDOW_MS)],
)
def test_only_a_recording_over_a_minute_gets_a_short_first_window(
    duration_ms: int | None, first_ms: int
) -> None:
    """A short first window costs a padded 30 s pass; only a long recording gains from it."""
    assert first_window_ms(duration_ms) == first_ms
