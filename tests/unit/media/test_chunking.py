"""Cuts at pauses: synthetic speech-like tones separated by silences of known positions."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from service.media.chunking import (
    FRAME_MS,
    MIN_CHUNK_MS,
    LevelMeter,
    frame_levels_db,
    has_sound,
    plan_chunks,
    plan_from_levels,
    silent_spans,
)

RATE = 16_000


def tone(ms: int, level: int = 8_000) -> np.ndarray:
    t = np.arange(ms * RATE // 1000) / RATE
    noise = np.random.default_rng(ms).normal(0, level / 8, t.size)
    return (level * np.sin(2 * np.pi * 220 * t) + noise).astype("<i2")


def silence(ms: int) -> np.ndarray:
    return np.zeros(ms * RATE // 1000, dtype="<i2")


def recording(pattern: list[tuple[str, int]]) -> tuple[bytes, list[tuple[int, int]]]:
    """PCM for a pattern of ("speech"|"pause", ms), and where the pauses are."""
    parts, pauses, at = [], [], 0
    for kind, ms in pattern:
        parts.append(tone(ms) if kind == "speech" else silence(ms))
        if kind == "pause":
            pauses.append((at, at + ms))
        at += ms
    return np.concatenate(parts).tobytes(), pauses


def test_spans_are_contiguous_cover_everything_and_cut_inside_pauses() -> None:
    pattern = [("speech", 7_000), ("pause", 600)] * 12
    pcm, pauses = recording(pattern)
    spans = plan_chunks(pcm, RATE, target_ms=15_000, max_ms=30_000)
    total = sum(ms for _, ms in pattern)
    assert spans[0][0] == 0 and abs(spans[-1][1] - total) <= 1
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    for _, cut in spans[:-1]:
        assert any(start <= cut <= end for start, end in pauses), f"cut at {cut} ms is in speech"
    assert len(spans) > 3


def test_no_span_is_longer_than_the_maximum_even_without_pauses() -> None:
    pcm, _ = recording([("speech", 95_000)])
    spans = plan_chunks(pcm, RATE, target_ms=15_000, max_ms=30_000)
    assert all(end - start <= 30_000 for start, end in spans)
    assert spans[-1][1] == 95_000 and len(spans) >= 4


def test_a_short_recording_is_one_chunk_and_silence_is_handled() -> None:
    pcm, _ = recording([("speech", 4_000), ("pause", 500), ("speech", 3_000)])
    assert plan_chunks(pcm, RATE, target_ms=15_000, max_ms=30_000) == [(0, 7_500)]
    assert plan_chunks(b"", RATE) == []
    quiet = silence(70_000).tobytes()
    assert all(end - start <= 30_000 for start, end in plan_chunks(quiet, RATE, 15_000, 30_000))


def test_the_pause_nearest_the_target_length_wins() -> None:
    pcm, pauses = recording(
        [("speech", 5_000), ("pause", 800), ("speech", 9_000), ("pause", 800), ("speech", 20_000)]
    )
    first_cut = plan_chunks(pcm, RATE, target_ms=15_000, max_ms=30_000)[0][1]
    assert pauses[1][0] <= first_cut <= pauses[1][1], "the pause near 15 s, not the one at 5 s"


def test_pauses_are_judged_against_the_recordings_own_level() -> None:
    """A quiet speaker over room hiss: the pauses are far from digital silence, yet found."""
    pattern = [("speech", 6_000), ("pause", 500)] * 10
    clean, pauses = recording(pattern)
    samples = np.frombuffer(clean, dtype="<i2").astype(np.float64) / 40
    samples += np.random.default_rng(7).normal(0, 30, samples.size)
    spans = plan_chunks(samples.astype("<i2").tobytes(), RATE, target_ms=15_000, max_ms=30_000)
    assert len(spans) > 2
    for _, cut in spans[:-1]:
        assert any(start <= cut <= end for start, end in pauses), f"cut at {cut} ms is in speech"


def test_a_pause_just_before_the_end_leaves_no_sliver_behind() -> None:
    """The reported case: a cut 25 ms before the end gave PocketSphinx nothing to decode."""
    pcm, _ = recording([("speech", 7_000), ("pause", 600)] * 12 + [("speech", 20)])
    spans = plan_chunks(pcm, RATE, target_ms=15_000, max_ms=30_000)
    assert all(end - start >= MIN_CHUNK_MS for start, end in spans), spans
    assert spans[-1][1] >= 91_200


@settings(max_examples=150, deadline=None)
@given(
    levels=st.lists(st.sampled_from([-100.0, -60.0, -30.0, -12.0]), min_size=1, max_size=12_000),
    target_s=st.integers(1, 30),
    extra_s=st.integers(0, 30),
)
def test_no_plan_has_a_chunk_under_the_minimum_or_over_the_maximum(
    levels: list[float], target_s: int, extra_s: int
) -> None:
    target_ms, max_ms = target_s * 1000, (target_s + extra_s) * 1000
    total_ms = len(levels) * FRAME_MS
    spans = plan_from_levels(np.array(levels), total_ms, target_ms, max_ms)
    assert spans[0][0] == 0 and spans[-1][1] == total_ms
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert all(end - start <= max_ms for start, end in spans), spans
    if total_ms >= MIN_CHUNK_MS:
        assert all(end - start >= MIN_CHUNK_MS for start, end in spans), spans


def test_spans_without_sound_are_marked_silent() -> None:
    pcm, _ = recording([("speech", 5_000), ("pause", 20_000), ("speech", 5_000)])
    samples = np.frombuffer(pcm, dtype="<i2")
    meter = LevelMeter(RATE)
    for block in np.array_split(samples, 7):
        meter.add(block)
    levels = meter.levels()
    assert np.allclose(levels, frame_levels_db(samples, RATE))
    spans = [(0, 5_000), (5_500, 24_500), (24_500, 30_000)]
    assert silent_spans(levels, spans) == frozenset({1})


def test_silence_and_a_faint_hiss_have_no_sound_but_quiet_speech_does() -> None:
    hiss = np.random.default_rng(1).normal(0, 3, RATE * 2).astype("<i2")
    assert not has_sound(silence(3_000).tobytes(), RATE)
    assert not has_sound(hiss.tobytes(), RATE)
    assert has_sound((tone(2_000, level=100)).tobytes(), RATE)
    assert not has_sound(b"", RATE)
