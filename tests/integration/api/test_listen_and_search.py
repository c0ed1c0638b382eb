"""Listening to a recording (Range requests), renaming it, and searching transcripts, against a
real `tapeline serve` and Postgres."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.runs import store as runs
from tests.integration.api.test_api import token_for, upload
from tests.integration.helpers import make_audio
from tests.server import api_server
from tests.speech import speak


@pytest.fixture(scope="module")
def server(
    subprocess_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with api_server(subprocess_env, tmp_path_factory.mktemp("logs") / "api.log") as base:
        yield base


@pytest.fixture(scope="module")
def clip(speech_dir: Path) -> Path:
    return speak("listen to this", speech_dir / "listen.wav")


async def test_the_recording_is_served_with_exact_ranges(
    server: str, db: AsyncEngine, clip: Path
) -> None:
    alice, bob = await token_for(db, "alice"), await token_for(db, "bob")
    audio = upload(server, alice, clip).json()
    url = f"{server}/api/audio/{audio['id']}/content"
    data = clip.read_bytes()
    size = len(data)

    whole = httpx.get(url, headers=alice)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == "audio/x-wav"
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["x-content-type-options"] == "nosniff"

    cases = {
        "bytes=0-0": (0, 0),
        f"bytes={size // 2}-{size // 2 + 99}": (size // 2, size // 2 + 99),
        "bytes=-500": (size - 500, size - 1),
        f"bytes={size - 10}-{size + 1000}": (size - 10, size - 1),
    }
    for header, (first, last) in cases.items():
        part = httpx.get(url, headers={**alice, "Range": header})
        assert part.status_code == 206, header
        assert part.headers["content-range"] == f"bytes {first}-{last}/{size}", header
        assert part.content == data[first : last + 1], header
        assert int(part.headers["content-length"]) == last - first + 1

    past = httpx.get(url, headers={**alice, "Range": f"bytes={size}-"})
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{size}"
    assert past.json()["error"]["code"] == "range_not_satisfiable"

    # an <audio> element cannot send headers: the token rides in the query, as on the streams
    token = alice["Authorization"].removeprefix("Bearer ")
    assert (
        httpx.get(f"{url}?access_token={token}", headers={"Range": "bytes=0-3"}).content
        == (data[:4])
    )
    assert httpx.get(url, headers=bob).status_code == 404
    assert httpx.get(url).status_code == 401
    head = httpx.head(url, headers=alice)
    assert head.status_code == 200 and int(head.headers["content-length"]) == size


async def test_a_recording_can_be_renamed_by_its_owner_only(
    server: str, db: AsyncEngine, clip: Path
) -> None:
    alice, bob = await token_for(db, "alice"), await token_for(db, "bob")
    audio = upload(server, alice, clip).json()
    url = f"{server}/api/audio/{audio['id']}"
    renamed = httpx.patch(url, headers=alice, json={"filename": "  预算会议 March.wav "})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["filename"] == "预算会议 March.wav"
    assert httpx.get(url, headers=alice).json()["filename"] == "预算会议 March.wav"
    for body in ({}, {"filename": ""}, {"filename": 3}, {"filename": "a\nb"}):
        refused = httpx.patch(url, headers=alice, json=body)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_request"
    assert httpx.patch(url, headers=bob, json={"filename": "mine"}).status_code == 404
    assert httpx.delete(url, headers=alice).status_code == 204
    gone = httpx.patch(url, headers=alice, json={"filename": "again"})
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "deleted"


async def finished_run(db: AsyncEngine, owner: str, segments: list[tuple[int, str]]) -> str:
    """A succeeded run whose transcript has `segments` (start ms, text), 2 s each."""
    audio = await make_audio(db, owner)
    transcript: dict[str, Any] = {
        "text": " ".join(t for _, t in segments),
        "segments": [{"start_ms": s, "end_ms": s + 2000, "text": t} for s, t in segments],
    }
    async with db.begin() as conn:
        change = await runs.create_run(
            conn, audio_id=audio["id"], owner=owner, engine="local", model=None, language=None
        )
        await conn.execute(
            text(
                "UPDATE transcript_run SET status = 'succeeded', stage = 'done', progress = 100,"
                " transcript = CAST(:t AS jsonb), finished_at = now() WHERE id = :id"
            ),
            {"t": json.dumps(transcript), "id": change.run["id"]},
        )
    return str(change.run["id"])


async def test_search_finds_the_words_and_the_moments(server: str, db: AsyncEngine) -> None:
    alice, bob = await token_for(db, "alice"), await token_for(db, "bob")
    weather = await finished_run(db, "alice", [(0, "the weather is sunny"), (2000, "bring tea")])
    budget = await finished_run(
        db, "alice", [(0, "good morning"), (4000, "the budget for next year"), (8000, "budget cut")]
    )
    chinese = await finished_run(db, "alice", [(0, "大家好"), (3000, "我们讨论一下明年的预算。")])
    await finished_run(db, "bob", [(0, "my own budget")])

    def search(words: str, headers: dict[str, str] = alice) -> list[dict[str, Any]]:
        answer = httpx.get(f"{server}/api/runs", params={"q": words}, headers=headers)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["items"])

    found = search("Budget")
    assert [r["id"] for r in found] == [budget]
    assert found[0]["filename"] == "meeting.wav" and found[0]["status"] == "succeeded"
    first, second = found[0]["matches"]
    assert (first["startMs"], first["endMs"]) == (4000, 6000) and second["startMs"] == 8000
    assert first["snippet"] == "the budget for next year" and first["highlights"] == [[4, 10]]

    assert [r["id"] for r in search("weather sunny")] == [weather]
    assert search("weather budget") == []  # every word must be in the transcript

    cjk = search("预算")
    assert [r["id"] for r in cjk] == [chinese]
    match = cjk[0]["matches"][0]
    assert match["startMs"] == 3000 and match["snippet"] == "我们讨论一下明年的预算。"
    start, end = match["highlights"][0]
    assert match["snippet"][start:end] == "预算"
    assert search("算预") == []  # characters must be adjacent, in order

    assert [r["owner"] for r in search("budget", bob)] == ["bob"]
    assert search("!!") == []
    assert [r["id"] for r in search("budget\x00")] == [budget]
    too_long = httpx.get(f"{server}/api/runs", params={"q": "x" * 201}, headers=alice)
    assert too_long.status_code == 400


async def test_search_uses_the_index_and_follows_the_transcript(db: AsyncEngine) -> None:
    run_id = await finished_run(db, "alice", [(0, "the budget")])
    async with db.begin() as conn:
        await conn.execute(text("SET LOCAL enable_seqscan = off"))  # the table is tiny here
        plan = "\n".join(
            row[0]
            for row in await conn.execute(
                text(
                    "EXPLAIN SELECT run_id FROM run_search"
                    " WHERE document @@ tapeline_search_query(:q)"
                ),
                {"q": "budget " + uuid.uuid4().hex},
            )
        )
        indexed = "SELECT count(*) FROM run_search WHERE run_id = :id"
        assert (await conn.execute(text(indexed), {"id": run_id})).scalar_one() == 1
        await conn.execute(
            text("UPDATE transcript_run SET transcript = NULL WHERE id = :id"), {"id": run_id}
        )
        assert (await conn.execute(text(indexed), {"id": run_id})).scalar_one() == 0
    assert "idx_run_search" in plan
