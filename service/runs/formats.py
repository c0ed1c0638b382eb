"""Transcript downloads: txt, srt, vtt and json."""

from __future__ import annotations

import json
from collections.abc import Callable

from service.engines.base import Transcript

MEDIA_TYPES = {
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "json": "application/json",
}


def _clock(ms: int, separator: str) -> str:
    hours, rest = divmod(max(0, ms), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def clock(ms: int) -> str:
    """A moment in a recording as the TXT format shows it: 00:01:05.200."""
    return _clock(ms, ".")


def to_txt(t: Transcript) -> str:
    if not t.segments:
        return t.text + "\n"
    return "".join(f"[{_clock(s.start_ms, '.')}] {s.text}\n" for s in t.segments)


def to_srt(t: Transcript) -> str:
    blocks = [
        f"{i}\n{_clock(s.start_ms, ',')} --> {_clock(s.end_ms, ',')}\n{s.text}\n"
        for i, s in enumerate(t.segments, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(t: Transcript) -> str:
    cues = [
        f"{_clock(s.start_ms, '.')} --> {_clock(s.end_ms, '.')}\n{s.text}\n" for s in t.segments
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def to_json(t: Transcript) -> str:
    return json.dumps(t.to_json(), ensure_ascii=False)


RENDERERS: dict[str, Callable[[Transcript], str]] = {
    "txt": to_txt,
    "srt": to_srt,
    "vtt": to_vtt,
    "json": to_json,
}
