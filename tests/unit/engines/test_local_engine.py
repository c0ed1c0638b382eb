"""The offline engine on real speech: what flite said is what pocketsphinx hears."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.engines.base import EngineOptions
from service.engines.local import LocalEngine, require_english, words_to_segments
from service.errors import AudioUnreadable, EngineRefused
from tests.fakes_engines import RecordingReporter
from tests.speech import speak


async def test_a_spoken_sentence_comes_back_with_its_key_words(tmp_path: Path) -> None:
    clip = speak("the quick brown fox jumps over the lazy dog", tmp_path / "fox.wav")
    reporter = RecordingReporter()
    transcript = await LocalEngine().transcribe(clip, EngineOptions(language="en"), reporter)
    assert {"quick", "brown", "fox", "dog"} <= set(transcript.text.split())
    assert transcript.language == "en"
    assert reporter.calls[0] == "stage analyzing" and reporter.fractions[-1] == 1.0
    assert all(0 <= s.start_ms <= s.end_ms <= 4_000 for s in transcript.segments)
    assert reporter.chunk_segments() == list(transcript.segments)


@pytest.mark.parametrize("language", ["de", "fr-FR", "zh"])
def test_other_languages_are_refused_with_a_way_out(language: str) -> None:
    with pytest.raises(EngineRefused, match="English only"):
        require_english(language)


@pytest.mark.parametrize("language", [None, "", "en", "en-US", "en_GB", "English"])
def test_english_in_any_spelling_is_accepted(language: str | None) -> None:
    require_english(language)


def test_words_group_into_segments_at_pauses_and_stay_within_the_audio() -> None:
    words = [("hello", 0, 400), ("world", 450, 900), ("again", 2_000, 2_600)]
    segments = words_to_segments(words, duration_ms=2_500)
    assert [(s.start_ms, s.end_ms, s.text) for s in segments] == [
        (0, 900, "hello world"),
        (2_000, 2_500, "again"),
    ]


async def test_an_unreadable_upload_fails_with_its_own_code_across_the_pool(
    tmp_path: Path,
) -> None:
    notes = tmp_path / "notes.mp3"
    notes.write_text("not audio at all\n" * 50)
    with pytest.raises(AudioUnreadable) as caught:
        await LocalEngine().transcribe(notes, EngineOptions(), RecordingReporter())
    assert caught.value.code == "audio_unreadable"
