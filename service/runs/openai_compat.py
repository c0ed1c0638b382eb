"""OpenAI's audio transcription API in Tapeline's terms: which engine a model name means, what
a request asks for, and the answers in OpenAI's shapes (`json`, `text`, `srt`, `vtt`,
`verbose_json`, the stream's events, the error object), so the official SDKs parse them into
their own types."""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from service.config import Settings
from service.engines.base import Segment, Transcript
from service.errors import InvalidRequest, ModelNotFound, TapelineError
from service.runs.formats import to_srt, to_vtt

DEFAULT_MODEL = "whisper-1"
RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("segment", "word")
MAX_LANGUAGE_CHARS = 35
MAX_PROMPT_CHARS = 4_000
STARTED = int(time.time())
"""`created` of every model in GET /v1/models: when this process started serving them."""

MEDIA_TYPES = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "text/plain; charset=utf-8",
    "vtt": "text/plain; charset=utf-8",
}
KEEPALIVE = {
    "json": b" ",
    "verbose_json": b" ",
    "text": b"\n",
    "srt": b"\n",
    "vtt": b"\n",
}
"""What is sent while a run is on its way: whitespace the format ignores (before JSON, blank
lines before the first SRT cue or after the WEBVTT line). Plain text gets leading newlines."""
VTT_HEADER = "WEBVTT\n"


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """A `/v1` model name and the engine (and the engine's own model, if any) it runs on."""

    name: str
    engine: str
    model: str | None = None


def model_routes(settings: Settings, engines: Iterable[str]) -> dict[str, ModelRoute]:
    """Every model name this server answers to: `whisper-1` (the default engine unless
    OPENAI_COMPAT_MODELS says otherwise), each available engine by its own name, and the
    names OPENAI_COMPAT_MODELS maps; only those whose engine is available here."""
    available = set(engines)
    routes = {DEFAULT_MODEL: ModelRoute(DEFAULT_MODEL, settings.tapeline_engine)}
    for engine in sorted(available):
        routes.setdefault(engine, ModelRoute(engine, engine))
    for name, target in settings.openai_compat_models.items():
        engine, _, model = target.partition(":")
        routes[name] = ModelRoute(name, engine, model or None)
    return {name: route for name, route in routes.items() if route.engine in available}


def models_json(routes: Mapping[str, ModelRoute]) -> dict[str, Any]:
    """GET /v1/models: OpenAI's list of model objects."""
    return {"object": "list", "data": [model_json(name) for name in routes]}


def model_json(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": STARTED, "owned_by": "tapeline"}


@dataclass(frozen=True, slots=True)
class TranscriptionRequest:
    """The form fields of POST /v1/audio/transcriptions, checked."""

    route: ModelRoute
    language: str | None = None
    prompt: str | None = None
    temperature: float = 0.0
    response_format: str = "json"
    granularities: tuple[str, ...] = ()
    stream: bool = False


def transcription_request(
    fields: Mapping[str, str], routes: Mapping[str, ModelRoute]
) -> TranscriptionRequest:
    """Read the form as OpenAI documents it; a bad field is a 400 naming it (`param`).

    Fields OpenAI has and Tapeline does not use (`include[]`, `chunking_strategy`, …) are
    ignored, as OpenAI ignores what a model does not support.
    """
    name = (fields.get("model") or "").strip()
    if not name:
        raise InvalidRequest("`model` is required (see GET /v1/models).", param="model")
    route = routes.get(name)
    if route is None:
        known = ", ".join(routes)
        raise ModelNotFound(
            f"The model {name!r} does not exist here. Known: {known}.", param="model"
        )
    response_format = fields.get("response_format") or "json"
    if response_format not in RESPONSE_FORMATS:
        raise InvalidRequest(
            f"`response_format` must be one of: {', '.join(RESPONSE_FORMATS)}.",
            param="response_format",
        )
    raw = fields.get("timestamp_granularities[]") or fields.get("timestamp_granularities") or ""
    granularities = tuple(dict.fromkeys(g.strip() for g in raw.split(",") if g.strip()))
    if any(g not in GRANULARITIES for g in granularities):
        raise InvalidRequest(
            "`timestamp_granularities[]` may be `segment` and `word`.",
            param="timestamp_granularities",
        )
    if granularities and response_format != "verbose_json":
        raise InvalidRequest(
            "`response_format` must be `verbose_json` to use timestamp granularities.",
            param="timestamp_granularities",
        )
    return TranscriptionRequest(
        route=route,
        language=_short(fields, "language", MAX_LANGUAGE_CHARS),
        prompt=_short(fields, "prompt", MAX_PROMPT_CHARS),
        temperature=_temperature(fields.get("temperature")),
        response_format=response_format,
        granularities=granularities,
        stream=_flag(fields.get("stream"), "stream"),
    )


def _short(fields: Mapping[str, str], name: str, limit: int) -> str | None:
    value = (fields.get(name) or "").strip()
    if len(value) > limit:
        raise InvalidRequest(f"`{name}` must be at most {limit} characters.", param=name)
    return value or None


def _temperature(raw: str | None) -> float:
    if raw is None or raw.strip() == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise InvalidRequest("`temperature` must be a number from 0 to 1.", param="temperature")
    return value


def _flag(raw: str | None, name: str) -> bool:
    value = (raw or "false").strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidRequest(f"`{name}` must be true or false.", param=name)
    return value in ("true", "1")


# --- answers --------------------------------------------------------------------------------


def rendered(transcript: Transcript, request: TranscriptionRequest, duration_ms: int) -> str:
    """The finished transcript in the asked `response_format`, as OpenAI writes it."""
    fmt = request.response_format
    if fmt == "text":
        return transcript.text + "\n"
    if fmt == "srt":
        return to_srt(transcript)
    if fmt == "vtt":
        return to_vtt(transcript)
    if fmt == "json":
        data: dict[str, Any] = {"text": transcript.text, "usage": usage(duration_ms)}
    else:
        data = verbose_json(transcript, request, duration_ms)
    return json.dumps(data, ensure_ascii=False)


def usage(duration_ms: int) -> dict[str, Any]:
    """Billed by duration, like whisper-1: the recording's whole seconds, rounded up."""
    return {"type": "duration", "seconds": math.ceil(duration_ms / 1000)}


def verbose_json(
    transcript: Transcript, request: TranscriptionRequest, duration_ms: int
) -> dict[str, Any]:
    """`verbose_json`: segments unless only words were asked for, words when asked for."""
    data: dict[str, Any] = {
        "task": "transcribe",
        "language": transcript.language or request.language or "",
        "duration": round(duration_ms / 1000, 3),
        "text": transcript.text,
    }
    granularities = request.granularities or ("segment",)
    if "segment" in granularities:
        data["segments"] = [
            segment_json(i, s, request.temperature) for i, s in enumerate(transcript.segments)
        ]
    if "word" in granularities:
        data["words"] = [
            {"word": w.text, "start": w.start_ms / 1000, "end": w.end_ms / 1000}
            for s in transcript.segments
            for w in s.words
        ]
    data["usage"] = usage(duration_ms)
    return data


def segment_json(index: int, segment: Segment, temperature: float) -> dict[str, Any]:
    """A segment with every field whisper's has. Tapeline has no tokens or no-speech
    probability to give (empty, 0); `avg_logprob` comes from the words' probabilities when the
    engine gave them, and `compression_ratio` is computed from the text as whisper does."""
    probabilities = [w.probability for w in segment.words if w.probability]
    logprob = sum(map(math.log, probabilities)) / len(probabilities) if probabilities else 0.0
    encoded = segment.text.encode()
    ratio = len(encoded) / len(zlib.compress(encoded)) if encoded else 0.0
    return {
        "id": index,
        "seek": segment.start_ms // 10,
        "start": segment.start_ms / 1000,
        "end": segment.end_ms / 1000,
        "text": segment.text,
        "tokens": [],
        "temperature": temperature,
        "avg_logprob": round(logprob, 4),
        "compression_ratio": round(ratio, 4),
        "no_speech_prob": 0.0,
    }


def delta_event(delta: str) -> dict[str, Any]:
    return {"type": "transcript.text.delta", "delta": delta}


def done_event(text: str) -> dict[str, Any]:
    return {"type": "transcript.text.done", "text": text}


class DeltaText:
    """The stream's text deltas, in the recording's order, from partial transcripts that may
    finish in any order and come again after a retry: a chunk is sent once, and only when
    every chunk before it has been, so the deltas read as the text does."""

    def __init__(self) -> None:
        self.sent = ""
        self.next_index = 0
        self.waiting: dict[int, str] = {}

    def add(self, index: int, texts: Sequence[str]) -> list[str]:
        if index < self.next_index or index in self.waiting:
            return []
        self.waiting[index] = " ".join(t for t in texts if t)
        deltas = []
        while self.next_index in self.waiting:
            text = self.waiting.pop(self.next_index)
            self.next_index += 1
            if text:
                delta = f" {text}" if self.sent else text
                self.sent += delta
                deltas.append(delta)
        return deltas

    def rest(self, final_text: str) -> str | None:
        """What the final text has beyond the deltas sent, if it continues them."""
        if final_text.startswith(self.sent) and len(final_text) > len(self.sent):
            return final_text[len(self.sent) :]
        return None


# --- errors ---------------------------------------------------------------------------------


def _error_types() -> dict[str, type[TapelineError]]:
    found: dict[str, type[TapelineError]] = {}
    pending: list[type[TapelineError]] = [TapelineError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


def run_error(code: str | None, message: str | None) -> TapelineError:
    """A failed or cancelled run's stored error as the TapelineError it was (for its status)."""
    cls = _error_types().get(code or "", TapelineError)
    return cls(message or None)


def openai_status(error: TapelineError) -> int:
    """OpenAI answers a file or field it cannot use with 400, never 415 or 422; tools catch
    `BadRequestError` for that, so Tapeline's 415 and 422 are 400 here (the code says which)."""
    return 400 if error.http_status in (415, 422) else error.http_status


def openai_type(status: int) -> str:
    if status == 401:
        return "invalid_request_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_json(error: TapelineError) -> dict[str, Any]:
    """OpenAI's error object; `code` is Tapeline's stable code, except a bad key, which is
    `invalid_api_key` as OpenAI says it."""
    status = openai_status(error)
    return {
        "error": {
            "message": error.message,
            "type": openai_type(status),
            "param": error.details.get("param"),
            "code": "invalid_api_key" if status == 401 else error.code,
        }
    }
