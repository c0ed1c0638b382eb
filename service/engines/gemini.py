"""The `gemini` engine: upload through the Files API, wait for ACTIVE, ask for a JSON transcript.

Each network step has its own bound (GEMINI_UPLOAD_TIMEOUT_MS, GEMINI_POLL_TIMEOUT_MS,
GEMINI_GENERATE_TIMEOUT_MS; ENGINE_REQUEST_TIMEOUT_MS per read) and the whole call ends before
JOB_TIMEOUT_MS, so no path waits forever: the upload that once hung at 50% now ends as
`upstream_timeout`. Tapeline names each remote file itself, so it can delete it afterwards in
every outcome (success, failure, cancel) even when the upload's answer never arrived. The
model's answer is validated against a schema, never trusted blindly. Recordings longer than
GEMINI_CHUNK_MS are cut at pauses and the chunks transcribed side by side.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import httpx2
import pydantic
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from google.genai.client import AsyncClient

from service.config import Settings
from service.engines.base import EngineOptions, Reporter, Segment, Transcript
from service.engines.chunk_results import ChunkStore
from service.engines.cloud import ChunkedTranscription, job_deadline, primary_language
from service.engines.openai import retry_policy
from service.engines.retrying import Deadline
from service.engines.splitting import AudioChunk
from service.errors import (
    ContentRefused,
    EngineNotConfigured,
    EngineRefused,
    UpstreamBadResponse,
    UpstreamTimeout,
)

log = logging.getLogger(__name__)

CLEANUP_TIMEOUT_S = 4.0
"""Deleting remote files must fit in the few seconds a cancelled job is given to clean up."""
REFUSED_REASONS = frozenset(
    {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY"}
)
PROMPT = (
    "Transcribe this audio recording verbatim, in the language spoken{language}. Return JSON "
    "with `segments`: consecutive stretches of speech, each with `start_ms` and `end_ms` "
    "(milliseconds from the start of this audio), `text`, and `speaker` (a short label such as "
    '"A", "B" when several people speak, otherwise null), and `language` (ISO 639-1 code). '
    "Do not summarise, translate or add anything that was not said."
)


class GeminiSegment(pydantic.BaseModel):
    start_ms: int
    end_ms: int
    text: str
    speaker: str | None = None


class GeminiTranscript(pydantic.BaseModel):
    """The response schema Gemini is asked to follow (and what its answer is checked against)."""

    segments: list[GeminiSegment]
    language: str | None = None


def gemini_client(settings: Settings, key: str) -> AsyncClient:
    """google-genai's async client, always on its httpx transport.

    The SDK switches to aiohttp whenever aiohttp happens to be importable, and its errors
    then are aiohttp's, which the retry policy does not know; an explicit transport keeps
    it on httpx (proxies from the environment still apply).
    """
    options = types.HttpOptions(
        base_url=settings.gemini_base_url,
        timeout=settings.engine_request_timeout_ms,
        async_client_args={"transport": httpx2.AsyncHTTPTransport()},
    )
    return genai.Client(api_key=key, http_options=options).aio


class GeminiEngine:
    """Transcribes with Gemini's Files API and generateContent (google-genai, async client)."""

    name = "gemini"

    def __init__(self, settings: Settings, store: ChunkStore | None = None) -> None:
        if settings.gemini_api_key is None:
            raise EngineNotConfigured("Set GEMINI_API_KEY to use the gemini engine.")
        key = settings.gemini_api_key.get_secret_value()
        self.settings = settings
        self.client = gemini_client(settings, key)
        self.policy = retry_policy(settings, key)
        self.chunking = ChunkedTranscription(
            self.name,
            max_chunk_ms=settings.gemini_chunk_ms,
            max_bytes=None,
            concurrency=settings.engine_max_concurrent_chunks,
            store=store,
            fmt=settings.gemini_chunk_format,
        )

    async def transcribe(
        self, audio_path: Path, options: EngineOptions, reporter: Reporter
    ) -> Transcript:
        deadline = job_deadline(self.settings)
        model = options.model or self.settings.gemini_model
        language = primary_language(options.language)

        async def send(chunk: AudioChunk, prompt: str | None, limit: Deadline) -> list[Segment]:
            return await self.transcribe_chunk(chunk, model, language, prompt, limit)

        segments = await self.chunking.transcribe(
            audio_path, options.run_id, reporter, deadline, send
        )
        return Transcript.from_segments(segments, language=options.language or language)

    async def transcribe_chunk(
        self,
        chunk: AudioChunk,
        model: str,
        language: str | None,
        previous: str | None,
        deadline: Deadline,
    ) -> list[Segment]:
        names: list[str] = []
        try:
            file = await self.upload(chunk, names, deadline)
            file = await self.wait_until_active(file, deadline)
            return await self.generate(file, model, language, previous, deadline)
        finally:
            await self.delete_files(names)

    async def upload(self, chunk: AudioChunk, names: list[str], deadline: Deadline) -> types.File:
        """Upload under a name of Tapeline's choosing (a fresh one per attempt, all kept in
        `names`), so a file whose upload answer was lost can still be deleted."""

        async def attempt() -> types.File:
            name = f"files/tl-{uuid.uuid4().hex}"
            names.append(name)
            config = types.UploadFileConfig(
                name=name, mime_type=chunk.mime_type, display_name=f"tapeline-{chunk.index}"
            )
            return await self.client.files.upload(file=str(chunk.path), config=config)

        timeout = self.settings.gemini_upload_timeout_ms / 1000
        return await self.policy.call(
            "gemini upload", attempt, deadline=deadline, timeout_s=timeout
        )

    async def wait_until_active(self, file: types.File, deadline: Deadline) -> types.File:
        """Poll files.get until ACTIVE, within GEMINI_POLL_TIMEOUT_MS; FAILED is permanent."""
        polling = deadline.within(self.settings.gemini_poll_timeout_ms / 1000)
        interval = self.settings.gemini_poll_interval_ms / 1000
        request_s = self.settings.engine_request_timeout_ms / 1000
        name = file.name or ""
        while _state(file) == "PROCESSING":
            if polling.remaining() <= interval:
                raise UpstreamTimeout(
                    "Gemini kept the uploaded audio in PROCESSING for longer than "
                    "GEMINI_POLL_TIMEOUT_MS allows."
                )
            await asyncio.sleep(interval)

            async def get() -> types.File:
                return await self.client.files.get(name=name)

            file = await self.policy.call(
                "gemini files.get", get, deadline=polling, timeout_s=request_s
            )
        if _state(file) != "ACTIVE":
            raise EngineRefused(
                "Gemini could not process this audio (its file ended "
                f"{_state(file) or 'without a state'}). Check that the recording plays, "
                "or use another engine."
            )
        return file

    async def generate(
        self,
        file: types.File,
        model: str,
        language: str | None,
        previous: str | None,
        deadline: Deadline,
    ) -> list[Segment]:
        prompt = PROMPT.format(language=f" (expected: {language})" if language else "")
        if previous:
            prompt += f"\nThe recording so far ended with: “{previous}”. Continue from there."
        contents: list[Any] = [
            types.Part.from_uri(file_uri=file.uri or "", mime_type=file.mime_type),
            prompt,
        ]
        config = types.GenerateContentConfig(
            response_mime_type="application/json",
            response_schema=GeminiTranscript,
            temperature=0,
        )

        async def attempt() -> list[Segment]:
            response = await self.client.models.generate_content(
                model=model, contents=contents, config=config
            )
            return segments_of(response)

        timeout = self.settings.gemini_generate_timeout_ms / 1000
        return await self.policy.call(
            "gemini generate", attempt, deadline=deadline, timeout_s=timeout
        )

    async def delete_files(self, names: list[str]) -> None:
        """Delete every file this chunk may have created; a name never uploaded answers 403."""
        if not names:
            return

        async def delete(name: str) -> None:
            try:
                await self.client.files.delete(name=name)
            except genai_errors.ClientError as exc:
                if exc.code not in (403, 404):
                    raise

        results = []
        try:
            async with asyncio.timeout(CLEANUP_TIMEOUT_S):
                results = await asyncio.gather(*(delete(n) for n in names), return_exceptions=True)
        except TimeoutError:
            results = [TimeoutError()]
        for result in results:
            if isinstance(result, BaseException):
                log.warning(
                    "could not delete Gemini files %s (%s); Gemini removes them after 48 hours",
                    ", ".join(names),
                    type(result).__name__,
                )


def segments_of(response: types.GenerateContentResponse) -> list[Segment]:
    """Chunk-relative segments from Gemini's answer: refused, malformed or valid."""
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        raise ContentRefused()
    candidates = response.candidates or []
    if not candidates:
        raise UpstreamBadResponse("Gemini answered without a transcript.")
    reason = candidates[0].finish_reason
    reason_name = getattr(reason, "value", None) or str(reason or "")
    if reason_name in REFUSED_REASONS:
        raise ContentRefused()
    text = response.text
    if not text:
        raise UpstreamBadResponse("Gemini answered without a transcript.")
    try:
        parsed = GeminiTranscript.model_validate_json(text)
    except pydantic.ValidationError:
        raise UpstreamBadResponse(
            "Gemini's answer was not the JSON transcript it was asked for "
            f"(finish reason {reason_name or 'unknown'})."
        ) from None
    return [
        Segment(s.start_ms, max(s.start_ms, s.end_ms), s.text, s.speaker or None)
        for s in parsed.segments
    ]


def _state(file: types.File) -> str:
    state = file.state
    return str(getattr(state, "value", state) or "")
