"""The transcription job: what a worker does with a claimed `transcribe_*` job.

Stages and their share of the progress bar: fetching 0–10 (only for a run submitted with an
audio URL: bytes received of Content-Length), uploading 0–10 (preparing 5–10 while the local
engine downloads its model), analyzing 10–90 (per-chunk ticks), finalizing 90–100. A stage
change is a persisted transition; a tick is a NOTIFY only; a finished chunk is a persisted
`partial` event, so its text can be read before the run ends.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service import logs
from service.database import Row
from service.engines.base import Engine, EngineOptions, Partial, Segment, Transcript, Word
from service.errors import (
    AudioMissing,
    EngineNotConfigured,
    RunCancelled,
    StorageWriteFailed,
    TapelineError,
    WorkerLost,
)
from service.jobs.queue import ClaimedJob
from service.media import library as audio_library
from service.media.fetch import Fetcher
from service.media.storage import Storage, transcript_key
from service.queries import q
from service.runs import store as runs
from service.runs.analysis import Analyzer, store_analysis

STAGE_BANDS: dict[str, tuple[int, int]] = {
    "fetching": (0, 10),
    "uploading": (0, 10),
    "preparing": (5, 10),
    "analyzing": (10, 90),
    "finalizing": (90, 99),
}
TICK_MIN_INTERVAL_S = 0.1


class RunReporter:
    """The engine's view of its run: stage transitions, progress ticks and finished chunks."""

    def __init__(self, db: AsyncEngine, run: Row, duration_ms: int) -> None:
        self.db = db
        self.run = run
        self.duration_ms = duration_ms
        self.stage_name = str(run["stage"])
        self.value = int(run["progress"])
        self._last_tick = 0.0

    async def stage(self, name: str) -> None:
        if name == self.stage_name:
            return
        low, _ = STAGE_BANDS[name]
        async with self.db.begin() as conn:
            change = await runs.set_stage(conn, self.run["id"], name, max(low, self.value))
        if change is None:
            raise RunCancelled()
        self.run = change.run
        self.stage_name = name
        self.value = int(change.run["progress"])

    async def progress(self, fraction: float, detail: str | None = None) -> None:
        low, high = STAGE_BANDS.get(self.stage_name, (self.value, self.value))
        value = int(low + max(0.0, min(1.0, fraction)) * (high - low))
        now = time.monotonic()
        if detail is None and value <= self.value:
            return
        if now - self._last_tick < TICK_MIN_INTERVAL_S and fraction < 1:
            return
        self.value = max(value, self.value)
        self._last_tick = now
        async with self.db.begin() as conn:
            await runs.notify_progress(conn, self.run, self.stage_name, self.value, detail)

    async def chunk(
        self, index: int, start_ms: int, end_ms: int, segments: Sequence[Segment]
    ) -> None:
        """Record a finished chunk as a `partial` event, checked as the transcript will be,
        so the partials of a run add up to exactly its final transcript."""
        start, end = within(start_ms, end_ms, self.duration_ms)
        partial = Partial(index, start, end, checked_segments(segments, self.duration_ms))
        async with self.db.begin() as conn:
            await runs.record_partial(conn, self.run, partial)


def checked_segments(segments: Sequence[Segment], duration_ms: int) -> tuple[Segment, ...]:
    """Never trust an engine blindly: ordered segments, within the audio, no empty text, and
    their words ordered and inside their segment."""
    checked = []
    for seg in sorted(segments, key=lambda s: (s.start_ms, s.end_ms)):
        text = seg.text.strip()
        if not text:
            continue
        start, end = within(seg.start_ms, seg.end_ms, duration_ms)
        words = tuple(
            Word(*_inside(w.start_ms, w.end_ms, start, end), w.text, w.probability)
            for w in sorted(seg.words, key=lambda w: (w.start_ms, w.end_ms))
            if w.text.strip()
        )
        checked.append(Segment(start, end, text, seg.speaker, words))
    return tuple(checked)


def _inside(start_ms: int, end_ms: int, low: int, high: int) -> tuple[int, int]:
    start = max(low, min(start_ms, high))
    return start, max(start, min(end_ms, high))


def within(start_ms: int, end_ms: int, duration_ms: int) -> tuple[int, int]:
    """A time range moved inside the audio, never ending before it starts."""
    start = max(0, min(start_ms, duration_ms))
    return start, max(start, min(end_ms, duration_ms))


def checked_transcript(transcript: Transcript, duration_ms: int) -> Transcript:
    """The engine's transcript with `checked_segments`, and its text if the engine gave none."""
    segments = checked_segments(transcript.segments, duration_ms)
    text = transcript.text.strip() or " ".join(s.text for s in segments)
    return Transcript(
        text=text,
        language=transcript.language,
        segments=segments,
        language_probability=transcript.language_probability,
    )


async def store_transcript(storage: Storage, run_id: uuid.UUID, transcript: Transcript) -> None:
    """Write the transcript to storage and read it back: a run is marked succeeded only after
    this returns, so every download offered for a succeeded run exists."""
    key = transcript_key(run_id)
    data = json.dumps(transcript.to_json(), ensure_ascii=False).encode()
    try:
        await storage.put_bytes(key, data)
        stored = await storage.get_bytes(key)
    except Exception as exc:
        raise StorageWriteFailed(
            f"The transcript could not be stored ({type(exc).__name__})."
        ) from exc
    if stored != data:
        raise StorageWriteFailed("The stored transcript did not read back intact.")


class TranscriptionHandler:
    """Runs an engine over a run's audio; keeps the run row in step with the job's outcome."""

    def __init__(
        self,
        db: AsyncEngine,
        storage: Storage,
        engines: Mapping[str, Engine],
        analyzer: Analyzer | None = None,
        fetcher: Fetcher | None = None,
        max_duration_ms: int | None = None,
    ) -> None:
        self.db = db
        self.storage = storage
        self.engines = engines
        self.analyzer = analyzer
        self.fetcher = fetcher
        self.max_duration_ms = max_duration_ms

    async def run(self, job: ClaimedJob) -> Transcript:
        run_id = _run_id(job)
        async with self.db.begin() as conn:
            current = await runs.get(conn, run_id, None)
            fetching = current is not None and current["audio_id"] is None
            change = await runs.start(
                conn,
                run_id,
                attempts=job.attempts,
                stage="fetching" if fetching else "uploading",
                progress=0,
            )
            if change is None:
                raise RunCancelled()
            run = change.run
        logs.annotate(engine=run["engine"])
        engine = self.engines.get(run["engine"])
        if engine is None:
            raise EngineNotConfigured(f"The engine {run['engine']!r} is not available here.")
        if run["audio_id"] is None:
            run = await self.fetch(run)
        async with self.db.connect() as conn:
            audio = await audio_library.get(conn, run["audio_id"], None)
        if audio is None:
            raise AudioMissing()
        reporter = RunReporter(self.db, run, int(audio["duration_ms"]))
        options = EngineOptions(
            language=run["language"],
            model=run["model"],
            run_id=run_id,
            prompt=run.get("prompt"),
            hotwords=run.get("hotwords"),
        )
        try:
            async with self.storage.local_file(audio["storage_key"]) as path:
                transcript = await engine.transcribe(path, options, reporter)
        except FileNotFoundError:
            raise AudioMissing() from None
        await reporter.stage("finalizing")
        checked = checked_transcript(transcript, int(audio["duration_ms"]))
        await store_transcript(self.storage, run_id, checked)
        if run.get("analysis_requested"):
            await self.analyze(run_id, checked)
        return checked

    async def fetch(self, run: Row) -> Row:
        """The `fetching` stage: the run's audio URL becomes its audio, probed and stored like
        an upload; progress is bytes received of Content-Length."""
        if self.fetcher is None or not run.get("source_url"):
            raise AudioMissing("The run has neither audio nor a URL this worker can fetch.")
        reporter = RunReporter(self.db, run, 0)

        async def progress(received: int, total: int | None) -> None:
            if total:
                await reporter.progress(received / total)

        upload = await self.fetcher.fetch(
            run["source_url"], self.storage.staging_path(), progress=progress
        )
        audio = await audio_library.accept_upload(
            self.db, self.storage, run["owner"], upload, max_duration_ms=self.max_duration_ms
        )
        async with self.db.begin() as conn:
            params = {"run_id": run["id"], "audio_id": audio["id"]}
            updated = (await conn.execute(q("set_run_audio"), params)).mappings().first()
        if updated is None:
            raise RunCancelled()
        return updated

    async def analyze(self, run_id: uuid.UUID, transcript: Transcript) -> None:
        """Ask the LLM for the analysis the run requested and keep it with the run."""
        if self.analyzer is None:
            raise EngineNotConfigured("This server has no LLM configured for analysis.")
        result = await self.analyzer.analyze(transcript)
        async with self.db.begin() as conn:
            await store_analysis(conn, run_id, result)

    async def on_success(self, conn: AsyncConnection, job: ClaimedJob, result: Any) -> None:
        params = {"run_id": _run_id(job), "transcript_key": transcript_key(_run_id(job))}
        await conn.execute(q("set_run_transcript_key"), params)
        await runs.succeed(conn, _run_id(job), result.without_words())

    async def on_retry(self, conn: AsyncConnection, job: ClaimedJob, error: TapelineError) -> None:
        event = "requeued" if isinstance(error, WorkerLost) else "retry_scheduled"
        await runs.requeue(conn, _run_id(job), error, event)

    async def on_failure(
        self, conn: AsyncConnection, job: ClaimedJob, error: TapelineError
    ) -> None:
        await runs.fail(conn, _run_id(job), error)

    async def on_release(self, conn: AsyncConnection, job: ClaimedJob) -> None:
        await runs.requeue(conn, _run_id(job), None, "requeued")


def _run_id(job: ClaimedJob) -> uuid.UUID:
    if job.run_id is None:
        raise TapelineError(f"job {job.id} of type {job.job_type} has no run")
    return job.run_id
