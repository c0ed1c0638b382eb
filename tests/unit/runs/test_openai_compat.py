"""OpenAI's shapes in Tapeline's terms: model names, form checks, answers, deltas, errors."""

from __future__ import annotations

import json
import math

import pytest

from service.config import load_settings
from service.engines.base import Segment, Transcript, Word
from service.errors import AudioUnreadable, InvalidRequest, ModelNotFound, Unauthorized
from service.runs import openai_compat as compat

TRANSCRIPT = Transcript.from_segments(
    [
        Segment(
            0, 1200, "hello there", words=(Word(0, 500, "hello", 0.9), Word(600, 1200, "there"))
        ),
        Segment(1500, 2500, "general kenobi"),
    ],
    language="en",
)


def routes(**env: str) -> dict[str, compat.ModelRoute]:
    return compat.model_routes(load_settings(**env), ("local", "openai"))


def test_whisper_1_is_the_default_engine_and_each_engine_answers_to_its_name() -> None:
    assert routes() == {
        "whisper-1": compat.ModelRoute("whisper-1", "local"),
        "local": compat.ModelRoute("local", "local"),
        "openai": compat.ModelRoute("openai", "openai"),
    }


def test_configured_names_map_to_engines_and_models_and_unavailable_ones_are_left_out() -> None:
    found = routes(
        openai_compat_models="whisper-1=openai:whisper-1, large=local:large-v3, pro=gemini"
    )
    assert found["whisper-1"] == compat.ModelRoute("whisper-1", "openai", "whisper-1")
    assert found["large"] == compat.ModelRoute("large", "local", "large-v3")
    assert "pro" not in found
    listed = compat.models_json(found)
    assert listed["object"] == "list"
    assert [m["id"] for m in listed["data"]] == ["whisper-1", "local", "openai", "large"]
    assert {m["object"] for m in listed["data"]} == {"model"}


def test_a_form_is_read_as_openai_documents_it() -> None:
    asked = compat.transcription_request(
        {
            "model": "whisper-1",
            "language": "en",
            "prompt": "Kenobi",
            "temperature": "0.4",
            "response_format": "verbose_json",
            "timestamp_granularities[]": "word,segment,word",
            "stream": "true",
            "include[]": "logprobs",
        },
        routes(),
    )
    assert asked == compat.TranscriptionRequest(
        route=compat.ModelRoute("whisper-1", "local"),
        language="en",
        prompt="Kenobi",
        temperature=0.4,
        response_format="verbose_json",
        granularities=("word", "segment"),
        stream=True,
    )
    assert compat.transcription_request({"model": "local"}, routes()).response_format == "json"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({}, "model"),
        ({"model": "whisper-1", "response_format": "docx"}, "response_format"),
        ({"model": "whisper-1", "temperature": "1.01"}, "temperature"),
        ({"model": "whisper-1", "temperature": "nan"}, "temperature"),
        ({"model": "whisper-1", "temperature": "warm"}, "temperature"),
        ({"model": "whisper-1", "stream": "maybe"}, "stream"),
        ({"model": "whisper-1", "timestamp_granularities[]": "word"}, "timestamp_granularities"),
        (
            {
                "model": "whisper-1",
                "response_format": "verbose_json",
                "timestamp_granularities[]": "char",
            },
            "timestamp_granularities",
        ),
        ({"model": "whisper-1", "prompt": "x" * 4001}, "prompt"),
    ],
)
def test_a_bad_field_is_a_400_naming_it(fields: dict[str, str], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        compat.transcription_request(fields, routes())
    assert caught.value.details["param"] == param
    assert compat.error_json(caught.value)["error"]["param"] == param


def test_an_unknown_model_is_model_not_found() -> None:
    with pytest.raises(ModelNotFound) as caught:
        compat.transcription_request({"model": "gpt-5"}, routes())
    assert "whisper-1" in caught.value.message


def answer(fmt: str, *granularities: str) -> str:
    request = compat.TranscriptionRequest(
        route=compat.ModelRoute("whisper-1", "local"),
        response_format=fmt,
        granularities=granularities,
        temperature=0.2,
    )
    return compat.rendered(TRANSCRIPT, request, 2_400)


def test_json_and_text_answers() -> None:
    assert json.loads(answer("json")) == {
        "text": "hello there general kenobi",
        "usage": {"type": "duration", "seconds": 3},
    }
    assert answer("text") == "hello there general kenobi\n"
    assert answer("srt").startswith("1\n00:00:00,000 --> 00:00:01,200\nhello there\n")
    assert answer("vtt").startswith(compat.VTT_HEADER + "\n00:00:00.000 --> 00:00:01.200")


def test_verbose_json_segments_and_words() -> None:
    plain = json.loads(answer("verbose_json"))
    assert (plain["task"], plain["language"], plain["duration"]) == ("transcribe", "en", 2.4)
    first = plain["segments"][0]
    assert (first["id"], first["start"], first["end"], first["text"]) == (
        0,
        0.0,
        1.2,
        "hello there",
    )
    assert first["temperature"] == 0.2 and first["compression_ratio"] > 0
    assert first["avg_logprob"] == round(math.log(0.9), 4)
    assert plain["segments"][1]["avg_logprob"] == 0.0 and "words" not in plain
    worded = json.loads(answer("verbose_json", "word"))
    assert "segments" not in worded
    assert worded["words"] == [
        {"word": "hello", "start": 0.0, "end": 0.5},
        {"word": "there", "start": 0.6, "end": 1.2},
    ]
    both = json.loads(answer("verbose_json", "segment", "word"))
    assert len(both["segments"]) == 2 and len(both["words"]) == 2


def test_deltas_follow_the_recording_whatever_order_chunks_finish_in() -> None:
    deltas = compat.DeltaText()
    assert deltas.add(1, ["second"]) == []
    assert deltas.add(0, ["first", "part"]) == ["first part", " second"]
    assert deltas.add(0, ["first", "part"]) == []  # a retry reports kept chunks again
    assert deltas.add(2, []) == []  # no speech in this chunk
    assert deltas.add(3, ["last"]) == [" last"]
    assert deltas.sent == "first part second last"
    assert deltas.rest("first part second last") is None
    assert deltas.rest("first part second last words") == " words"
    assert deltas.rest("something else entirely") is None


def test_errors_are_openai_shaped_with_tapeline_codes() -> None:
    unreadable = compat.error_json(AudioUnreadable())
    assert compat.openai_status(AudioUnreadable()) == 400
    assert unreadable["error"]["type"] == "invalid_request_error"
    assert (
        unreadable["error"]["code"] == "audio_unreadable" and unreadable["error"]["param"] is None
    )
    assert compat.error_json(Unauthorized())["error"]["code"] == "invalid_api_key"
    failed = compat.run_error("upstream_unavailable", "the provider is down")
    assert (failed.http_status, failed.message) == (503, "the provider is down")
    assert compat.error_json(failed)["error"]["type"] == "server_error"
    assert compat.run_error("never_heard_of_it", None).code == "internal_error"
