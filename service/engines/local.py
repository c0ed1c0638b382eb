"""The offline `local` engine: Whisper through faster-whisper (CTranslate2), on this machine.

The recording is decoded as a stream of windows (`media.audio.decode_windows`), so memory does
not grow with its length: a 10-second first window brings the first words within seconds, then
windows of eight minutes (enough speech for full batches, so the cut at a window's end, where a
piece of speech shorter than 30 s is still padded to 30 s, costs little), each cut in a pause.
Each window goes through faster-whisper's batched pipeline (Silero VAD cuts the speech into
pieces of up to 30 s, decoded in batches), and each piece is reported as a partial with
absolute timestamps as soon as its batch is done; the transcript is exactly those partials.

The model is loaded once per worker process and shared by its jobs. It runs in threads, not the
process pool: CTranslate2 releases the GIL while it computes, so the event loop stays free, and
one loaded model serves every job instead of one copy per pool process. Concurrent jobs split
the cores between them (`compute_threads`), so MAX_CONCURRENT_JOBS runs never oversubscribe the
machine. A thread cannot be interrupted mid-batch, so each job's thread checks a stop flag
between batches: a cancelled or timed-out run stops using the CPU within one batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.config import Settings
from service.engines.base import EngineOptions, Reporter, Segment, Transcript, Word
from service.engines.models import english_only, fetch_model, find_model, model_for_run
from service.errors import EngineRefused, RunCancelled
from service.media.audio import Window, declared_duration_ms, decode_windows

log = logging.getLogger(__name__)

FIRST_WINDOW_MS = 10_000
SHORT_RECORDING_MS = 60_000
WINDOW_MS = 480_000
SEGMENT_PAUSE_MS = 600
SEGMENT_MAX_MS = 15_000
_SENTENCE_END = re.compile(r"[.!?。！？]$")
_MB = 1024 * 1024


@dataclass
class WindowResult:
    segments: list[Segment]
    language: str | None
    language_probability: float | None
    speech: bool


@dataclass
class _Loaded:
    pipeline: Any
    multilingual: bool


_models: dict[tuple[str, str, str, int, int], _Loaded] = {}
_models_lock = threading.Lock()
_loads = 0


def model_loads() -> int:
    """How many times this process loaded a model (once per model, however many runs)."""
    return _loads


def compute_threads(settings: Settings, cores: int | None = None) -> tuple[int, int]:
    """(parallel transcriptions, threads each): together about the number of cores, however
    many jobs this worker runs at once; jobs beyond that wait their turn inside CTranslate2."""
    cores = cores or os.cpu_count() or 1
    workers = max(1, min(settings.max_concurrent_jobs, cores))
    return workers, max(1, cores // workers)


def device_and_compute_type(settings: Settings) -> tuple[str, str]:
    """WHISPER_DEVICE (`auto` means CUDA when CTranslate2 finds a GPU) and its compute type:
    WHISPER_COMPUTE_TYPE, else float16 on CUDA and int8 on CPU."""
    device = settings.whisper_device
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    compute_type = settings.whisper_compute_type or ("float16" if device == "cuda" else "int8")
    return device, compute_type


def load_model(settings: Settings, path: Path) -> _Loaded:
    """The batched pipeline for the model at `path`, loaded on first use and kept."""
    global _loads
    device, compute_type = device_and_compute_type(settings)
    workers, threads = compute_threads(settings)
    key = (str(path), device, compute_type, workers, threads)
    with _models_lock:
        loaded = _models.get(key)
        if loaded is None:
            from faster_whisper import BatchedInferencePipeline, WhisperModel

            started = time.monotonic()
            model = WhisperModel(
                str(path),
                device=device,
                compute_type=compute_type,
                cpu_threads=threads,
                num_workers=workers,
            )
            loaded = _Loaded(BatchedInferencePipeline(model), bool(model.model.is_multilingual))
            _models[key] = loaded
            _loads += 1
            log.info(
                "loaded whisper model %s on %s (%s, %d×%d threads) in %.1fs",
                path,
                device,
                compute_type,
                workers,
                threads,
                time.monotonic() - started,
            )
        return loaded


def first_window_ms(duration_ms: int | None) -> int:
    """The first window's length: short, so a long recording shows words within seconds; but a
    recording of a minute or less is one window, since Whisper pads every piece of speech to
    30 s, and a separate first window would cost it a second pass (and a seam) to gain
    nothing: the whole of it arrives within seconds anyway."""
    if duration_ms is not None and duration_ms <= SHORT_RECORDING_MS:
        return WINDOW_MS
    return FIRST_WINDOW_MS


def primary_language(language: str | None) -> str | None:
    """`en-US`, `en_GB`, `English` → `en`; what Whisper's tokenizer calls the language."""
    if not language or not language.strip():
        return None
    primary = re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]
    return {"english": "en", "eng": "en", "chinese": "zh", "mandarin": "zh"}.get(primary, primary)


def check_run(settings: Settings, language: str | None, model: str | None) -> str:
    """Refuse, before anything is queued, what the model cannot do; returns the model name."""
    name = model_for_run(settings, model)
    primary = primary_language(language)
    if primary is None:
        return name
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    if primary not in _LANGUAGE_CODES:
        raise EngineRefused(f"Whisper does not know the language {language!r}.")
    if primary != "en" and english_only(settings, name):
        raise EngineRefused(
            f"The model {name!r} understands English only, not {language!r}. Leave the language "
            "unset, or use a multilingual model (such as base, small or large-v3).",
        )
    return name


class LocalEngine:
    """Transcribes on the server's own CPUs (or GPU); needs no network once the model is here."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def transcribe(
        self, audio_path: Path, options: EngineOptions, reporter: Reporter
    ) -> Transcript:
        name = check_run(self.settings, options.language, options.model)
        path = find_model(self.settings, name) or await self._fetch(name, reporter)
        loaded = await asyncio.to_thread(load_model, self.settings, path)
        await reporter.stage("analyzing")
        duration_ms = await asyncio.to_thread(declared_duration_ms, audio_path)
        stop = threading.Event()
        windows = decode_windows(audio_path, first_window_ms(duration_ms), WINDOW_MS)
        language = primary_language(options.language)
        probability: float | None = 1.0 if language else None
        segments: list[Segment] = []
        partials = _Partials(reporter)
        loop = asyncio.get_running_loop()
        try:
            while True:
                window = await asyncio.to_thread(next, windows, None)
                if window is None:
                    break
                found: asyncio.Queue[list[Segment]] = asyncio.Queue()

                def emit(piece: list[Segment], found: asyncio.Queue[list[Segment]] = found) -> None:
                    loop.call_soon_threadsafe(found.put_nowait, piece)

                work = asyncio.ensure_future(
                    asyncio.to_thread(
                        transcribe_window,
                        loaded.pipeline,
                        window,
                        self.settings.whisper_batch_size,
                        _Request(language, options.prompt, options.hotwords),
                        stop,
                        emit,
                    )
                )
                await partials.window(window, found, work)
                result = work.result()
                if language is None and result.speech and loaded.multilingual:
                    language, probability = result.language, result.language_probability
                segments.extend(result.segments)
                if duration_ms:
                    await reporter.progress(min(0.99, window.end_ms / duration_ms))
        finally:
            stop.set()
        await reporter.progress(1.0)
        if not loaded.multilingual:
            language, probability = "en", probability or 1.0
        return Transcript.from_segments(segments, language, probability)

    async def _fetch(self, name: str, reporter: Reporter) -> Path:
        """Download the model with a `preparing` stage whose ticks say how far it got."""
        await reporter.stage("preparing")
        loop = asyncio.get_running_loop()
        latest: list[tuple[int, int | None]] = []

        def progress(done: int, total: int | None) -> None:
            loop.call_soon_threadsafe(latest.append, (done, total))

        fetch = asyncio.ensure_future(asyncio.to_thread(fetch_model, self.settings, name, progress))
        while not fetch.done():
            await asyncio.wait({fetch}, timeout=0.5)
            if latest:
                done, total = latest[-1]
                latest.clear()
                of = f" of {total / _MB:.0f}" if total else ""
                detail = f"Downloading model {name}, {done / _MB:.0f}{of} MB"
                await reporter.progress(done / total if total else 0.0, detail)
        return fetch.result()


class _Partials:
    """Reports a partial for each piece of speech the pipeline finishes (a VAD chunk of up to
    30 s), spanning from the previous partial's end; a window's last one reaches its end."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.index = 0

    async def window(
        self,
        window: Window,
        found: asyncio.Queue[list[Segment]],
        work: asyncio.Future[WindowResult],
    ) -> None:
        start = window.start_ms
        held: list[Segment] | None = None
        while True:
            getter = asyncio.ensure_future(found.get())
            waiting: set[asyncio.Future[Any]] = {getter, work}
            try:
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            finally:
                got = getter.done()
                if not got:
                    getter.cancel()
            if got:
                piece = getter.result()
            elif found.empty():
                break
            else:
                piece = found.get_nowait()
            if held is not None:
                start = await self._report(start, held, window.end_ms)
            held = piece
        work.result()
        await self._send(start, window.end_ms, held or [])

    async def _report(self, start: int, segments: list[Segment], window_end: int) -> int:
        end = min(window_end, max([start, *(s.end_ms for s in segments)]))
        await self._send(start, end, segments)
        return end

    async def _send(self, start: int, end: int, segments: list[Segment]) -> None:
        await self.reporter.chunk(self.index, start, max(start, end), segments)
        self.index += 1


@dataclass(frozen=True)
class _Request:
    language: str | None
    prompt: str | None = None
    hotwords: str | None = None


def transcribe_window(
    pipeline: Any,
    window: Window,
    batch_size: int,
    request: _Request,
    stop: threading.Event,
    emit: Callable[[list[Segment]], None] | None = None,
) -> WindowResult:
    """One window through the batched pipeline, in a thread; stops between batches when `stop`
    is set (the run was cancelled or timed out), raising `RunCancelled`. Each piece of speech
    (Whisper's segment: one VAD chunk) goes to `emit` as soon as its batch is done."""
    if stop.is_set():
        raise RunCancelled()
    found, info = pipeline.transcribe(
        window.samples,
        language=request.language,
        batch_size=batch_size,
        word_timestamps=True,
        initial_prompt=request.prompt or None,
        hotwords=request.hotwords or None,
    )
    segments: list[Segment] = []
    found = iter(found)
    while True:
        if stop.is_set():
            raise RunCancelled()
        segment = next(found, None)
        if segment is None:
            break
        piece = list(split_segment(window, segment))
        segments.extend(piece)
        if emit is not None:
            emit(piece)
    speech = bool(info.duration_after_vad)
    return WindowResult(segments, info.language, info.language_probability, speech)


def split_segment(window: Window, segment: Any) -> Iterator[Segment]:
    """Whisper's piece of speech (up to 30 s) as subtitle-sized segments with absolute times:
    split after a sentence ends or at a pause, never longer than `SEGMENT_MAX_MS`."""
    words = [
        Word(
            start_ms=window.start_ms + round(w.start * 1000),
            end_ms=window.start_ms + round(max(w.start, w.end) * 1000),
            text=w.word,
            probability=float(w.probability),
        )
        for w in segment.words or ()
        if w.word.strip()
    ]
    if not words:
        text = segment.text.strip()
        if text:
            start = window.start_ms + round(segment.start * 1000)
            yield Segment(start, max(start, window.start_ms + round(segment.end * 1000)), text)
        return
    current: list[Word] = []
    for word in words:
        if current and (
            word.start_ms - current[-1].end_ms > SEGMENT_PAUSE_MS
            or word.end_ms - current[0].start_ms > SEGMENT_MAX_MS
            or _SENTENCE_END.search(current[-1].text.strip())
        ):
            yield _segment(current)
            current = []
        current.append(word)
    if current:
        yield _segment(current)


def _segment(words: Sequence[Word]) -> Segment:
    text = "".join(w.text for w in words).strip()
    cleaned = tuple(Word(w.start_ms, w.end_ms, w.text.strip(), w.probability) for w in words)
    return Segment(words[0].start_ms, max(w.end_ms for w in words), text, words=cleaned)
