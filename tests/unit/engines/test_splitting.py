"""Cutting a recording into MP3 chunks a provider accepts."""

from __future__ import annotations

import itertools
from pathlib import Path

from service.engines.splitting import (
    BIT_RATE,
    encode_span,
    longest_chunk_ms,
    plan_upload,
)
from service.media.audio import probe
from tests.speech import long_recording


def test_chunks_are_shortened_until_their_mp3_fits_the_byte_limit() -> None:
    assert longest_chunk_ms(600_000, None) == 600_000
    assert longest_chunk_ms(600_000, 25 * 1024 * 1024) == 600_000
    fits = longest_chunk_ms(600_000, 1_000_000)
    assert fits * BIT_RATE / 8 / 1000 <= 1_000_000 and fits > 200_000


def test_a_recording_is_cut_at_pauses_into_contiguous_playable_chunks(tmp_path: Path) -> None:
    wav, _ = long_recording(tmp_path / "talk.wav", 0.5)
    plan = plan_upload(wav, tmp_path, max_chunk_ms=10_000)
    assert plan.spans[0][0] == 0 and plan.spans[-1][1] == plan.duration_ms
    assert all(a[1] == b[0] for a, b in itertools.pairwise(plan.spans))
    assert all(end - start <= 10_000 for start, end in plan.spans)
    chunk = encode_span(plan.pcm_path, 1, plan.spans[1], tmp_path)
    info = probe(chunk.path)
    span_ms = chunk.end_ms - chunk.start_ms
    assert (info.codec, info.sample_rate, info.channels) == ("mp3", 16_000, 1)
    assert abs(info.duration_ms - span_ms) < 200
    assert chunk.size_bytes < span_ms * BIT_RATE / 8 / 1000 * 1.1 + 2_000
    lossless = encode_span(plan.pcm_path, 1, plan.spans[1], tmp_path, "flac")
    assert (probe(lossless.path).codec, lossless.mime_type) == ("flac", "audio/flac")
    assert lossless.size_bytes < span_ms * 32
