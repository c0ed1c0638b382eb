"""Placing, prompting and failing chunks, the parts of cloud transcription without a network."""

from __future__ import annotations

import pytest

from service.engines.base import Segment, stitched
from service.engines.chunk_results import ChunkResult, reusable
from service.engines.cloud import absolute, last_words, primary_language, raise_first_failure
from service.errors import EngineAuthFailed, UpstreamTimeout


def test_chunk_segments_are_placed_in_the_recording_and_clamped_to_their_chunk() -> None:
    relative = [Segment(500, 900, " b "), Segment(0, 400, "a"), Segment(9_000, 99_000, "c")]
    relative += [Segment(100, 50, "  "), Segment(10_000, 11_000, "invented")]
    placed = absolute(relative, (10_000, 20_000))
    assert placed == (
        Segment(10_000, 10_400, "a"),
        Segment(10_500, 10_900, "b"),
        Segment(19_000, 20_000, "c"),
    )


def test_the_previous_chunks_last_words_become_the_prompt() -> None:
    chunk = ChunkResult(0, 0, 1_000, (Segment(0, 500, "one two"), Segment(500, 900, "three")), "x")
    assert last_words(chunk, 2) == "two three"
    assert last_words(None) is None


def test_a_stored_chunk_is_reused_only_for_the_same_span_and_engine() -> None:
    kept = {0: ChunkResult(0, 0, 1_000, (), "openai")}
    assert reusable(kept, 0, (0, 1_000), "openai") is kept[0]
    assert reusable(kept, 0, (0, 2_000), "openai") is None
    assert reusable(kept, 0, (0, 1_000), "gemini") is None
    assert reusable(kept, 1, (1_000, 2_000), "openai") is None


def test_stitching_orders_segments_by_time_across_chunks() -> None:
    late = ChunkResult(1, 1_000, 2_000, (Segment(1_000, 1_500, "late"),), "x")
    early = ChunkResult(0, 0, 1_000, (Segment(0, 500, "early"),), "x")
    assert [s.text for s in stitched([late, early])] == ["early", "late"]


def test_a_permanent_failure_wins_over_a_transient_one() -> None:
    with pytest.raises(EngineAuthFailed):
        raise_first_failure([None, UpstreamTimeout(), EngineAuthFailed()])
    with pytest.raises(UpstreamTimeout):
        raise_first_failure([UpstreamTimeout(), None])
    raise_first_failure([None, None])


def test_languages_go_to_providers_as_iso_639_1() -> None:
    assert primary_language("en-US") == "en"
    assert primary_language("pt_BR") == "pt"
    assert primary_language(None) is None
