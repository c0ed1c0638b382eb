"""The fake Gemini and OpenAI servers driven by the real SDKs: happy paths, then every fault.

Besides proving the fakes speak the wire protocols, these tests pin down what each SDK raises
for each failure (the table in tests/fakes/__init__.py): when an SDK upgrade changes an
exception type, this file fails before the engines start misclassifying errors.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from google import genai
from google.genai import _api_client, errors, types
from pydantic import BaseModel

from tests.fakes import (
    Fakes,
    FaultKind,
    OpenAISegment,
    Transcription,
    running_fakes,
    transcript_json,
)

AUDIO = b"RIFF" + bytes(range(256)) * 8
MODEL = "gemini-2.5-flash"
SHORT_MS = 500
SHORT_S = SHORT_MS / 1000


class Line(BaseModel):
    start_ms: int
    end_ms: int
    text: str
    speaker: str | None


class Transcript(BaseModel):
    segments: list[Line]
    language: str


@pytest.fixture
async def gemini(fakes: Fakes) -> AsyncIterator[genai.client.AsyncClient]:
    options = types.HttpOptions(
        base_url=fakes.gemini_url,
        timeout=5_000,
        async_client_args={"transport": httpx2.AsyncHTTPTransport()},  # never aiohttp
    )
    client = genai.Client(api_key="test-gemini-key", http_options=options)
    yield client.aio
    await client.aio.aclose()


@pytest.fixture
async def oai(fakes: Fakes) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(
        api_key="sk-test", base_url=fakes.openai_url, max_retries=0, timeout=5
    )
    yield client
    await client.close()


async def upload(gemini: genai.client.AsyncClient, data: bytes = AUDIO) -> types.File:
    config = types.UploadFileConfig(mime_type="audio/wav", display_name="chunk-1")
    return await gemini.files.upload(file=io.BytesIO(data), config=config)


async def generate(gemini: genai.client.AsyncClient, *, timeout_ms: int = 5_000) -> str | None:
    config = types.GenerateContentConfig(http_options=types.HttpOptions(timeout=timeout_ms))
    response = await gemini.models.generate_content(model=MODEL, contents="hi", config=config)
    return response.text


async def transcribe(oai: openai.AsyncOpenAI, **kwargs: Any) -> object:
    return await oai.audio.transcriptions.create(
        file=("chunk.wav", AUDIO, "audio/wav"), model="whisper-1", **kwargs
    )


# -- Gemini: the happy path -------------------------------------------------------------------


async def test_gemini_upload_poll_generate_delete(
    fakes: Fakes, gemini: genai.client.AsyncClient
) -> None:
    fakes.gemini.file_lifecycle(processing_polls=2)
    wanted = transcript_json([(0, 900, "Bonjour.", "A"), (900, 2000, "Salut.", "B")], "fr")
    fakes.gemini.respond_with(wanted)

    file = await upload(gemini)
    assert file.state == types.FileState.PROCESSING
    assert file.size_bytes == len(AUDIO)
    assert file.name is not None and file.uri is not None
    states = [(await gemini.files.get(name=file.name)).state for _ in range(3)]
    assert states == [types.FileState.PROCESSING] * 2 + [types.FileState.ACTIVE]

    response = await gemini.models.generate_content(
        model=MODEL,
        contents=[
            types.Part.from_uri(file_uri=file.uri, mime_type="audio/wav"),
            "Transcribe this audio.",
        ],
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=Transcript
        ),
    )
    assert response.text == wanted
    assert isinstance(response.parsed, Transcript)
    assert response.parsed.language == "fr"
    assert [s.text for s in response.parsed.segments] == ["Bonjour.", "Salut."]
    await gemini.files.delete(name=file.name)

    assert fakes.gemini.deleted == [file.name]
    assert [f.data for f in fakes.gemini.uploaded] == [AUDIO]
    start, chunk = fakes.gemini.requests_to("/upload/")
    assert start.headers["x-goog-upload-command"] == "start"
    assert start.headers["x-goog-upload-header-content-length"] == str(len(AUDIO))
    assert start.headers["x-goog-api-key"] == "<redacted>"
    # google-genai mixes snake_case and lowerCamel field names; the API (and the fake) take both.
    assert start.json == {
        "file": {"display_name": "chunk-1", "mime_type": "audio/wav", "size_bytes": len(AUDIO)}
    }
    assert chunk.headers["x-goog-upload-command"] == "upload, finalize"
    assert chunk.body_size == len(AUDIO)
    (sent,) = fakes.gemini.generate_requests
    assert sent.json["generationConfig"]["responseMimeType"] == "application/json"
    file_part = sent.json["contents"][0]["parts"][0]
    assert file_part == {"fileData": {"file_uri": file.uri, "mime_type": "audio/wav"}}
    assert not any("test-gemini-key" in json.dumps(r.headers) for r in fakes.gemini.requests)


async def test_gemini_upload_from_a_path_in_several_chunks(
    fakes: Fakes,
    gemini: genai.client.AsyncClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_api_client, "CHUNK_SIZE", 1000)
    path = tmp_path / "meeting.wav"
    path.write_bytes(AUDIO[:2500])

    file = await gemini.files.upload(file=path)

    chunks = fakes.gemini.requests_to("upload_id=")
    assert [c.headers["x-goog-upload-command"] for c in chunks] == [
        "upload",
        "upload",
        "upload, finalize",
    ]
    assert [c.headers["x-goog-upload-offset"] for c in chunks] == ["0", "1000", "2000"]
    assert fakes.gemini.uploaded[0].data == AUDIO[:2500]
    assert file.mime_type in {"audio/wav", "audio/x-wav"}


async def test_gemini_refuses_a_file_still_processing(
    fakes: Fakes, gemini: genai.client.AsyncClient
) -> None:
    fakes.gemini.file_lifecycle(processing_polls=None)
    file = await upload(gemini)
    assert file.name is not None and file.uri is not None
    for _ in range(5):
        assert (await gemini.files.get(name=file.name)).state == types.FileState.PROCESSING

    with pytest.raises(errors.ClientError) as caught:
        await gemini.models.generate_content(
            model=MODEL, contents=[types.Part.from_uri(file_uri=file.uri, mime_type="audio/wav")]
        )
    assert (caught.value.code, caught.value.status) == (400, "FAILED_PRECONDITION")


async def test_gemini_failed_file(fakes: Fakes, gemini: genai.client.AsyncClient) -> None:
    fakes.gemini.file_lifecycle(processing_polls=1, final_state="FAILED")
    file = await upload(gemini)
    assert file.name is not None
    await gemini.files.get(name=file.name)
    failed = await gemini.files.get(name=file.name)
    assert failed.state == types.FileState.FAILED
    assert failed.error is not None and failed.error.message


async def test_gemini_deleted_file_is_gone(fakes: Fakes, gemini: genai.client.AsyncClient) -> None:
    file = await upload(gemini)
    assert file.name is not None and file.state == types.FileState.ACTIVE
    assert [f.name async for f in await gemini.files.list()] == [file.name]
    await gemini.files.delete(name=file.name)
    assert [f.name async for f in await gemini.files.list()] == []

    with pytest.raises(errors.ClientError) as caught:
        await gemini.files.get(name=file.name)
    assert (caught.value.code, caught.value.status) == (403, "PERMISSION_DENIED")
    assert fakes.gemini.live_files == []


async def test_gemini_answers_are_configurable_per_request(
    fakes: Fakes, gemini: genai.client.AsyncClient
) -> None:
    fakes.gemini.respond_with(lambda body: body["contents"][0]["parts"][0]["text"].upper())
    assert await generate(gemini) == "HI"

    fakes.gemini.respond_with(None, finish_reason="SAFETY")
    response = await gemini.models.generate_content(model=MODEL, contents="hi")
    assert response.text is None
    assert response.candidates and response.candidates[0].finish_reason == "SAFETY"


# -- Gemini: faults ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "error", "code", "status"),
    [
        (FaultKind.BAD_GATEWAY, errors.ServerError, 502, "Bad Gateway"),
        (FaultKind.UNAVAILABLE, errors.ServerError, 503, "UNAVAILABLE"),
        (FaultKind.RATE_LIMITED, errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
        (FaultKind.UNAUTHORIZED, errors.ClientError, 400, "INVALID_ARGUMENT"),
        (FaultKind.BAD_AUDIO, errors.ClientError, 400, "INVALID_ARGUMENT"),
    ],
)
async def test_gemini_status_faults(
    fakes: Fakes,
    gemini: genai.client.AsyncClient,
    kind: FaultKind,
    error: type[errors.APIError],
    code: int,
    status: str,
) -> None:
    fakes.gemini.fail(kind)
    with pytest.raises(error) as caught:
        await generate(gemini)
    assert type(caught.value) is error
    assert (caught.value.code, caught.value.status) == (code, status)


async def test_gemini_html_502_keeps_the_page_as_the_message(
    fakes: Fakes, gemini: genai.client.AsyncClient
) -> None:
    fakes.gemini.fail(FaultKind.BAD_GATEWAY)
    with pytest.raises(errors.ServerError) as caught:
        await generate(gemini)
    assert caught.value.message is not None and caught.value.message.startswith("<html>")
    assert caught.value.details == {"message": caught.value.message, "status": "Bad Gateway"}


async def test_gemini_rate_limit_shows_retry_after(
    fakes: Fakes, gemini: genai.client.AsyncClient
) -> None:
    fakes.gemini.fail(FaultKind.RATE_LIMITED, retry_after=7)
    with pytest.raises(errors.ClientError) as caught:
        await generate(gemini)
    assert caught.value.response.headers["retry-after"] == "7"
    (detail,) = caught.value.details["error"]["details"]
    assert detail["retryDelay"] == "7s"


async def test_gemini_bad_key_is_a_400_unless_asked_for_a_401(
    fakes: Fakes, gemini: genai.client.AsyncClient
) -> None:
    fakes.gemini.fail(FaultKind.UNAUTHORIZED)
    with pytest.raises(errors.ClientError) as caught:
        await generate(gemini)
    assert caught.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"

    fakes.gemini.fail(FaultKind.UNAUTHORIZED, status=401)
    with pytest.raises(errors.ClientError) as caught:
        await generate(gemini)
    assert (caught.value.code, caught.value.status) == (401, "UNAUTHENTICATED")


@pytest.mark.parametrize("kind", [FaultKind.HANG, FaultKind.TRICKLE])
async def test_gemini_hang_and_trickle_raise_httpx2_read_timeout(
    fakes: Fakes, gemini: genai.client.AsyncClient, kind: FaultKind
) -> None:
    fakes.gemini.fail(kind, interval=5)
    started = time.monotonic()
    with pytest.raises(httpx2.ReadTimeout):
        await generate(gemini, timeout_ms=SHORT_MS)
    assert time.monotonic() - started < 2


async def test_gemini_reset_raises_httpx2_read_error(
    fakes: Fakes, gemini: genai.client.AsyncClient
) -> None:
    fakes.gemini.fail(FaultKind.RESET)
    with pytest.raises(httpx2.ReadError):
        await generate(gemini)
    assert await generate(gemini) is not None  # the next connection is fine


async def test_gemini_truncated_json(fakes: Fakes, gemini: genai.client.AsyncClient) -> None:
    fakes.gemini.fail(FaultKind.TRUNCATED_JSON, path_contains=":generateContent")
    with pytest.raises(json.JSONDecodeError):
        await generate(gemini)

    file = await upload(gemini)
    assert file.name is not None
    fakes.gemini.fail(FaultKind.TRUNCATED_JSON, method="GET")
    with pytest.raises(json.JSONDecodeError):
        await gemini.files.get(name=file.name)

    # The upload's final answer is parsed elsewhere in the SDK, hence another type.
    fakes.gemini.fail(FaultKind.TRUNCATED_JSON, path_contains="upload_id=")
    with pytest.raises(errors.UnknownApiResponseError):
        await upload(gemini)
    assert len(fakes.gemini.uploaded) == 2  # the server did store it: only the answer broke


async def test_gemini_sdk_silently_retries_an_upload_chunk_answered_without_upload_status(
    fakes: Fakes, gemini: genai.client.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_api_client, "INITIAL_RETRY_DELAY", 0.01)  # really 1 s, then 2, 4
    fakes.gemini.fail(FaultKind.BAD_GATEWAY, times=None, path_contains="upload_id=")
    with pytest.raises(errors.ServerError) as caught:
        await upload(gemini)
    assert caught.value.code == 502
    assert len(fakes.gemini.requests_to("upload_id=")) == 3

    fakes.reset()
    fault = fakes.gemini.fail(FaultKind.UNAVAILABLE, times=1, path_contains="upload_id=")
    await upload(gemini)
    assert fault.hits == 1
    assert len(fakes.gemini.requests_to("upload_id=")) == 2
    assert len(fakes.gemini.uploaded) == 1


async def test_faults_are_counted_then_the_api_behaves(
    fakes: Fakes, gemini: genai.client.AsyncClient
) -> None:
    fault = fakes.gemini.fail(FaultKind.UNAVAILABLE, times=2, path_contains=":generateContent")
    for _ in range(2):
        with pytest.raises(errors.ServerError):
            await generate(gemini)
    assert await generate(gemini) is not None
    assert fault.hits == 2
    assert [r.fault for r in fakes.gemini.generate_requests] == [
        FaultKind.UNAVAILABLE,
        FaultKind.UNAVAILABLE,
        None,
    ]


# -- OpenAI: the happy path -------------------------------------------------------------------


async def test_openai_json_transcription(fakes: Fakes, oai: openai.AsyncOpenAI) -> None:
    fakes.openai.transcribe_to(Transcription(text="Bonjour tout le monde.", language="french"))
    result = await transcribe(oai, prompt="Previously: hello.", language="fr")

    assert isinstance(result, openai.types.audio.Transcription)
    assert result.text == "Bonjour tout le monde."
    (call,) = fakes.openai.transcriptions
    assert call.model == "whisper-1"
    assert call.prompt == "Previously: hello."
    assert call.language == "fr"
    assert call.response_format is None  # the SDK leaves it to the API's default, json
    assert (call.file_name, call.file_size) == ("chunk.wav", len(AUDIO))
    assert fakes.openai.requests[0].headers["authorization"] == "<redacted>"


async def test_openai_verbose_json_segments_and_words(
    fakes: Fakes, oai: openai.AsyncOpenAI
) -> None:
    fakes.openai.transcribe_to(
        Transcription(
            segments=[OpenAISegment(0.0, 1.5, "One two three."), OpenAISegment(1.5, 4.25, "Four.")]
        )
    )
    result = await transcribe(
        oai, response_format="verbose_json", timestamp_granularities=["segment", "word"]
    )

    assert isinstance(result, openai.types.audio.TranscriptionVerbose)
    assert result.language == "english"
    assert result.duration == 4.25
    assert result.segments is not None
    assert [(s.id, s.start, s.end, s.text) for s in result.segments] == [
        (0, 0.0, 1.5, " One two three."),
        (1, 1.5, 4.25, " Four."),
    ]
    assert result.words is not None and [w.word for w in result.words][:2] == ["One", "two"]
    (call,) = fakes.openai.transcriptions
    assert call.response_format == "verbose_json"
    assert call.timestamp_granularities == ["segment", "word"]


async def test_openai_text_transcription(fakes: Fakes, oai: openai.AsyncOpenAI) -> None:
    fakes.openai.transcribe_to(lambda call: Transcription(text=f"prompted: {call.prompt}"))
    result = await transcribe(oai, response_format="text", prompt="context")
    assert result == "prompted: context\n"


async def test_openai_refuses_verbose_json_from_gpt4o_and_big_files(
    fakes: Fakes, oai: openai.AsyncOpenAI
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await oai.audio.transcriptions.create(
            file=("chunk.wav", AUDIO, "audio/wav"),
            model="gpt-4o-transcribe",
            response_format="verbose_json",
        )
    assert refused.value.status_code == 400

    fakes.openai.limit_file_size(1000)
    with pytest.raises(openai.APIStatusError) as too_big:
        await transcribe(oai)
    assert type(too_big.value) is openai.APIStatusError  # no dedicated class for 413
    assert too_big.value.status_code == 413


async def test_openai_chat_completion(fakes: Fakes, oai: openai.AsyncOpenAI) -> None:
    fakes.openai.chat_reply({"topics": ["budget", "hiring"]})
    completion = await oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Analyse this transcript."}],
        response_format={"type": "json_object"},
    )
    content = completion.choices[0].message.content
    assert content is not None and json.loads(content) == {"topics": ["budget", "hiring"]}
    (sent,) = fakes.openai.chat_requests
    assert sent.json["response_format"] == {"type": "json_object"}
    assert sent.json["messages"][0]["content"] == "Analyse this transcript."


# -- OpenAI: faults ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "error", "status"),
    [
        (FaultKind.BAD_GATEWAY, openai.InternalServerError, 502),
        (FaultKind.UNAVAILABLE, openai.InternalServerError, 503),
        (FaultKind.RATE_LIMITED, openai.RateLimitError, 429),
        (FaultKind.UNAUTHORIZED, openai.AuthenticationError, 401),
        (FaultKind.BAD_AUDIO, openai.BadRequestError, 400),
    ],
)
async def test_openai_status_faults(
    fakes: Fakes,
    oai: openai.AsyncOpenAI,
    kind: FaultKind,
    error: type[openai.APIStatusError],
    status: int,
) -> None:
    fakes.openai.fail(kind)
    with pytest.raises(error) as caught:
        await transcribe(oai)
    assert type(caught.value) is error
    assert caught.value.status_code == status


async def test_openai_html_502_body_is_the_page(fakes: Fakes, oai: openai.AsyncOpenAI) -> None:
    fakes.openai.fail(FaultKind.BAD_GATEWAY)
    with pytest.raises(openai.InternalServerError) as caught:
        await transcribe(oai)
    assert isinstance(caught.value.body, str) and caught.value.body.startswith("<html>")
    assert caught.value.message == "Error code: 502"


async def test_openai_rate_limit_shows_retry_after_and_sdk_retries_honour_it(
    fakes: Fakes, oai: openai.AsyncOpenAI
) -> None:
    fakes.openai.fail(FaultKind.RATE_LIMITED, retry_after=3)
    with pytest.raises(openai.RateLimitError) as caught:
        await transcribe(oai)
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.code == "rate_limit_exceeded"

    fakes.reset()
    fakes.openai.fail(FaultKind.RATE_LIMITED, times=2, retry_after=0.05)
    started = time.monotonic()
    result = await oai.with_options(max_retries=2).audio.transcriptions.create(
        file=("chunk.wav", AUDIO, "audio/wav"), model="whisper-1"
    )
    assert result.text
    assert time.monotonic() - started < 1
    assert [c.fault for c in fakes.openai.transcriptions] == [
        FaultKind.RATE_LIMITED,
        FaultKind.RATE_LIMITED,
        None,
    ]


@pytest.mark.parametrize("kind", [FaultKind.HANG, FaultKind.TRICKLE])
async def test_openai_hang_and_trickle_raise_api_timeout_error(
    fakes: Fakes, oai: openai.AsyncOpenAI, kind: FaultKind
) -> None:
    fakes.openai.fail(kind, interval=5)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError) as caught:
        await transcribe(oai, timeout=SHORT_S)
    assert isinstance(caught.value.__cause__, httpx2.ReadTimeout)
    assert time.monotonic() - started < 2


async def test_a_trickle_faster_than_the_read_timeout_is_never_a_timeout(
    fakes: Fakes, oai: openai.AsyncOpenAI, gemini: genai.client.AsyncClient
) -> None:
    """httpx timeouts bound each read, not the call: only an overall deadline stops a drip."""

    async def chat() -> object:
        return await oai.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], timeout=0.3
        )

    fakes.openai.fail(FaultKind.TRICKLE, interval=0.1, chunk_size=64)
    started = time.monotonic()
    await chat()
    assert time.monotonic() - started > 0.3

    fakes.gemini.fail(FaultKind.TRICKLE, interval=0.1, chunk_size=64)
    started = time.monotonic()
    assert await generate(gemini, timeout_ms=300) is not None
    assert time.monotonic() - started > 0.3

    fakes.openai.fail(FaultKind.TRICKLE, interval=0.1, chunk_size=64)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await chat()


async def test_openai_reset_raises_api_connection_error(
    fakes: Fakes, oai: openai.AsyncOpenAI
) -> None:
    fakes.openai.fail(FaultKind.RESET)
    with pytest.raises(openai.APIConnectionError) as caught:
        await transcribe(oai)
    assert type(caught.value) is openai.APIConnectionError
    assert isinstance(caught.value.__cause__, httpx2.ReadError)


async def test_openai_truncated_json_raises_json_decode_error(
    fakes: Fakes, oai: openai.AsyncOpenAI
) -> None:
    fakes.openai.fail(FaultKind.TRUNCATED_JSON)
    with pytest.raises(json.JSONDecodeError):
        await transcribe(oai)


# -- the server itself ------------------------------------------------------------------------


async def test_a_hung_request_without_client_timeout_ends_when_the_server_stops() -> None:
    with running_fakes() as fakes:
        client = openai.AsyncOpenAI(
            api_key="sk-test", base_url=fakes.openai_url, max_retries=0, timeout=None
        )
        fakes.openai.fail(FaultKind.HANG)
        call = asyncio.ensure_future(transcribe(client))
        while not fakes.openai.requests:
            await asyncio.sleep(0.01)
        started = time.monotonic()
    stop_s = time.monotonic() - started

    with pytest.raises(openai.APIConnectionError):
        await asyncio.wait_for(call, 5)
    await client.close()
    assert stop_s < 2
