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
