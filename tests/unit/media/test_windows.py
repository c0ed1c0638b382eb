"""Decoding as a stream of windows: they tile the recording exactly and are cut in pauses."""

from __future__ import annotations

import itertools
import wave
from pathlib import Path

import numpy as np

from service.media.audio import decode_pcm16, decode_windows
from tests.speech import long_recording


def test_windows_tile_the_recording_grow_and_end_in_pauses(tmp_path: Path) -> None:
    path, _ = long_recording(tmp_path / "three.wav", 3)
    windows = list(decode_windows(path, first_ms=10_000, window_ms=60_000))
    pcm = np.frombuffer(decode_pcm16(path), dtype="<i2").astype(np.float32) / 32768
    joined = np.concatenate([w.samples for w in windows])
    assert len(joined) == len(pcm)
    assert np.abs(joined - pcm).max() < 1e-3, "the windows are the recording, nothing lost"
    assert windows[0].start_ms == 0
    assert all(a.end_ms == b.start_ms for a, b in itertools.pairwise(windows))
    lengths = [w.end_ms - w.start_ms for w in windows]
    assert 7_500 <= lengths[0] <= 11_300, "a short first window for the first words"
    assert lengths[1] > lengths[0] and max(lengths) <= 60_000 * 1.13
    for window in windows[:-1]:
        tail = window.samples[-800:]
        assert float(np.abs(tail).max()) < 0.05, f"cut inside speech at {window.end_ms} ms"


def test_a_window_never_holds_more_than_its_own_samples(tmp_path: Path) -> None:
    """Memory stays bounded: each window's array owns only its samples, not the whole file."""
    path, _ = long_recording(tmp_path / "two.wav", 2)
    with wave.open(str(path)) as wav:
        total = wav.getnframes()
    for window in decode_windows(path, first_ms=5_000, window_ms=20_000):
        assert window.samples.base is None or window.samples.base.size < total / 2
        assert len(window.samples) <= 16 * 23_000
