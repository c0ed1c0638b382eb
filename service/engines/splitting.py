"""Cutting a recording into compact audio files a cloud provider accepts.

Providers limit what one request may carry (OpenAI: 25 MB; Gemini: long audio degrades), so
a recording is decoded once, cut at pauses (`service.media.chunking`) into spans no longer than the
engine's limit, and each span is re-encoded as 16 kHz mono audio every provider and
OpenAI-compatible server reads: MP3 at a constant 32 kbit/s (an hour of speech is about 14 MB,
but encoding costs about a minute of CPU per hour) or FLAC (lossless, about half of WAV, and
encoded some twenty times faster). Either way a span's largest possible size is known before it
is encoded (a constant bit rate; FLAC never exceeds the raw PCM), so spans are planned to fit.

Planning decodes the recording as a stream straight into a scratch file, measuring its level
as it goes, so the worker's memory does not grow with the recording's length; each span is then
encoded on its own in the process pool, so encoding spreads over the cores and the first chunk
can be on its way to the provider while later ones are still being encoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from service.errors import AudioUnreadable
from service.media.audio import stream_pcm16
from service.media.chunking import MIN_CHUNK_MS, LevelMeter, plan_from_levels, silent_spans

SAMPLE_RATE = 16_000
BIT_RATE = 32_000
FORMATS = {"mp3": ("audio/mpeg", ".mp3"), "flac": ("audio/flac", ".flac")}
MOST_BYTES_PER_MS = {"mp3": BIT_RATE / 8 / 1000, "flac": SAMPLE_RATE * 2 / 1000}
SIZE_MARGIN = 0.9
"""Spans are planned to use at most this share of the byte limit (container overhead, padding)."""
_BYTES_PER_MS = SAMPLE_RATE * 2 // 1000

Span = tuple[int, int]


@dataclass(frozen=True, slots=True)
class UploadPlan:
    """The decoded recording (raw PCM in a scratch file), the spans to send, and which of them
    have no sound in them (answered with no segments, never sent)."""

    pcm_path: Path
    duration_ms: int
    spans: list[Span]
    silent: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """One encoded piece of the recording, with where it sits in the whole (milliseconds)."""

    index: int
    start_ms: int
    end_ms: int
    path: Path
    size_bytes: int
    mime_type: str


def longest_chunk_ms(max_chunk_ms: int, max_bytes: int | None, fmt: str = "mp3") -> int:
    """The longest span allowed: the engine's limit, shortened so its file fits in `max_bytes`."""
    if max_bytes is None:
        return max_chunk_ms
    fits = int(max_bytes * SIZE_MARGIN / MOST_BYTES_PER_MS[fmt])
    return max(MIN_CHUNK_MS, min(max_chunk_ms, fits))


def plan_upload(audio_path: Path, work_dir: Path, max_chunk_ms: int) -> UploadPlan:
    """Decode `audio_path` into `work_dir` and cut it at pauses into spans of at most
    `max_chunk_ms`; runs in the process pool."""
    pcm_path = work_dir / "audio.pcm"
    meter = LevelMeter(SAMPLE_RATE)
    with pcm_path.open("wb") as raw:
        for block in stream_pcm16(audio_path, SAMPLE_RATE):
            meter.add(block)
            raw.write(block.tobytes())
    if meter.samples == 0:
        raise AudioUnreadable("The file contains no decodable audio.")
    levels = meter.levels()
    target_ms = max(MIN_CHUNK_MS, max_chunk_ms * 4 // 5)
    spans = plan_from_levels(levels, meter.total_ms, target_ms=target_ms, max_ms=max_chunk_ms)
    duration_ms = meter.samples * 1000 // SAMPLE_RATE
    return UploadPlan(pcm_path, duration_ms, spans, silent_spans(levels, spans))


def encode_span(
    pcm_path: Path, index: int, span: Span, out_dir: Path, fmt: str = "mp3"
) -> AudioChunk:
    """Encode one span of the scratch PCM as a chunk file; runs in the process pool."""
    start, end = span
    with pcm_path.open("rb") as raw:
        raw.seek(start * _BYTES_PER_MS)
        pcm = raw.read((end - start) * _BYTES_PER_MS)
    mime_type, suffix = FORMATS[fmt]
    path = out_dir / f"chunk-{index:04d}{suffix}"
    size = encode(pcm, path, fmt)
    return AudioChunk(index, start, end, path, size, mime_type)


def encode(pcm: bytes, path: Path, fmt: str = "mp3") -> int:
    """Write 16 kHz mono s16le `pcm` as constant-bit-rate MP3 or as FLAC; returns its size."""
    samples = np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2).reshape(1, -1)
    with av.open(str(path), "w", format=fmt) as container:
        if fmt == "mp3":
            stream = container.add_stream(
                "libmp3lame", rate=SAMPLE_RATE, layout="mono", options={"compression_level": "7"}
            )
            stream.bit_rate = BIT_RATE
        else:
            stream = container.add_stream("flac", rate=SAMPLE_RATE, layout="mono")
        if samples.size:
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path.stat().st_size
