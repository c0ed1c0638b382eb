"""The offline `local` engine: English speech recognition with PocketSphinx, on this machine.

PocketSphinx is single-threaded and needs roughly a tenth of real time per core, so a long
recording is cut at pauses and the chunks are recognised side by side in the shared process
pool, in time order, so the words people read first are the recording's first. Chunks of about
15 s keep the cores evenly loaded, and recognising at pauses costs no accuracy against one long
pass. Each chunk's segments are reported as it finishes, and the transcript is exactly them.
Each pool process loads the acoustic and language models once and keeps them, since loading
costs about as much as recognising a few seconds of speech.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pocketsphinx import Decoder

from service.cpu import run_cpu
from service.engines.base import EngineOptions, Reporter, Segment, Transcript
from service.errors import EngineRefused
from service.media.audio import decode_pcm16
from service.media.chunking import Span, has_sound, plan_chunks

SAMPLE_RATE = 16_000
FRAMES_PER_SECOND = 100
SEGMENT_PAUSE_MS = 600
SEGMENT_MAX_MS = 15_000
CHUNK_TARGET_MS = 15_000
CHUNK_MAX_MS = 30_000

_BYTES_PER_MS = SAMPLE_RATE * 2 // 1000
_MS_PER_FRAME = 1000 // FRAMES_PER_SECOND
_ENGLISH = frozenset({"en", "eng", "english"})
_ALTERNATE_PRONUNCIATION = re.compile(r"\(\d+\)$")

Word = tuple[str, int, int]
"""A recognised word with its absolute (start_ms, end_ms)."""

_decoder: Any = None


class LocalEngine:
    """Transcribes English on the server's own CPUs; needs no network and no API key."""

    name = "local"

    async def transcribe(
        self, audio_path: Path, options: EngineOptions, reporter: Reporter
    ) -> Transcript:
        require_english(options.language)
        await reporter.stage("analyzing")
        pcm, spans = await run_cpu(prepare, audio_path)
        duration_ms = pcm_duration_ms(pcm)

        async def recognise(index: int, span: Span) -> tuple[int, Span, list[Segment]]:
            start, end = span
            words = await run_cpu(
                recognise_words, pcm[start * _BYTES_PER_MS : end * _BYTES_PER_MS], start
            )
            return index, span, words_to_segments(words, duration_ms)

        chunks = [asyncio.ensure_future(recognise(i, span)) for i, span in enumerate(spans)]
        segments: list[Segment] = []
        try:
            for done, chunk in enumerate(asyncio.as_completed(chunks), start=1):
                index, (start, end), found = await chunk
                segments.extend(found)
                await reporter.chunk(index, start, end, found)
                await reporter.progress(done / len(chunks))
        finally:
            for pending in chunks:
                pending.cancel()
        return Transcript.from_segments(segments, language="en")


def require_english(language: str | None) -> None:
    """Refuse any language but English: the bundled model would return confident nonsense."""
    if not language:
        return
    primary = re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]
    if primary not in _ENGLISH:
        raise EngineRefused(
            f"The local engine understands English only, not {language!r}. "
            "Choose another engine for this language, or leave the language unset.",
        )


def prepare(audio_path: Path) -> tuple[bytes, list[Span]]:
    """Decode the upload and plan its chunks, together, in one trip to the pool."""
    pcm = decode_pcm16(audio_path, SAMPLE_RATE)
    spans = plan_chunks(pcm, SAMPLE_RATE, target_ms=CHUNK_TARGET_MS, max_ms=CHUNK_MAX_MS)
    return pcm, spans


def recognise_words(pcm: bytes, offset_ms: int = 0) -> list[Word]:
    """Recognise one stretch of 16 kHz mono PCM; runs in a pool process, returns plain data."""
    if len(pcm) < _BYTES_PER_MS * _MS_PER_FRAME or not has_sound(pcm, SAMPLE_RATE):
        return []
    decoder = _process_decoder()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    words: list[Word] = []
    for seg in decoder.seg() or ():  # None when it heard nothing at all (silence)
        word = _spoken_word(seg.word)
        if word:
            start = offset_ms + seg.start_frame * _MS_PER_FRAME
            end = offset_ms + (seg.end_frame + 1) * _MS_PER_FRAME
            words.append((word, start, end))
    return words


def transcribe_pcm_one_pass(pcm: bytes) -> list[Segment]:
    """Recognise all of `pcm` in a single decoder call, without chunking (the baseline)."""
    return words_to_segments(recognise_words(pcm), pcm_duration_ms(pcm))


def words_to_segments(words: Sequence[Word], duration_ms: int) -> list[Segment]:
    """Group words into segments at pauses longer than `SEGMENT_PAUSE_MS`, or when a segment
    would run past `SEGMENT_MAX_MS`, so subtitles and readers get sentence-sized pieces."""
    segments: list[Segment] = []
    current: list[Word] = []
    for word in sorted(words, key=lambda w: (w[1], w[2])):
        if current and (
            word[1] - current[-1][2] > SEGMENT_PAUSE_MS or word[2] - current[0][1] > SEGMENT_MAX_MS
        ):
            segments.append(_segment(current, duration_ms))
            current = []
        current.append(word)
    if current:
        segments.append(_segment(current, duration_ms))
    return segments


def pcm_duration_ms(pcm: bytes) -> int:
    return len(pcm) // 2 * 1000 // SAMPLE_RATE


def _segment(words: Sequence[Word], duration_ms: int) -> Segment:
    start = min(words[0][1], duration_ms)
    end = min(max(w[2] for w in words), duration_ms)
    return Segment(start_ms=start, end_ms=max(start, end), text=" ".join(w[0] for w in words))


def _spoken_word(token: str) -> str:
    """The word itself, or "" for fillers such as <s>, <sil> and [NOISE]; drops "(2)" suffixes."""
    if token.startswith(("<", "[", "+")):
        return ""
    return _ALTERNATE_PRONUNCIATION.sub("", token)


def _process_decoder() -> Any:
    global _decoder
    if _decoder is None:
        _decoder = Decoder(samprate=SAMPLE_RATE)
    return _decoder
