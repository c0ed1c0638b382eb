"""Engines that misbehave on purpose, for worker and API tests (never used in production), and
a reporter that remembers what an engine told it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from service.engines.base import EngineOptions, Partial, Reporter, Segment, Transcript, stitched


@dataclass
class RecordingReporter:
    """A reporter for engine calls outside a job: stages, progress and chunks, in order."""

    stages: list[str] = field(default_factory=list)
    fractions: list[float] = field(default_factory=list)
    chunks: list[Partial] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    async def stage(self, name: str) -> None:
        self.stages.append(name)
        self.calls.append(f"stage {name}")

    details: list[str] = field(default_factory=list)

    async def progress(self, fraction: float, detail: str | None = None) -> None:
        self.fractions.append(fraction)
        if detail is not None:
            self.details.append(detail)
        self.calls.append("progress")

    async def chunk(
        self, index: int, start_ms: int, end_ms: int, segments: Sequence[Segment]
    ) -> None:
        self.chunks.append(Partial(index, start_ms, end_ms, tuple(segments)))
        self.calls.append("chunk")

    def chunk_segments(self) -> list[Segment]:
        """Every reported chunk's segments, in time order: what the transcript must be."""
        return stitched(self.chunks)


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

    def __init__(self, errors: Sequence[Exception]) -> None:
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
