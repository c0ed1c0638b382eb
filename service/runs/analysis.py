"""Optional analysis of a finished transcript: a title, a short summary and speaker turns.

Runs that ask for it (`analysis: true`) get it from the configured LLM (ANALYSIS_ENGINE:
`gemini` or `openai`; by default whichever has a key, Gemini first) after the transcript, under
the same deadline, retry and error rules as transcription. The answer is validated against a
schema and stored as `transcript_run.analysis`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Protocol

import openai
import pydantic
from google.genai import types
from sqlalchemy.ext.asyncio import AsyncConnection

from service.config import Settings
from service.engines.base import Transcript
from service.engines.cloud import job_deadline
from service.engines.gemini import gemini_client
from service.engines.openai import retry_policy
from service.errors import EngineNotConfigured, UpstreamBadResponse
from service.queries import q

OPENAI_ANALYSIS_MODEL = "gpt-4o-mini"
MAX_TRANSCRIPT_CHARS = 400_000
INSTRUCTIONS = (
    "You analyse meeting and interview transcripts. Answer JSON only, with `title` (at most 10 "
    "words), `summary` (at most 5 sentences, in the transcript's language) and `speaker_turns`: "
    "when the transcript has several speakers, one entry per turn with `speaker`, `start_ms` and "
    "`end_ms` taken from the transcript's timestamps; otherwise an empty list."
)


class SpeakerTurn(pydantic.BaseModel):
    speaker: str
    start_ms: int
    end_ms: int


class Analysis(pydantic.BaseModel):
    """What an analysis holds (and the schema the model is asked to follow)."""

    title: str = ""
    summary: str
    speaker_turns: list[SpeakerTurn] = []


class Analyzer(Protocol):
    async def analyze(self, transcript: Transcript) -> Analysis: ...


def analysis_engine(settings: Settings) -> str | None:
    """Which provider analyses transcripts here, or None when none is configured."""
    choice = (settings.analysis_engine or "").strip().lower()
    if choice in ("gemini", "openai"):
        key = settings.gemini_api_key if choice == "gemini" else settings.openai_api_key
        return choice if key is not None else None
    if choice in ("", "auto"):
        if settings.gemini_api_key is not None:
            return "gemini"
        if settings.openai_api_key is not None:
            return "openai"
    return None


def make_analyzer(settings: Settings) -> Analyzer | None:
    engine = analysis_engine(settings)
    if engine == "gemini":
        return GeminiAnalyzer(settings)
    if engine == "openai":
        return OpenAIAnalyzer(settings)
    return None


def require_analysis(settings: Settings) -> None:
    """Refuse a run asking for analysis on a server that cannot do it, before it is queued."""
    if analysis_engine(settings) is None:
        raise EngineNotConfigured(
            "Analysis needs an LLM: the operator must set GEMINI_API_KEY or OPENAI_API_KEY "
            "(and ANALYSIS_ENGINE, if set, must name one of them)."
        )


def transcript_for_prompt(transcript: Transcript) -> str:
    lines = []
    for seg in transcript.segments:
        who = f" {seg.speaker}:" if seg.speaker else ""
        lines.append(f"[{seg.start_ms}-{seg.end_ms}]{who} {seg.text}")
    text = "\n".join(lines) or transcript.text
    return text[:MAX_TRANSCRIPT_CHARS]


def parse_analysis(text: str | None) -> Analysis:
    if not text:
        raise UpstreamBadResponse("The analysis model answered without content.")
    try:
        return Analysis.model_validate_json(text)
    except pydantic.ValidationError:
        raise UpstreamBadResponse(
            "The analysis model's answer was not the JSON it was asked for."
        ) from None


class GeminiAnalyzer:
    def __init__(self, settings: Settings) -> None:
        assert settings.gemini_api_key is not None
        key = settings.gemini_api_key.get_secret_value()
        self.settings = settings
        self.client = gemini_client(settings, key)
        self.model = settings.analysis_model or settings.gemini_model
        self.policy = retry_policy(settings, key)

    async def analyze(self, transcript: Transcript) -> Analysis:
        config = types.GenerateContentConfig(
            system_instruction=INSTRUCTIONS,
            response_mime_type="application/json",
            response_schema=Analysis,
            temperature=0,
        )

        async def attempt() -> Analysis:
            response = await self.client.models.generate_content(
                model=self.model, contents=transcript_for_prompt(transcript), config=config
            )
            return parse_analysis(response.text)

        return await self.policy.call(
            "gemini analysis",
            attempt,
            deadline=job_deadline(self.settings),
            timeout_s=self.settings.gemini_generate_timeout_ms / 1000,
        )


class OpenAIAnalyzer:
    def __init__(self, settings: Settings) -> None:
        assert settings.openai_api_key is not None
        key = settings.openai_api_key.get_secret_value()
        self.settings = settings
        self.timeout_s = settings.engine_request_timeout_ms / 1000
        self.client = openai.AsyncOpenAI(
            api_key=key, base_url=settings.openai_base_url, max_retries=0, timeout=self.timeout_s
        )
        self.model = settings.analysis_model or OPENAI_ANALYSIS_MODEL
        self.policy = retry_policy(settings, key)

    async def analyze(self, transcript: Transcript) -> Analysis:
        messages: list[Any] = [
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": transcript_for_prompt(transcript)},
        ]

        async def attempt() -> Analysis:
            completion = await self.client.chat.completions.create(
                model=self.model,
                messages=messages,
                response_format={"type": "json_object"},
                temperature=0,
            )
            choices = getattr(completion, "choices", None) or []
            if not choices:
                raise UpstreamBadResponse("The analysis model answered without a choice.")
            return parse_analysis(choices[0].message.content)

        return await self.policy.call(
            "openai analysis",
            attempt,
            deadline=job_deadline(self.settings),
            timeout_s=self.timeout_s,
        )


async def request_analysis(conn: AsyncConnection, run_id: uuid.UUID) -> None:
    await conn.execute(q("request_run_analysis"), {"run_id": run_id})


async def store_analysis(conn: AsyncConnection, run_id: uuid.UUID, analysis: Analysis) -> None:
    await conn.execute(
        q("store_run_analysis"), {"run_id": run_id, "analysis": json.dumps(analysis.model_dump())}
    )
