"""/v1 through the real `openai` SDK against a real `tapeline serve`: its worker runs the
`openai` engine against the fake provider (whisper-1 here). The short clip is transcribed
inside the request, as short audio is; the long talk goes through the queue. Keep-alives are
due every 300 ms, so many answers below carry some.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from tests.fakes import Fakes, FaultKind, OpenAISegment, Transcription, running_fakes
from tests.server import api_server, env_with, tapeline
from tests.speech import long_recording, speak

pytestmark = pytest.mark.timeout(120)

HELLO = "Hello from the fake OpenAI. This is the second line."
SRT = (
    "1\n00:00:00,000 --> 00:00:01,800\nHello from the fake OpenAI.\n\n"
    "2\n00:00:01,800 --> 00:00:03,500\nThis is the second line.\n"
)
VTT = (
    "WEBVTT\n\n00:00:00.000 --> 00:00:01.800\nHello from the fake OpenAI.\n\n"
    "00:00:01.800 --> 00:00:03.500\nThis is the second line.\n"
)
CHUNK = re.compile(r"chunk-(\d+)")


@dataclass
class Served:
    base: str
    token: str
    fakes: Fakes
    clip: Path
    """About 4 s of speech: one chunk."""
    talk: Path
    """About 25 s of speech: three or four chunks of at most 10 s."""

    def client(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(
            api_key=key or self.token, base_url=f"{self.base}/v1", max_retries=0, timeout=60
        )

    def runs(self) -> list[dict[str, object]]:
        headers = {"Authorization": f"Bearer {self.token}"}
        items = httpx.get(f"{self.base}/api/runs", headers=headers).json()["items"]
        return list(items)


@pytest.fixture(scope="module")
def served(
    subprocess_env: dict[str, str], speech_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    clip = speech_dir / "openai-compat-clip.wav"
    if not clip.exists():
        speak("hello from tapeline, this is the openai compatible endpoint", clip)
    talk = speech_dir / "openai-compat-25s.wav"
    if not talk.exists():
        long_recording(talk, 25 / 60)
    with running_fakes() as fakes:
        env = env_with(
            subprocess_env,
            OPENAI_API_KEY="sk-compat-test-key",
            OPENAI_BASE_URL=fakes.openai_url,
            OPENAI_CHUNK_MS="10000",
            OPENAI_COMPAT_MODELS="whisper-1=openai,fast=local",
            SSE_HEARTBEAT_MS="300",
            TRANSCRIBE_SYNC_MAX_DURATION_MS="10000",
        )
        token = subprocess.run(
            tapeline("token", "create", "sdk"), env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        log = tmp_path_factory.mktemp("openai-compat") / "serve.log"
        with api_server(env, log) as base:
            yield Served(base, token, fakes, clip, talk)


@pytest.fixture
def server(served: Served) -> Served:
    served.fakes.reset()
    return served


def test_models_lists_whisper_1_the_engines_and_the_configured_names(server: Served) -> None:
    client = server.client()
    ids = [model.id for model in client.models.list()]
    assert ids == ["whisper-1", "local", "openai", "fast"]
    model = client.models.retrieve("fast")
    assert (model.id, model.object, model.owned_by) == ("fast", "model", "tapeline")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-5")


def test_a_plain_transcription_is_a_real_run(server: Served) -> None:
    before = len(server.runs())
    with server.clip.open("rb") as audio:
        result = server.client().audio.transcriptions.create(
            model="whisper-1", file=audio, language="en", prompt="Tapeline, OpenAI"
        )
    assert isinstance(result, openai.types.audio.Transcription)
    assert result.text == HELLO
    runs = server.runs()
    assert len(runs) == before + 1
    newest = runs[0]
    assert (newest["engine"], newest["status"], newest["language"]) == ("openai", "succeeded", "en")
    (call,) = server.fakes.openai.transcriptions
    assert (call.prompt, call.language) == ("Tapeline, OpenAI", "en")

    with server.talk.open("rb") as audio:  # too long for the request: queued for the worker
        queued = server.client().audio.transcriptions.create(model="whisper-1", file=audio)
    chunks = len(server.fakes.openai.transcriptions) - 1
    assert chunks >= 3 and queued.text == " ".join([HELLO] * chunks)
    assert server.runs()[0]["status"] == "succeeded" and len(server.runs()) == before + 2


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [("text", HELLO + "\n"), ("srt", SRT), ("vtt", VTT)],
)
def test_text_formats(server: Served, response_format: str, expected: str) -> None:
    with server.clip.open("rb") as audio:
        body = server.client().audio.transcriptions.create(
            model="whisper-1", file=audio, response_format=response_format, temperature=0.2
        )
    assert isinstance(body, str)
    assert without_keepalives(body, response_format) == expected


def without_keepalives(body: str, response_format: str) -> str:
    """Blank lines a long wait adds before the text, or after VTT's first line."""
    if response_format == "vtt":
        return re.sub(r"\AWEBVTT\n+", "WEBVTT\n\n", body)
    return body.lstrip("\n")


def test_verbose_json_has_segments_and_words_when_asked(server: Served) -> None:
    client = server.client()
    with server.clip.open("rb") as audio:
        plain = client.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="verbose_json", temperature=0.3
        )
    assert isinstance(plain, openai.types.audio.TranscriptionVerbose)
    assert plain.text == HELLO and plain.words is None
    assert plain.segments is not None
    assert [(s.id, s.start, s.end, s.text) for s in plain.segments] == [
        (0, 0.0, 1.8, "Hello from the fake OpenAI."),
        (1, 1.8, 3.5, "This is the second line."),
    ]
    assert plain.segments[0].temperature == 0.3 and plain.segments[0].compression_ratio > 0
    assert plain.duration > 3 and plain.usage is not None and plain.usage.seconds >= 4

    with server.clip.open("rb") as audio:
        worded = client.audio.transcriptions.create(
            model="whisper-1",
            file=audio,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
    assert worded.words is not None and worded.segments is not None
    assert [w.word for w in worded.words] == HELLO.split()
    assert worded.words[0].start == 0.0 and worded.words[-1].end == 3.5
    assert all(a.end <= b.start for a, b in zip(worded.words, worded.words[1:], strict=False))

    with server.clip.open("rb") as audio:
        words_only = client.audio.transcriptions.create(
            model="whisper-1",
            file=audio,
            response_format="verbose_json",
            timestamp_granularities=["word"],
        )
    assert words_only.segments is None and words_only.words == worded.words


def test_stream_yields_text_while_the_recording_is_still_being_transcribed(
    server: Served,
) -> None:
    server.fakes.openai.transcribe_to(
        lambda call: Transcription(
            segments=(OpenAISegment(0.1, 0.9, f"chunk {chunk_of(call.file_name)} said this"),)
        )
    )
    # The third chunk's answer dribbles in over a few seconds.
    server.fakes.openai.fail(FaultKind.TRICKLE, after=2, chunk_size=40, interval=0.3)
    events = []
    processing_at_first_delta = None
    with server.talk.open("rb") as audio:
        stream = server.client().audio.transcriptions.create(
            model="whisper-1", file=audio, stream=True
        )
        for event in stream:
            if event.type == "transcript.text.delta" and processing_at_first_delta is None:
                processing_at_first_delta = server.runs()[0]["status"] == "processing"
            events.append(event)
    assert processing_at_first_delta is True
    *deltas, done = events
    assert done.type == "transcript.text.done"
    chunks = len(server.fakes.openai.transcriptions)
    assert chunks >= 3
    assert done.text == " ".join(f"chunk {i} said this" for i in range(chunks))
    assert all(d.type == "transcript.text.delta" for d in deltas) and len(deltas) == chunks
    assert "".join(d.delta for d in deltas) == done.text


def chunk_of(name: str | None) -> int:
    match = CHUNK.search(name or "")
    assert match, f"no chunk in {name!r}"
    return int(match.group(1))


@contextmanager
def raw_transcription(server: Served, fields: dict[str, str]) -> Iterator[httpx.Response]:
    """The clip posted with plain httpx, to see the bytes as they arrive."""
    with (
        server.clip.open("rb") as audio,
        httpx.stream(
            "POST",
            f"{server.base}/v1/audio/transcriptions",
            headers={"Authorization": f"Bearer {server.token}"},
            files={"file": ("clip.wav", audio, "audio/wav")},
            data=fields,
            timeout=60,
        ) as response,
    ):
        yield response


def test_a_long_wait_is_kept_alive_and_answered_in_one_json(server: Served) -> None:
    """Whitespace before the JSON while the provider dribbles its answer (about 2 s)."""
    server.fakes.openai.fail(FaultKind.TRICKLE, chunk_size=150, interval=0.3)
    started = time.monotonic()
    arrivals: list[tuple[float, bytes]] = []
    with raw_transcription(server, {"model": "whisper-1"}) as response:
        assert response.status_code == 200
        for piece in response.iter_raw():
            arrivals.append((time.monotonic() - started, piece))
    body = b"".join(piece for _, piece in arrivals)
    keepalive = body[: len(body) - len(body.lstrip())]
    assert len(keepalive) >= 3 and set(keepalive) == {ord(" ")}
    assert httpx.Response(200, content=body).json()["text"] == HELLO
    waiting = [at for at, piece in arrivals if not piece.strip()]
    assert waiting and waiting[0] < arrivals[-1][0] - 0.5


def test_a_bad_key_is_a_401_in_openai_shape(server: Served) -> None:
    with server.clip.open("rb") as audio, pytest.raises(openai.AuthenticationError) as caught:
        server.client("sk-not-a-tapeline-token").audio.transcriptions.create(
            model="whisper-1", file=audio
        )
    assert caught.value.status_code == 401
    assert caught.value.body == {
        "message": "That token is not valid (unknown or revoked).",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    with pytest.raises(openai.AuthenticationError):
        server.client("sk-not-a-tapeline-token").models.list()


def test_an_unreadable_file_is_a_400_in_openai_shape(server: Served, tmp_path: Path) -> None:
    notes = tmp_path / "notes.mp3"
    notes.write_bytes(b"these are meeting notes, not a recording" * 50)
    before = len(server.runs())
    with notes.open("rb") as audio, pytest.raises(openai.BadRequestError) as caught:
        server.client().audio.transcriptions.create(model="whisper-1", file=audio)
    assert caught.value.body["code"] == "audio_unreadable"  # type: ignore[index]
    assert caught.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert len(server.runs()) == before


def test_bad_fields_name_their_param(server: Served) -> None:
    client = server.client()
    cases = [
        ({"model": "gpt-5"}, "model", "model_not_found"),
        ({"model": "whisper-1", "response_format": "docx"}, "response_format", None),
        ({"model": "whisper-1", "temperature": 1.5}, "temperature", None),
        (
            {"model": "whisper-1", "timestamp_granularities": ["word"]},
            "timestamp_granularities",
            None,
        ),
    ]
    for fields, param, code in cases:
        with server.clip.open("rb") as audio, pytest.raises(openai.BadRequestError) as caught:
            client.audio.transcriptions.create(file=audio, **fields)  # type: ignore[call-overload]
        body = caught.value.body
        assert isinstance(body, dict) and body["param"] == param, body
        assert body["code"] == (code or "invalid_request")


def test_a_failed_run_answers_its_error_and_asks_not_to_retry(server: Served) -> None:
    server.fakes.openai.fail(FaultKind.BAD_AUDIO)
    with server.clip.open("rb") as audio, pytest.raises(openai.BadRequestError) as caught:
        server.client().audio.transcriptions.create(model="whisper-1", file=audio)
    assert caught.value.body["code"] == "engine_refused"  # type: ignore[index]
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert server.runs()[0]["status"] == "failed"


def test_a_client_that_leaves_stops_waiting_not_the_run(server: Served) -> None:
    server.fakes.openai.fail(FaultKind.TRICKLE, chunk_size=100, interval=0.3)
    with raw_transcription(server, {"model": "whisper-1", "response_format": "text"}) as response:
        assert response.status_code == 200
        assert next(response.iter_raw()).strip() == b""  # a keep-alive: the run is on its way
    deadline = time.monotonic() + 30
    while server.runs()[0]["status"] != "succeeded" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.runs()[0]["status"] == "succeeded"
