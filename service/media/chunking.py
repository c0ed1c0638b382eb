"""Splitting long speech into chunks at pauses, so chunks can be transcribed independently.

A recogniser that sees half a word at the end of one chunk and the other half at the start of
the next gets both halves wrong, so every cut goes in the middle of a pause. What counts as a
pause is judged against the recording's own level: a quiet room and a noisy street differ by
tens of decibels, and a fixed threshold would find pauses everywhere in one and nowhere in the
other.

No chunk is shorter than `MIN_CHUNK_MS`: a recogniser handed a few milliseconds has nothing to
find its footing in (PocketSphinx fails outright on 25 ms), so a short tail joins its neighbour.
Chunks with no sound in them (digital silence, a faint hiss) are marked, so engines can answer
them with no segments instead of sending them anywhere.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FRAME_MS = 10
_SILENCE_DB = -100.0  # digital silence, clamped so it stays finite
_MIN_DYNAMIC_RANGE_DB = 10.0  # below this the recording has no pauses to find
_PAUSE_LEVEL = 0.3  # a pause sits below floor + this share of the floor→speech range
_LONGEST_USEFUL_PAUSE_MS = 2_000
_DISTANCE_PENALTY = 0.05  # pause-ms of score lost per ms away from the target cut
_DIP_SMOOTHING_FRAMES = 5
_FRAMES_PER_BLOCK = 60_000
MIN_CHUNK_MS = 1_000
"""The shortest chunk the planner makes (a whole recording shorter than this is one chunk)."""
NO_SOUND_DB = -70.0
"""A frame quieter than this (RMS, dBFS) carries nothing a recogniser could hear."""
_MIN_SOUND_MS = 100
"""A span needs at least this much sound above `NO_SOUND_DB` to be worth transcribing."""
_METER_BLOCK_S = 10

Span = tuple[int, int]


def plan_chunks(
    pcm: bytes,
    sample_rate: int = 16000,
    target_ms: int = 30_000,
    max_ms: int = 60_000,
    min_silence_ms: int = 300,
) -> list[Span]:
    """Plan contiguous (start_ms, end_ms) spans covering all of `pcm` (mono s16le).

    Each cut lies in the middle of a pause of at least `min_silence_ms`, chosen for being long
    and close to `target_ms` after the previous cut. No span exceeds `max_ms`: when a stretch
    has no pause, the cut goes at its quietest moment instead.
    """
    samples = np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2)
    if samples.size == 0:
        return []
    total_ms = math.ceil(samples.size * 1000 / sample_rate)
    levels = frame_levels_db(samples, sample_rate)
    return plan_from_levels(levels, total_ms, target_ms, max_ms, min_silence_ms)


def plan_from_levels(
    levels: npt.NDArray[np.float64],
    total_ms: int,
    target_ms: int = 30_000,
    max_ms: int = 60_000,
    min_silence_ms: int = 300,
) -> list[Span]:
    """`plan_chunks` from the recording's 10 ms frame levels, so a caller that decodes in a
    stream can plan without ever holding the PCM."""
    if not MIN_CHUNK_MS <= target_ms <= max_ms:
        raise ValueError(f"planning chunks needs {MIN_CHUNK_MS} <= target_ms <= max_ms")
    if total_ms <= 0:
        return []
    pauses = find_pauses(levels, min_silence_ms // FRAME_MS)
    dips = _smoothed(levels)

    spans: list[Span] = []
    start = 0
    while total_ms - start > max_ms or (total_ms - start) > target_ms * 1.5:
        cut = _next_cut(start, target_ms, max_ms, pauses, dips)
        if not start < cut < total_ms:
            break
        spans.append((start, cut))
        start = cut
    spans.append((start, total_ms))
    return _without_slivers(spans, max_ms)


def _without_slivers(spans: list[Span], max_ms: int) -> list[Span]:
    """Join a chunk shorter than `MIN_CHUNK_MS` to its neighbour; when the two together would
    exceed `max_ms`, move the cut between them so both are long enough instead."""
    merged: list[Span] = []
    for span in spans:
        if merged and (
            span[1] - span[0] < MIN_CHUNK_MS or merged[-1][1] - merged[-1][0] < MIN_CHUNK_MS
        ):
            first, _ = merged.pop()
            end = span[1]
            if end - first <= max_ms:
                merged.append((first, end))
            else:
                middle = end - max(MIN_CHUNK_MS, (end - first) // 2)
                merged.extend([(first, middle), (middle, end)])
        else:
            merged.append(span)
    return merged


def silent_spans(levels: npt.NDArray[np.float64], spans: list[Span]) -> frozenset[int]:
    """Indices of the spans with less than `_MIN_SOUND_MS` of sound above `NO_SOUND_DB`:
    nothing in them can be speech, so they are answered with no segments untranscribed."""
    loud = np.concatenate(([0], np.cumsum(levels > NO_SOUND_DB)))
    silent = set()
    for index, (start, end) in enumerate(spans):
        first = min(start // FRAME_MS, levels.size)
        last = min(math.ceil(end / FRAME_MS), levels.size)
        if (loud[last] - loud[first]) * FRAME_MS < _MIN_SOUND_MS:
            silent.add(index)
    return frozenset(silent)


def has_sound(pcm: bytes, sample_rate: int = 16000) -> bool:
    """Whether a stretch of mono s16le PCM has anything in it a recogniser could hear."""
    samples = np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2)
    if samples.size == 0:
        return False
    levels = frame_levels_db(samples, sample_rate)
    return not silent_spans(levels, [(0, math.ceil(samples.size * 1000 / sample_rate))])


class LevelMeter:
    """`frame_levels_db` fed a block of samples at a time, for audio decoded as a stream.

    Decoders hand over a few milliseconds at a time; samples are gathered into blocks of
    `_METER_BLOCK_S` before they are measured, so ten hours make a few thousand small arrays of
    levels rather than millions of tiny ones.
    """

    def __init__(self, sample_rate: int) -> None:
        self.frame = sample_rate * FRAME_MS // 1000
        self.sample_rate = sample_rate
        self.samples = 0
        self._pending: list[npt.NDArray[np.int16]] = []
        self._pending_size = 0
        self._parts: list[npt.NDArray[np.float64]] = []

    def add(self, samples: npt.NDArray[np.int16]) -> None:
        self.samples += samples.size
        self._pending.append(samples)
        self._pending_size += samples.size
        if self._pending_size >= self.sample_rate * _METER_BLOCK_S:
            self._measure(final=False)

    def _measure(self, *, final: bool) -> None:
        if not self._pending_size:
            return
        block = np.concatenate(self._pending)
        whole = block.size if final else block.size - block.size % self.frame
        if whole:
            self._parts.append(frame_levels_db(block[:whole], self.sample_rate))
        rest = block[whole:].copy()
        self._pending = [rest] if rest.size else []
        self._pending_size = rest.size

    @property
    def total_ms(self) -> int:
        return math.ceil(self.samples * 1000 / self.sample_rate)

    def levels(self) -> npt.NDArray[np.float64]:
        """Every frame's level so far; call once, at the end of the stream."""
        self._measure(final=True)
        return np.concatenate(self._parts) if self._parts else np.zeros(0, dtype=np.float64)


def frame_levels_db(samples: npt.NDArray[np.int16], sample_rate: int) -> npt.NDArray[np.float64]:
    """RMS level of each 10 ms frame in dB relative to full scale (the last frame may be short).

    Works through the audio in blocks so hours of PCM never need a float copy all at once.
    """
    frame = sample_rate * FRAME_MS // 1000
    count = math.ceil(samples.size / frame)
    mean_square = np.empty(count, dtype=np.float64)
    for first in range(0, count, _FRAMES_PER_BLOCK):
        block = samples[first * frame : (first + _FRAMES_PER_BLOCK) * frame]
        frames = math.ceil(block.size / frame)
        padded = np.zeros(frames * frame, dtype=np.float64)
        padded[: block.size] = block
        squares = padded.reshape(frames, frame) ** 2
        mean_square[first : first + frames] = squares.mean(axis=1)
    mean_square[-1] *= frame / (samples.size - (count - 1) * frame)
    with np.errstate(divide="ignore"):
        levels: npt.NDArray[np.float64] = 10 * np.log10(mean_square / 32768.0**2)
    return np.maximum(levels, _SILENCE_DB, out=levels)


def find_pauses(levels: npt.NDArray[np.float64], min_frames: int) -> list[tuple[int, int]]:
    """Runs of quiet frames, as (first, end) frame indices, at least `min_frames` long."""
    floor = float(np.percentile(levels, 5))
    speech = float(np.percentile(levels, 97))
    if speech - floor < _MIN_DYNAMIC_RANGE_DB:
        return []
    quiet = levels < floor + _PAUSE_LEVEL * (speech - floor)
    edges = np.diff(np.concatenate(([0], quiet.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True) if e - s >= min_frames]


def _next_cut(
    start_ms: int,
    target_ms: int,
    max_ms: int,
    pauses: list[tuple[int, int]],
    dips: npt.NDArray[np.float64],
) -> int:
    """Where the chunk starting at `start_ms` should end."""
    earliest = start_ms + target_ms // 2
    latest = start_ms + max_ms
    goal = start_ms + target_ms
    best: tuple[float, int] | None = None
    for first, end in pauses:
        middle = (first + end) // 2 * FRAME_MS
        if middle <= earliest:
            continue
        if middle > latest:
            break
        length = min((end - first) * FRAME_MS, _LONGEST_USEFUL_PAUSE_MS)
        score = length - _DISTANCE_PENALTY * abs(middle - goal)
        if best is None or score > best[0]:
            best = (score, middle)
    if best is not None:
        return best[1]
    return _quietest_moment(earliest, goal, latest, dips)


def _quietest_moment(earliest: int, goal: int, latest: int, dips: npt.NDArray[np.float64]) -> int:
    """The least harmful hard cut: the quietest frame in the window, nearest the goal on ties."""
    first = earliest // FRAME_MS + 1
    last = min(latest // FRAME_MS, dips.size - 1)
    if last < first:
        return latest
    window = dips[first : last + 1]
    frames = np.arange(first, last + 1)
    tie_break = np.abs(frames - goal // FRAME_MS) * 1e-6
    return int(frames[np.argmin(window + tie_break)]) * FRAME_MS


def _smoothed(levels: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    kernel = np.ones(_DIP_SMOOTHING_FRAMES) / _DIP_SMOOTHING_FRAMES
    return np.convolve(levels, kernel, mode="same")
