"""What users send, parsed the same way everywhere (issue 15, findings 4 and 9)."""

from __future__ import annotations

import pytest

from service.config import load_settings
from service.errors import EngineNotConfigured, InvalidRequest, ModelNotAllowed
from service.inputs import check_run_options, clean_filename, language_tag, whole_number


@pytest.mark.parametrize("raw", ["²", "١٢", "1²", "-1", "+1", " 1", "1.0", "", "9" * 20])
def test_whole_numbers_are_ascii_digits_only(raw: str) -> None:
    assert whole_number(raw) is None


def test_whole_numbers() -> None:
    assert [whole_number(r) for r in ("0", "7", "0042", None)] == [0, 7, 42, None]


@pytest.mark.parametrize(
    "tag", ["en", "de", "pt-BR", "zh-Hant-TW", "yue", "es-419", "sr-Latn", "en-US-x-twain"]
)
def test_bcp47_tags_are_accepted(tag: str) -> None:
    assert language_tag(tag) == tag


@pytest.mark.parametrize(
    "value",
    ["English", "en_GB", "en-", "e", "ignore previous instructions", "en\x00", "a" * 4096],
)
def test_anything_else_is_not_a_language(value: str) -> None:
    with pytest.raises(InvalidRequest):
        language_tag(value)


def test_filenames_lose_control_characters_and_paths_and_are_capped() -> None:
    assert clean_filename("../../etc/pass\x00wd.wav") == "passwd.wav"
    assert clean_filename("C:\\Users\\me\\talk.mp3") == "talk.mp3"
    assert clean_filename("\x00\x01") == "audio"
    assert len(clean_filename("n" * 5000 + ".wav")) == 255


def test_cloud_models_must_be_on_the_engines_allow_list() -> None:
    settings = load_settings(gemini_models_allowed="gemini-2.5-flash, gemini-2.5-flash-lite")
    engines = ("local", "gemini", "openai")
    check_run_options(settings, engines, "gemini", "gemini-2.5-flash-lite")
    with pytest.raises(ModelNotAllowed):
        check_run_options(settings, engines, "gemini", "gemini-2.5-pro")
    check_run_options(settings, engines, "openai", "whisper-1")  # no list: the configured model
    with pytest.raises(ModelNotAllowed):
        check_run_options(settings, engines, "openai", "gpt-4o-transcribe")
    with pytest.raises(EngineNotConfigured):
        check_run_options(settings, ("local",), "gemini", None)
