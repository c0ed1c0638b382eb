"""The engine interface: audio in, options and a progress reporter, a transcript out.

Every engine (the offline `local` one, Gemini, OpenAI) implements `Engine`. Errors are raised as
`service.errors.TapelineError` subclasses so their codes reach the run unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word with absolute timestamps, and how sure the model was (0–1)."""

    start_ms: int
    end_ms: int
    text: str
    probability: float | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"start_ms": self.start_ms, "end_ms": self.end_ms, "text": self.text}
        if self.probability is not None:
            data["probability"] = round(self.probability, 4)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Word:
        probability = data.get("probability")
        return cls(
            start_ms=int(data["start_ms"]),
            end_ms=int(data["end_ms"]),
            text=str(data["text"]),
            probability=None if probability is None else float(probability),
        )


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of speech with absolute timestamps in milliseconds, and its words when the
    engine gives them (engines that do not leave `words` empty, and the JSON omits it)."""

    start_ms: int
    end_ms: int
    text: str
    speaker: str | None = None
    words: tuple[Word, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"start_ms": self.start_ms, "end_ms": self.end_ms, "text": self.text}
        if self.speaker is not None:
            data["speaker"] = self.speaker
        if self.words:
            data["words"] = [w.to_json() for w in self.words]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Segment:
        return cls(
            start_ms=int(data["start_ms"]),
            end_ms=int(data["end_ms"]),
            text=str(data["text"]),
            speaker=data.get("speaker"),
            words=tuple(Word.from_json(w) for w in data.get("words", ())),
        )


@dataclass(frozen=True, slots=True)
class Partial:
    """A finished chunk of a run still being transcribed: where it lies, what it says."""

    index: int
    start_ms: int
    end_ms: int
    segments: tuple[Segment, ...]

    def to_json(self) -> dict[str, Any]:
        """The `partial` event's payload, and the `partial` stream message's fields."""
        return {
            "chunkIndex": self.index,
            "startMs": self.start_ms,
            "endMs": self.end_ms,
            "segments": [s.to_json() for s in self.segments],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Partial:
        return cls(
            index=int(data["chunkIndex"]),
            start_ms=int(data["startMs"]),
            end_ms=int(data["endMs"]),
            segments=tuple(Segment.from_json(s) for s in data["segments"]),
        )


def stitched(chunks: Sequence[Partial]) -> list[Segment]:
    """Every chunk's segments, in time order: a finished run's transcript is exactly this."""
    segments = [s for chunk in sorted(chunks, key=lambda c: c.index) for s in chunk.segments]
    return sorted(segments, key=lambda s: (s.start_ms, s.end_ms))


@dataclass(frozen=True, slots=True)
class Transcript:
    """What an engine returns; stored as `transcript_run.transcript` (jsonb)."""

    text: str
    language: str | None
    segments: Sequence[Segment] = field(default_factory=tuple)
    language_probability: float | None = None
    """How sure the engine was of a language it detected (None when given or not known)."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"text": self.text, "language": self.language}
        if self.language_probability is not None:
            data["language_probability"] = round(self.language_probability, 4)
        data["segments"] = [s.to_json() for s in self.segments]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Transcript:
        return cls(
            text=str(data.get("text", "")),
            language=data.get("language"),
            segments=tuple(Segment.from_json(s) for s in data.get("segments", ())),
            language_probability=data.get("language_probability"),
        )

    def without_words(self) -> Transcript:
        """The transcript with segments only: what the run row keeps (words are most of a
        transcript's size; the stored transcript file has them)."""
        segments = tuple(
            Segment(s.start_ms, s.end_ms, s.text, s.speaker) if s.words else s
            for s in self.segments
        )
        return Transcript(self.text, self.language, segments, self.language_probability)

    @classmethod
    def from_segments(
        cls,
        segments: Sequence[Segment],
        language: str | None,
        language_probability: float | None = None,
    ) -> Transcript:
        ordered = tuple(sorted(segments, key=lambda s: (s.start_ms, s.end_ms)))
        return cls(
            text=" ".join(s.text for s in ordered if s.text),
            language=language,
            segments=ordered,
            language_probability=language_probability,
        )


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """What a run asks of an engine."""

    language: str | None = None
    model: str | None = None
    run_id: uuid.UUID | None = None
    """The run being transcribed, so engines can keep finished chunks for a retry."""
    prompt: str | None = None
    """Context for the model: the subject, the spelling of names (Whisper's initial prompt)."""
    hotwords: str | None = None
    """Terms the model should favour, as AssemblyAI's key terms or Deepgram's keyterm."""


class Reporter(Protocol):
    """How an engine tells the run where it stands.

    `stage()` is a persisted transition (a few per run); `progress()` is a cheap tick within the
    current stage, 0.0–1.0 (with an optional line for people, such as a download's size), sent
    to subscribers but not written to the run row; `chunk()` hands
    over a finished stretch of the recording as soon as it is done, so people can read it while
    the rest is still being transcribed. The chunks' segments together must be the transcript
    the engine returns.
    """

    async def stage(self, name: str) -> None: ...

    async def progress(self, fraction: float, detail: str | None = None) -> None: ...

    async def chunk(
        self, index: int, start_ms: int, end_ms: int, segments: Sequence[Segment]
    ) -> None: ...


class Engine(Protocol):
    """A transcription engine. Implementations must honour cancellation (asyncio.CancelledError)."""

    name: str

    async def transcribe(
        self, audio_path: Path, options: EngineOptions, reporter: Reporter
    ) -> Transcript: ...
