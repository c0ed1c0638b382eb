from __future__ import annotations

from service.engines.base import Segment, Transcript
from service.runs.formats import to_srt, to_txt, to_vtt

T = Transcript.from_segments(
    [Segment(3_723_456, 3_725_000, "second"), Segment(0, 1_500, "first")], language="en"
)


def test_segments_are_ordered_and_text_joined() -> None:
    assert T.text == "first second"
    assert [s.text for s in T.segments] == ["first", "second"]


def test_srt_numbers_cues_and_uses_commas() -> None:
    assert to_srt(T) == (
        "1\n00:00:00,000 --> 00:00:01,500\nfirst\n\n2\n01:02:03,456 --> 01:02:05,000\nsecond\n"
    )


def test_vtt_has_its_header_and_dots() -> None:
    assert to_vtt(T).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nfirst\n")


def test_txt_carries_timestamps() -> None:
    assert to_txt(T) == "[00:00:00.000] first\n[01:02:03.456] second\n"


def test_round_trip_through_json() -> None:
    assert Transcript.from_json(T.to_json()) == T
