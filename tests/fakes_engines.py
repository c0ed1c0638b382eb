"""Engines that misbehave on purpose, for worker and API tests (never used in production)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from service.engines.base import EngineOptions, Reporter, Segment, Transcript
from service.errors import TapelineError


class EchoEngine:
    """Answers at once with a fixed transcript, after going through the stages."""

    name = "echo"

    def __init__(
        self, text: str = "hello from the echo engine", delay_s: float = 0.0, ticks: int = 4
    ) -> None:
        self.text = text
        self.delay_s = delay_s
        self.ticks = ticks
        self.calls = 0

    async def transcribe(
        self, audio_path: Path, options: EngineOptions, reporter: Reporter
    ) -> Transcript:
        self.calls += 1
        await reporter.stage("analyzing")
        for step in range(1, self.ticks + 1):
            await asyncio.sleep(self.delay_s / self.ticks)
            await reporter.progress(step / self.ticks)
        return Transcript.from_segments([Segment(0, 1000, self.text)], language="en")


class HangingEngine:
    """Never answers, like an upload stuck at 50%."""

    name = "hang"

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()

    async def transcribe(
        self, audio_path: Path, options: EngineOptions, reporter: Reporter
    ) -> Transcript:
        await reporter.stage("analyzing")
        await reporter.progress(0.5)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        raise AssertionError("unreachable")


class ScriptedEngine:
    """Raises the given errors on successive calls, then succeeds."""

    name = "scripted"

    def __init__(self, errors: Sequence[TapelineError]) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def transcribe(
        self, audio_path: Path, options: EngineOptions, reporter: Reporter
    ) -> Transcript:
        self.calls += 1
        await reporter.stage("analyzing")
        if self.errors:
            raise self.errors.pop(0)
        return Transcript.from_segments([Segment(0, 500, "finally")], language="en")
