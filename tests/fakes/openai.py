"""A fake of the OpenAI API: audio transcriptions and chat completions, enough for the real
openai SDK pointed at it with `base_url=fakes.openai_url` (that is `<url>/openai/v1`).

`POST /v1/audio/transcriptions` is multipart: `file`, `model`, and optional `prompt`,
`language`, `response_format` (json | verbose_json | text) and `timestamp_granularities[]`.
Answers follow the API: `json` is `{"text", "usage"}`; `verbose_json` adds `task`, `language`
(a full name such as "english", not a code), `duration` and `segments` (seconds, floats);
`text` is plain text. Like the real service it refuses files over 25 MiB (413) and
`verbose_json` from the gpt-4o transcription models (400).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from tests.fakes.asgi import RawResponse
from tests.fakes.base import FakeService
from tests.fakes.faults import Fault, FaultKind
from tests.fakes.injector import record_of
from tests.fakes.recorder import RecordedRequest

PREFIX = "/openai"
MAX_FILE_BYTES = 25 * 1024 * 1024
VERBOSE_ONLY_MODELS = ("whisper",)
"""Models whose names start so accept verbose_json; the gpt-4o transcribers answer json only."""


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcription:
    """What the fake transcribes any audio to."""

    segments: Sequence[Segment] = (
        Segment(0.0, 1.8, "Hello from the fake OpenAI."),
        Segment(1.8, 3.5, "This is the second line."),
    )
    language: str = "english"
    duration: float | None = None
    """Defaults to the end of the last segment."""
    text: str | None = None
    """Defaults to the segments' texts joined by spaces."""

    @property
    def full_text(self) -> str:
        if self.text is not None:
            return self.text
        return " ".join(s.text.strip() for s in self.segments)

    @property
    def seconds(self) -> float:
        if self.duration is not None:
            return self.duration
        return self.segments[-1].end if self.segments else 0.0


@dataclass(frozen=True)
class TranscriptionCall:
    """One transcription request as the fake saw it (faulted ones included)."""

    model: str | None
    prompt: str | None
    response_format: str | None
    language: str | None
    timestamp_granularities: list[str]
    file_name: str | None
    file_size: int | None
    fault: FaultKind | None

    @classmethod
    def of(cls, record: RecordedRequest) -> TranscriptionCall:
        upload = record.files.get("file")
        return cls(
            model=record.field("model"),
            prompt=record.field("prompt"),
            response_format=record.field("response_format"),
            language=record.field("language"),
            timestamp_granularities=record.form.get("timestamp_granularities[]", []),
            file_name=upload.filename if upload else None,
            file_size=upload.size if upload else None,
            fault=record.fault,
        )


def openai_error(
    message: str, type_: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _refuse(
    status: int, message: str, code: str | None = None, param: str | None = None
) -> Response:
    return JSONResponse(
        openai_error(message, "invalid_request_error", code, param), status_code=status
    )


ChatContent = str | Callable[[dict[str, Any]], str]
TranscriptionSource = Transcription | Callable[[TranscriptionCall], Transcription]


@dataclass
class _Settings:
    transcription: TranscriptionSource = field(default_factory=Transcription)
    chat_content: ChatContent = '{"summary": "A fake analysis."}'
    max_file_bytes: int = MAX_FILE_BYTES


class OpenAIFake(FakeService):
    """OpenAI transcriptions + chat. Configure with `transcribe_to`, `chat_reply`, `fail`."""

    name = "openai"
    prefixes = (f"{PREFIX}/",)

    def __init__(self) -> None:
        super().__init__()
        self.settings = _Settings()

    def reset(self) -> None:
        super().reset()
        self.settings = _Settings()

    # -- configuration -------------------------------------------------------------------

    def transcribe_to(self, transcription: TranscriptionSource) -> None:
        """What every transcription answers (or a function of the request deciding it)."""
        self.settings.transcription = transcription

    def chat_reply(self, content: str | dict[str, Any] | ChatContent) -> None:
        """The assistant message content (a dict is sent as its JSON), or a function of the
        request body returning it."""
        self.settings.chat_content = json.dumps(content) if isinstance(content, dict) else content

    def limit_file_size(self, max_bytes: int) -> None:
        """Lower the 25 MiB upload limit, to exercise the 413 without uploading 25 MiB."""
        self.settings.max_file_bytes = max_bytes

    # -- inspection ------------------------------------------------------------------------

    @property
    def transcriptions(self) -> list[TranscriptionCall]:
        return [TranscriptionCall.of(r) for r in self.requests_to("/v1/audio/transcriptions")]

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return self.requests_to("/v1/chat/completions")

    # -- faults ------------------------------------------------------------------------------

    def provider_error(self, fault: Fault) -> RawResponse:
        kind = fault.kind
        if kind is FaultKind.UNAVAILABLE:
            message = "The server is overloaded or not ready yet."
            return RawResponse.json(
                fault.status or 503, openai_error(message, "server_error", None)
            )
        if kind is FaultKind.RATE_LIMITED:
            delay = f"{fault.retry_after:g}"
            message = f"Rate limit reached for requests. Please try again in {delay}s."
            body = openai_error(message, "requests", "rate_limit_exceeded")
            return RawResponse.json(fault.status or 429, body, retry_after=delay)
        if kind is FaultKind.UNAUTHORIZED:
            message = (
                "Incorrect API key provided: sk-fake*****. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            )
            body = openai_error(message, "invalid_request_error", "invalid_api_key")
            return RawResponse.json(fault.status or 401, body)
        if kind is FaultKind.BAD_AUDIO:
            message = "The audio file could not be decoded or its format is not supported."
            body = openai_error(message, "invalid_request_error", None)
            return RawResponse.json(fault.status or 400, body)
        raise AssertionError(f"not a status fault: {kind}")

    # -- routes ------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        routes = [
            Route("/v1/audio/transcriptions", self._transcribe, methods=["POST"]),
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
        ]
        return [Mount(PREFIX, routes=routes)]

    async def _transcribe(self, request: Request) -> Response:
        record = record_of(request)
        call = TranscriptionCall.of(record)
        if call.file_size is None or not call.model:
            return _refuse(400, "A multipart `file` and a `model` are required.", param="file")
        if call.file_size > self.settings.max_file_bytes:
            limit = self.settings.max_file_bytes
            message = (
                f"Maximum content size limit ({limit}) exceeded ({record.body_size} bytes read)"
            )
            return JSONResponse(openai_error(message, "server_error", None), status_code=413)
        response_format = call.response_format or "json"
        verbose_ok = call.model.startswith(VERBOSE_ONLY_MODELS)
        if response_format == "verbose_json" and not verbose_ok:
            message = (
                f"response_format 'verbose_json' is not compatible with model '{call.model}'. "
                "Use 'json' or 'text' instead."
            )
            return _refuse(400, message, "unsupported_value", "response_format")
        source = self.settings.transcription
        result = source(call) if callable(source) else source
        usage = {"type": "duration", "seconds": round(result.seconds)}
        if response_format == "json":
            return JSONResponse({"text": result.full_text, "usage": usage})
        if response_format == "text":
            return PlainTextResponse(result.full_text + "\n")
        if response_format == "verbose_json":
            return JSONResponse(_verbose(result, call.timestamp_granularities, usage))
        return _refuse(400, f"The fake does not answer response_format {response_format!r}.")

    async def _chat(self, request: Request) -> Response:
        body = record_of(request).json
        if not isinstance(body, dict) or not body.get("messages"):
            return _refuse(400, "`messages` is required.", param="messages")
        produce = self.settings.chat_content
        content = produce(body) if callable(produce) else produce
        return JSONResponse(
            {
                "id": f"chatcmpl-{secrets.token_hex(8)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "unknown"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
            }
        )


def _verbose(
    result: Transcription, granularities: list[str], usage: dict[str, Any]
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "task": "transcribe",
        "language": result.language,
        "duration": result.seconds,
        "text": result.full_text,
        "usage": usage,
    }
    if not granularities or "segment" in granularities:
        payload["segments"] = [
            {
                "id": index,
                "seek": 0,
                "start": s.start,
                "end": s.end,
                "text": " " + s.text.strip(),
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": -0.25,
                "compression_ratio": 1.2,
                "no_speech_prob": 0.01,
            }
            for index, s in enumerate(result.segments)
        ]
    if "word" in granularities:
        payload["words"] = [word for s in result.segments for word in _words(s)]
    return payload


def _words(segment: Segment) -> list[dict[str, Any]]:
    """Spread a segment's words evenly over its time span."""
    words = segment.text.split()
    step = (segment.end - segment.start) / max(1, len(words))
    return [
        {
            "word": w,
            "start": round(segment.start + i * step, 3),
            "end": round(segment.start + (i + 1) * step, 3),
        }
        for i, w in enumerate(words)
    ]
