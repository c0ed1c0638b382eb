"""Reading a succeeded run's transcript back from storage, where the worker put it."""

from __future__ import annotations

import json

from service.context import Context
from service.engines.base import Transcript
from service.errors import Deleted
from service.runs import Row


async def stored_transcript(ctx: Context, run: Row) -> Transcript:
    """The transcript as stored; runs from before stored transcripts use the row's copy.
    A stored transcript that is gone (retention) is a 404 `deleted`, never a 500."""
    key = run["transcript_key"]
    if key is None:
        return Transcript.from_json(run["transcript"])
    try:
        data = await ctx.storage.get_bytes(key)
    except FileNotFoundError:
        raise Deleted("This run's transcript was removed from storage.") from None
    return Transcript.from_json(json.loads(data))
