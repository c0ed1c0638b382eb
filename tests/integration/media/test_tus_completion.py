"""A tus upload's completion is idempotent (issue 15, finding 12): when the run's submission
fails after the audio was assembled, the client's retry returns that audio, and never renames
an empty file over it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.context import open_context
from service.errors import EngineNotConfigured
from service.media import tus
from service.runs.submission import complete_upload
from service.tokens import Principal
from tests.fakes_engines import EchoEngine
from tests.speech import speak


async def body(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_a_completion_retried_after_a_failed_submission_keeps_the_audio(
    db: AsyncEngine, settings: Settings, speech_dir: Path
) -> None:
    data = speak("hello there", speech_dir / "tus-retry.wav").read_bytes()
    henry = Principal(owner="henry")
    echo = EchoEngine()
    async with open_context(settings, engines={"local": echo, "gemini": echo}) as ctx:
        metadata = {"filename": "retry.wav", "engine": "gemini", "autoTranscribe": "1"}
        upload = await tus.create(ctx, henry, len(data), metadata)
        upload = await tus.append(ctx, henry, upload["id"], 0, body(data), None)
        assert tus.is_complete(upload)
        ctx.engines = {"local": echo}  # the operator removed the engine in between
        with pytest.raises(EngineNotConfigured):
            await complete_upload(ctx, upload)

        ctx.engines = {"local": echo, "gemini": echo}
        retried = await tus.append(ctx, henry, upload["id"], len(data), body(b""), None)
        finished = await complete_upload(ctx, retried)
        assert finished["status"] == "completed" and finished["run_id"] is not None
        assert finished["audio_id"] == retried["audio_id"] is not None
        async with ctx.storage.local_file(finished["storage_key"]) as path:
            assert path.read_bytes() == data
        again = await complete_upload(ctx, retried)
        assert (again["audio_id"], again["run_id"]) == (finished["audio_id"], finished["run_id"])
