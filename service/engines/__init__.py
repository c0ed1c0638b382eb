"""The transcription engines this server offers, by name."""

from __future__ import annotations

from service.config import Settings
from service.engines.base import Engine


def available_engines(settings: Settings) -> dict[str, Engine]:
    """Engines that can run here; `local` (offline, pocketsphinx) is always available."""
    from service.engines.local import LocalEngine

    return {"local": LocalEngine()}
