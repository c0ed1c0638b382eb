"""The transcription engines this server offers, by name."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.engines.base import Engine


def available_engines(settings: Settings, db: AsyncEngine | None = None) -> dict[str, Engine]:
    """Engines that can run here; `local` (offline, pocketsphinx) is always available, `gemini`
    and `openai` when their API key is set. With `db`, cloud engines keep finished chunks."""
    from service.engines.local import LocalEngine

    engines: dict[str, Engine] = {"local": LocalEngine()}
    engines.update(cloud_engines(settings, db))
    return engines


def cloud_engines(settings: Settings, db: AsyncEngine | None = None) -> dict[str, Engine]:
    from service.engines.chunk_results import ChunkStore
    from service.engines.gemini import GeminiEngine
    from service.engines.openai import OpenAIEngine

    store = ChunkStore(db) if db is not None else None
    engines: dict[str, Engine] = {}
    if settings.gemini_api_key is not None:
        engines["gemini"] = GeminiEngine(settings, store)
    if settings.openai_api_key is not None:
        engines["openai"] = OpenAIEngine(settings, store)
    return engines


def describe_default(settings: Settings) -> str:
    """The default engine and its model as `serve` announces it: what runs, and whether it can."""
    name = settings.tapeline_engine
    if name == "local":
        return "local (pocketsphinx, offline, English; its model ships with Tapeline)"
    if name == "gemini":
        ready = "" if settings.gemini_api_key else "; GEMINI_API_KEY is not set, runs are refused"
        return f"gemini ({settings.gemini_model}{ready})"
    if name == "openai":
        where = settings.openai_base_url or "OpenAI"
        ready = "" if settings.openai_api_key else "; OPENAI_API_KEY is not set, runs are refused"
        return f"openai ({settings.openai_transcribe_model} at {where}{ready})"
    return f"{name} (unknown: runs asking for the default engine are refused)"
