"""The `openai` engine: OpenAI's audio transcriptions (whisper-1, gpt-4o-transcribe, ...), or
any server speaking the same API (OPENAI_BASE_URL: speaches, LocalAI, vLLM, Groq).

The API refuses files over 25 MB, so every recording goes through `ChunkedTranscription`: cut
at pauses into FLAC (or MP3, OPENAI_CHUNK_FORMAT) chunks under OPENAI_MAX_UPLOAD_BYTES, sent
side by side, each with the previous chunk's last words as its prompt when that chunk is
already back. The SDK's own
retries are off (`max_retries=0`): `RetryPolicy` retries instead, within the job's deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import openai

from service.config import Settings
from service.engines.base import EngineOptions, Reporter, Segment, Transcript, Word
from service.engines.chunk_results import ChunkStore
from service.engines.cloud import ChunkedTranscription, job_deadline, primary_language
from service.engines.retrying import Deadline, RetryPolicy
from service.engines.splitting import AudioChunk
from service.errors import EngineNotConfigured, UpstreamBadResponse

VERBOSE_MODELS = ("whisper",)
"""Models answering `verbose_json` with segments; the gpt-4o transcribers answer text only."""


def retry_policy(settings: Settings, *secrets: str) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.engine_max_attempts,
        base_delay_s=settings.engine_retry_base_ms / 1000,
        max_delay_s=settings.engine_retry_max_ms / 1000,
        secrets=secrets,
    )


class OpenAIEngine:
    """Transcribes with an OpenAI-compatible `/audio/transcriptions` endpoint."""

    name = "openai"

    def __init__(self, settings: Settings, store: ChunkStore | None = None) -> None:
        if settings.openai_api_key is None:
            raise EngineNotConfigured("Set OPENAI_API_KEY to use the openai engine.")
        key = settings.openai_api_key.get_secret_value()
        self.settings = settings
        self.request_timeout_s = settings.engine_request_timeout_ms / 1000
        self.client = openai.AsyncOpenAI(
            api_key=key,
            base_url=settings.openai_base_url,
            max_retries=0,
            timeout=self.request_timeout_s,
        )
        self.policy = retry_policy(settings, key)
        self.chunking = ChunkedTranscription(
            self.name,
            max_chunk_ms=settings.openai_chunk_ms,
            max_bytes=settings.openai_max_upload_bytes,
            concurrency=settings.engine_max_concurrent_chunks,
            store=store,
            fmt=settings.openai_chunk_format,
        )

    async def transcribe(
        self, audio_path: Path, options: EngineOptions, reporter: Reporter
    ) -> Transcript:
        deadline = job_deadline(self.settings)
        model = options.model or self.settings.openai_transcribe_model
        language = primary_language(options.language)

        async def send(chunk: AudioChunk, prompt: str | None, limit: Deadline) -> list[Segment]:
            data = await asyncio.to_thread(chunk.path.read_bytes)  # up to 25 MB: off the loop

            async def attempt() -> list[Segment]:
                guide = prompt or options.prompt
                response = await self.client.audio.transcriptions.create(
                    **request(model, language, guide, (chunk.path.name, data, chunk.mime_type))
                )
                return segments_of(response, chunk.end_ms - chunk.start_ms)

            return await self.policy.call(
                "openai transcription", attempt, deadline=limit, timeout_s=self.request_timeout_s
            )

        segments = await self.chunking.transcribe(
            audio_path, options.run_id, reporter, deadline, send
        )
        return Transcript.from_segments(segments, language=options.language or language)


def request(
    model: str, language: str | None, prompt: str | None, file: tuple[str, bytes, str]
) -> dict[str, Any]:
    """The transcription request's arguments: segments from whisper, text from the others."""
    args: dict[str, Any] = {"file": file, "model": model}
    if model.startswith(VERBOSE_MODELS):
        args["response_format"] = "verbose_json"
        args["timestamp_granularities"] = ["segment", "word"]
    else:
        args["response_format"] = "json"
    if language:
        args["language"] = language
    if prompt:
        args["prompt"] = prompt
    return args


def segments_of(response: Any, chunk_ms: int) -> list[Segment]:
    """Segments (chunk-relative ms) from a transcription; never trusts the shape blindly."""
    text = getattr(response, "text", None)
    if not isinstance(text, str):
        raise UpstreamBadResponse(
            "The transcription server answered without a transcript (not the JSON it promises)."
        )
    raw: Sequence[Any] = getattr(response, "segments", None) or ()
    words = words_of(response)
    segments = []
    for seg in raw:
        start, end, said = getattr(seg, "start", None), getattr(seg, "end", None), seg.text
        if not isinstance(start, int | float) or not isinstance(end, int | float):
            raise UpstreamBadResponse("The transcription server sent segments without times.")
        start_ms, end_ms = round(start * 1000), round(end * 1000)
        inside = tuple(w for w in words if start_ms <= w.start_ms < max(end_ms, start_ms + 1))
        segments.append(Segment(start_ms, end_ms, str(said or ""), words=inside))
    if not segments and text.strip():
        segments.append(Segment(0, chunk_ms, text, words=tuple(words)))
    return segments


def words_of(response: Any) -> list[Word]:
    """The word timestamps a whisper model sends (chunk-relative ms); none is fine, a word
    without times is skipped rather than trusted."""
    words = []
    for item in getattr(response, "words", None) or ():
        start, end, said = (getattr(item, k, None) for k in ("start", "end", "word"))
        if isinstance(start, int | float) and isinstance(end, int | float) and said:
            start_ms = round(start * 1000)
            words.append(Word(start_ms, max(start_ms, round(end * 1000)), str(said).strip()))
    return words
