"""Live partial transcripts: a real `tapeline serve`, its worker on the local engine or on the
real OpenAI SDK talking to the fake provider, and real SSE clients.

Whatever order chunks finish in and whenever a client joins or drops, the partials it holds
add up to the final transcript, and `done` comes after all of them.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes import (
    Fakes,
    OpenAISegment,
    RecordedRequest,
    Transcription,
    TranscriptionCall,
    running_fakes,
)
from tests.server import api_server, env_with, tapeline
from tests.speech import long_recording
from tests.sse import Received, collect

pytestmark = pytest.mark.timeout(240)

CHUNK = re.compile(r"chunk-(\d+)")


@dataclass
class Server:
    base: str
    headers: dict[str, str]
    fakes: Fakes
    recording: Path
    """About 70 s of speech: seven OpenAI chunks of up to 10 s, or three local ones (a local
    recording of a minute or less is one window, so it needs more than that to be cut)."""


@pytest.fixture(scope="module")
def server(
    subprocess_env: dict[str, str], speech_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    recording = speech_dir / "partials-70s.wav"
    if not recording.exists():
        long_recording(recording, 1.15)
    with running_fakes() as fakes:
        env = env_with(
            subprocess_env,
            OPENAI_API_KEY="sk-partials-test-key",
            OPENAI_BASE_URL=fakes.openai_url,
            OPENAI_CHUNK_MS="10000",
            ENGINE_MAX_CONCURRENT_CHUNKS="8",
            TRANSCRIBE_SYNC_MAX_DURATION_MS="0",
        )
        token = subprocess.run(
            tapeline("token", "create", "reader"), env=env, capture_output=True, text=True
        ).stdout.strip()
        log = tmp_path_factory.mktemp("partials") / "serve.log"
        with api_server(env, log) as base:
            yield Server(base, {"Authorization": f"Bearer {token}"}, fakes, recording)


def chunk_of(request: RecordedRequest | TranscriptionCall) -> int:
    """Which chunk a transcription request carries, from its file name (chunk-0003.flac)."""
    if isinstance(request, RecordedRequest):
        request = TranscriptionCall.of(request)
    name = request.file_name
    match = CHUNK.search(name or "")
    assert match, f"no chunk in {name!r}"
    return int(match.group(1))


def words_per_chunk(server: Server) -> None:
    """The fake says which chunk it heard, so a misplaced partial shows in the text."""
    server.fakes.reset()
    server.fakes.openai.transcribe_to(
        lambda call: Transcription(
            segments=(
                OpenAISegment(0.1, 0.4, f"chunk {chunk_of(call)} begins"),
                OpenAISegment(0.5, 0.8, f"chunk {chunk_of(call)} ends"),
            )
        )
    )


async def start(client: httpx.AsyncClient, server: Server, engine: str) -> str:
    response = await client.post(
        f"{server.base}/api/transcribe",
        headers=server.headers,
        files={"file": ("talk.wav", server.recording.read_bytes(), "audio/wav")},
        data={"engine": engine},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def until_final(messages: list[Received]) -> bool:
    return any(m.kind in ("done", "error") for m in messages)


async def follow(
    client: httpx.AsyncClient,
    server: Server,
    run_id: str,
    *,
    last_event_id: str | None = None,
    until: Callable[[list[Received]], bool] = until_final,
    timeout: float = 60,
) -> list[Received]:
    """The run's stream, from the start or resumed, until `until` or its end."""
    resume = {"Last-Event-ID": last_event_id} if last_event_id else {}
    url = f"{server.base}/api/runs/{run_id}/events"
    messages, _ = await collect(
        client, url, headers={**server.headers, **resume}, until=until, timeout=timeout
    )
    return messages


def partials(messages: list[Received]) -> list[Received]:
    return [m for m in messages if m.kind == "partial"]


def stitched(received: list[Received]) -> list[dict[str, Any]]:
    """What a client shows: every partial's segments, placed by time."""
    segments = [s for m in received for s in m.data["segments"]]
    return sorted(segments, key=lambda s: (s["start_ms"], s["end_ms"]))


async def final_transcript(client: httpx.AsyncClient, server: Server, run_id: str) -> Any:
    response = await client.get(
        f"{server.base}/api/runs/{run_id}/transcript", headers=server.headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["transcript-complete"] == "true"
    return response.json()


async def so_far(client: httpx.AsyncClient, server: Server, run_id: str) -> httpx.Response:
    return await client.get(
        f"{server.base}/api/runs/{run_id}/transcript",
        params={"partial": "1", "format": "json"},
        headers=server.headers,
    )


def assert_adds_up(received: list[Received], transcript: dict[str, Any]) -> None:
    """One partial per chunk, none twice, and together exactly the final transcript."""
    indexes = [m.data["chunkIndex"] for m in received]
    assert len(indexes) == len(set(indexes)), f"a partial came twice: {indexes}"
    assert sorted(indexes) == list(range(len(indexes)))
    assert stitched(received) == transcript["segments"]
    assert " ".join(s["text"] for s in stitched(received)) == transcript["text"]
    for m in received:
        assert all(
            m.data["startMs"] <= s["start_ms"] <= m.data["endMs"] for s in m.data["segments"]
        )


async def test_local_engine_partials_add_up_to_the_final_transcript(server: Server) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        run_id = await start(client, server, "local")
        messages = await follow(client, server, run_id, timeout=180)
        transcript = await final_transcript(client, server, run_id)
    assert messages[0].kind == "init" and messages[-1].kind == "done"
    received = partials(messages)
    assert len(received) >= 3, [m.kind for m in messages]
    assert_adds_up(received, transcript)
    assert len(transcript["text"].split()) > 30, "the speech was heard"
    done = messages[-1]
    assert all(int(m.id or 0) < int(done.id or 0) for m in received), "done came last"


async def test_out_of_order_chunks_still_make_an_ordered_transcript(server: Server) -> None:
    words_per_chunk(server)
    server.fakes.openai.delay(lambda request: max(0.0, 2.0 - 0.4 * chunk_of(request)))
    async with httpx.AsyncClient(timeout=30) as client:
        run_id = await start(client, server, "openai")
        messages = await follow(client, server, run_id, timeout=60)
        transcript = await final_transcript(client, server, run_id)
    assert messages[-1].kind == "done", messages[-1].data
    received = partials(messages)
    arrival = [m.data["chunkIndex"] for m in received]
    assert len(arrival) >= 4 and arrival != sorted(arrival), f"finished in order: {arrival}"
    assert_adds_up(received, transcript)
    texts = [s["text"] for s in transcript["segments"]]
    expected = [f"chunk {i} {part}" for i in range(len(arrival)) for part in ("begins", "ends")]
    assert texts == expected, "the transcript reads in the recording's order"


async def test_a_client_joining_halfway_gets_the_earlier_partials_first(server: Server) -> None:
    words_per_chunk(server)
    server.fakes.openai.delay(lambda request: 0.0 if chunk_of(request) == 0 else 3.0)
    async with httpx.AsyncClient(timeout=30) as client:
        run_id = await start(client, server, "openai")
        response = await so_far(client, server, run_id)
        assert response.headers["transcript-complete"] == "false"
        deadline = time.monotonic() + 30
        while not (await so_far(client, server, run_id)).json()["segments"]:
            assert time.monotonic() < deadline, "no chunk finished"
            await asyncio.sleep(0.05)
        whole = await client.get(
            f"{server.base}/api/runs/{run_id}/transcript", headers=server.headers
        )
        assert whole.status_code == 409 and "partial=1" in whole.json()["error"]["message"]
        messages = await follow(client, server, run_id, timeout=60)
        transcript = await final_transcript(client, server, run_id)
    init = messages[0]
    assert init.kind == "init" and init.data["status"] == "processing"
    opening = [m for m in messages[1:] if m.kind == "partial" and m.id == init.id]
    assert [m.data["chunkIndex"] for m in opening] == [0], "the finished chunk came first"
    assert messages[1] is opening[0]
    live = [m for m in partials(messages) if m not in opening]
    assert live and all(int(m.id or 0) > int(init.id or 0) for m in live)
    assert messages[-1].kind == "done"
    assert_adds_up(partials(messages), transcript)


async def test_resuming_after_a_drop_neither_loses_nor_repeats_a_partial(server: Server) -> None:
    words_per_chunk(server)
    server.fakes.openai.delay(lambda request: 0.6 * (1 + chunk_of(request)))
    async with httpx.AsyncClient(timeout=30) as client:
        run_id = await start(client, server, "openai")
        first = await follow(
            client,
            server,
            run_id,
            until=lambda m: any(x.kind == "partial" and x.id != m[0].id for x in m),
        )
        dropped_at = first[-1].id
        assert first[-1].kind == "partial" and dropped_at
        rest = await follow(client, server, run_id, last_event_id=dropped_at)
        transcript = await final_transcript(client, server, run_id)
    assert rest[-1].kind == "done"
    assert partials(rest), "later partials were replayed or sent live"
    assert all(int(m.id or 0) > int(dropped_at) for m in partials(rest))
    assert_adds_up(partials(first) + partials(rest), transcript)
