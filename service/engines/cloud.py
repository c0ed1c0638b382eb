"""What the cloud engines share: cut the recording, send the chunks side by side, keep each
finished one, stitch the segments with absolute timestamps. A chunk with no sound in it is
never sent: it is an empty chunk at once (a model handed silence tends to invent a sentence).

An engine supplies only `SendChunk`, one chunk's round trip to its provider (with its own
retries, see `retrying`), and answers segments relative to the chunk. Each finished chunk goes
to the reporter at once (a partial transcript). Chunks already kept by an earlier attempt of the
same run are not sent again, only reported. When one chunk fails, no new chunk starts,
but the ones in flight are allowed to finish and be kept, so the job's retry has less to do.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from service.config import Settings
from service.cpu import run_cpu
from service.engines.base import Reporter, Segment, Word, stitched
from service.engines.chunk_results import ChunkResult, ChunkStore, reusable
from service.engines.retrying import Deadline
from service.engines.splitting import AudioChunk, encode_span, longest_chunk_ms, plan_upload
from service.errors import TapelineError

PROMPT_WORDS = 40
"""How many of the previous chunk's last words are handed on for continuity."""
DEADLINE_MARGIN_S = 2.0
"""The engine gives up this long before JOB_TIMEOUT_MS, so the run fails with its own error."""

SendChunk = Callable[[AudioChunk, str | None, Deadline], Awaitable[Sequence[Segment]]]
"""Transcribe one chunk, given the previous chunk's last words; segments relative to it."""


def job_deadline(settings: Settings) -> Deadline:
    """The deadline of an engine call started now: just inside the job's JOB_TIMEOUT_MS."""
    total = settings.job_timeout_ms / 1000
    return Deadline(max(total * 0.5, total - DEADLINE_MARGIN_S))


class ChunkedTranscription:
    """One engine's way of sending a recording: chunk length, size limit, concurrency."""

    def __init__(
        self,
        engine: str,
        *,
        max_chunk_ms: int,
        max_bytes: int | None,
        concurrency: int,
        store: ChunkStore | None,
        fmt: str = "mp3",
    ) -> None:
        self.engine = engine
        self.fmt = fmt
        self.max_chunk_ms = longest_chunk_ms(max_chunk_ms, max_bytes, fmt)
        self.concurrency = concurrency
        self.store = store

    async def transcribe(
        self,
        audio_path: Path,
        run_id: uuid.UUID | None,
        reporter: Reporter,
        deadline: Deadline,
        send: SendChunk,
    ) -> list[Segment]:
        with tempfile.TemporaryDirectory(prefix="tapeline-chunks-") as tmp:
            work_dir = Path(tmp)
            plan = await run_cpu(plan_upload, audio_path, work_dir, self.max_chunk_ms)
            kept = await self.store.finished(run_id) if self.store and run_id else {}
            await reporter.stage("analyzing")
            results: dict[int, ChunkResult] = {}
            for index, span in enumerate(plan.spans):
                chunk = reusable(kept, index, span, self.engine)
                if index in plan.silent:
                    chunk = ChunkResult(index, span[0], span[1], (), self.engine)
                if chunk is not None:
                    results[index] = chunk
            total = len(plan.spans)
            for kept_chunk in results.values():
                await report(reporter, kept_chunk)
            if results:
                await reporter.progress(len(results) / total)
            slots = asyncio.Semaphore(self.concurrency)
            failed = asyncio.Event()

            missing = [(i, span) for i, span in enumerate(plan.spans) if i not in results]
            turns = {i: asyncio.Event() for i, _ in missing}
            before = dict(itertools.pairwise(i for i, _ in missing))
            previous = {later: earlier for earlier, later in before.items()}

            async def one(index: int, span: tuple[int, int]) -> None:
                """Encode (in the pool), then send in index order, so the chunk before has
                the best chance of being back and handing on its last words."""
                try:
                    audio = await run_cpu(
                        encode_span, plan.pcm_path, index, span, work_dir, self.fmt
                    )
                    if index in previous:
                        await turns[previous[index]].wait()
                    async with slots:
                        turns[index].set()
                        if failed.is_set():
                            return
                        prompt = last_words(results.get(index - 1))
                        relative = await send(audio, prompt, deadline)
                except BaseException:
                    failed.set()
                    raise
                finally:
                    turns[index].set()
                result = ChunkResult(index, span[0], span[1], absolute(relative, span), self.engine)
                if self.store and run_id:
                    await self.store.record(run_id, result)
                results[index] = result
                await report(reporter, result)
                await reporter.progress(len(results) / total)

            outcomes = await asyncio.gather(
                *(one(i, span) for i, span in missing), return_exceptions=True
            )
            raise_first_failure(outcomes)
            return stitched(list(results.values()))


async def report(reporter: Reporter, chunk: ChunkResult) -> None:
    """Hand a finished chunk (or one kept from an earlier attempt) to the run's readers."""
    await reporter.chunk(chunk.index, chunk.start_ms, chunk.end_ms, chunk.segments)


def raise_first_failure(outcomes: Sequence[object]) -> None:
    """Re-raise a chunk's failure; a permanent one wins, since retrying cannot mend it."""
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    if not errors:
        return
    for error in errors:
        if isinstance(error, asyncio.CancelledError):
            raise error
    permanent = [e for e in errors if isinstance(e, TapelineError) and not e.transient]
    raise (permanent or errors)[0]


def absolute(segments: Sequence[Segment], span: tuple[int, int]) -> tuple[Segment, ...]:
    """Chunk-relative segments placed in the recording, clamped to the chunk; empty ones and
    ones starting after the chunk's end (a model inventing speech) are dropped."""
    start, end = span
    placed = []
    for seg in segments:
        text = seg.text.strip()
        if not text or seg.start_ms >= end - start:
            continue
        seg_start = min(max(0, seg.start_ms) + start, end)
        seg_end = min(max(seg.end_ms, seg.start_ms, 0) + start, end)
        words = tuple(
            Word(
                min(max(0, w.start_ms) + start, end),
                min(max(0, w.end_ms, w.start_ms) + start, end),
                w.text,
                w.probability,
            )
            for w in seg.words
        )
        placed.append(Segment(seg_start, max(seg_start, seg_end), text, seg.speaker, words))
    return tuple(sorted(placed, key=lambda s: (s.start_ms, s.end_ms)))


def last_words(chunk: ChunkResult | None, count: int = PROMPT_WORDS) -> str | None:
    """The end of the previous chunk's text, or None when it is not transcribed yet."""
    if chunk is None:
        return None
    words = " ".join(s.text for s in chunk.segments).split()
    return " ".join(words[-count:]) or None


def primary_language(language: str | None) -> str | None:
    """ "en-US" → "en": providers take ISO 639-1 codes."""
    if not language:
        return None
    return language.strip().replace("_", "-").split("-", 1)[0].lower() or None
