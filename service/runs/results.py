"""A run's transcript: a succeeded run's read back from storage, where the worker put it, or
what is finished so far of a run still on its way (its partial transcripts, from run_event)."""

from __future__ import annotations

import json

from service.context import Context
from service.database import Row
from service.engines.base import Transcript
from service.errors import Deleted
from service.runs.store import partial_transcript, partials


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


async def transcript_so_far(ctx: Context, run: Row) -> Transcript:
    """The chunks the run's latest attempt has finished, stitched in time order; for a run
    that failed, the text it got to, which is better than nothing."""
    async with ctx.db.connect() as conn:
        finished = await partials(conn, run["id"])
    return partial_transcript(finished, run["language"])
