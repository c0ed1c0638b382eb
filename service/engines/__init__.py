"""The transcription engines this server offers, by name."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.engines.base import Engine


def available_engines(settings: Settings, db: AsyncEngine | None = None) -> dict[str, Engine]:
    """Engines that can run here; `local` (offline, Whisper) is always available, `gemini`
    and `openai` when their API key is set. With `db`, cloud engines keep finished chunks."""
    from service.engines.local import LocalEngine

    engines: dict[str, Engine] = {"local": LocalEngine(settings)}
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


def job_needs(settings: Settings, engine: str, model: str | None) -> str:
    """What a run's job needs of its worker: `local/<model>` (a worker must hold that model),
    or the engine's name (a worker with that engine's key)."""
    if engine == "local":
        from service.engines.models import model_for_run

        return f"local/{model_for_run(settings, model)}"
    return engine


def worker_serves(settings: Settings, engines: Mapping[str, Engine]) -> list[str]:
    """What this worker claims: TAPELINE_WORKER_ENGINES (default every engine configured here),
    the local engine with its default model and each one WHISPER_MODELS_ALLOWED names."""
    names = settings.tapeline_worker_engines or list(engines)
    serves: list[str] = []
    for name in names:
        if name not in engines:
            continue
        if name == "local":
            models = dict.fromkeys([settings.whisper_model, *settings.whisper_models_allowed])
            serves.extend(f"local/{model}" for model in models)
        else:
            serves.append(name)
    return serves


def describe_default(settings: Settings) -> str:
    """The default engine and its model as `serve` announces it: what runs, and whether it can."""
    name = settings.tapeline_engine
    if name == "local":
        from service.engines.models import find_model

        model = settings.whisper_model
        found = find_model(settings, model)
        state = f"present in {found}" if found else "downloaded on first use (tapeline models pull)"
        return f"local (faster-whisper, model {model}: {state})"
    if name == "gemini":
        ready = "" if settings.gemini_api_key else "; GEMINI_API_KEY is not set, runs are refused"
        return f"gemini ({settings.gemini_model}{ready})"
    if name == "openai":
        where = settings.openai_base_url or "OpenAI"
        ready = "" if settings.openai_api_key else "; OPENAI_API_KEY is not set, runs are refused"
        return f"openai ({settings.openai_transcribe_model} at {where}{ready})"
    return f"{name} (unknown: runs asking for the default engine are refused)"
