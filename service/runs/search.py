"""Full-text search over finished transcripts (PostgreSQL, the `simple` configuration).

A query's words must all be in a run's transcript; the segments that hold any of them come back
as snippets with their times, so a page or a terminal can open the recording at that moment. How
the text is indexed (CJK characters one by one, matched as phrases) is explained in the migration
`0009_search`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from service.database import Row
from service.queries import q

MATCHES_PER_RUN = 3
MAX_QUERY_CHARS = 200
_START, _STOP = "\x02", "\x03"
HEADLINE_OPTIONS = f"StartSel={_START}, StopSel={_STOP}, MaxWords=30, MinWords=12, ShortWord=0"
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")


@dataclass(frozen=True, slots=True)
class Snippet:
    """A piece of a segment's text and the [start, end) character ranges that matched."""

    text: str
    highlights: tuple[tuple[int, int], ...]


async def search(conn: AsyncConnection, owner: str | None, words: str, limit: int) -> list[Row]:
    params = {
        "q": words,
        "owner": owner,
        "limit": limit,
        "per_run": MATCHES_PER_RUN,
        "headline_options": HEADLINE_OPTIONS,
    }
    return list((await conn.execute(q("search_runs"), params)).mappings().all())


def snippet(headline: str) -> Snippet:
    """Turn ts_headline's output (CJK spaced out, matches between sentinels) back into text as
    it was spoken, with the matched ranges as offsets: no markup for a client to escape."""
    out: list[str] = []
    highlights: list[tuple[int, int]] = []
    start: int | None = None
    opening = pending_space = False
    for char in headline:
        if char == _START:
            opening = True
        elif char == _STOP:
            if start is not None:
                highlights.append((start, len(out)))
            start, opening = None, False
        elif char.isspace():
            pending_space = True
        else:
            if pending_space and out and not (_CJK.match(char) or _CJK.match(out[-1])):
                out.append(" ")
            pending_space = False
            if opening:
                start, opening = len(out), False
            out.append(char)
    return Snippet("".join(out), _merge(highlights))


def _merge(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return tuple(merged)


def matches_json(row: Row) -> list[dict[str, Any]]:
    """The `matches` of a search result: where in the recording, and the snippet there."""
    found = []
    for match in row["matches"]:
        piece = snippet(match["headline"])
        found.append(
            {
                "startMs": match["startMs"],
                "endMs": match["endMs"],
                "snippet": piece.text,
                "highlights": [list(r) for r in piece.highlights],
            }
        )
    return found
