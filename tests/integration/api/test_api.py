"""The HTTP API of a real `tapeline serve` process (uvicorn, in-process worker, real Postgres)."""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service import tokens
from tests.server import api_server, env_with
from tests.speech import speak
from tests.wer import normalized

MAX_UPLOAD = 400_000
ADMIN = {"Authorization": "Bearer admin-secret-for-tests-0123456789abcdef"}


@pytest.fixture(scope="module")
def server(
    subprocess_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env = env_with(
        subprocess_env,
        MAX_UPLOAD_BYTES=str(MAX_UPLOAD),
        TRANSCRIBE_SYNC_MAX_DURATION_MS="3000",
    )
    log = tmp_path_factory.mktemp("logs") / "api.log"
    with api_server(env, log) as base:
        yield base


@pytest.fixture(scope="module")
def clips(speech_dir: Path) -> dict[str, Path]:
    """A short clip (inline) and a longer one (queued), spoken by flite."""
    return {
        "short": speak("hello world", speech_dir / "short.wav"),
        "long": speak(
            "the quick brown fox jumps over the lazy dog and then runs into the forest",
            speech_dir / "long.wav",
        ),
    }


async def token_for(db: AsyncEngine, owner: str) -> dict[str, str]:
    async with db.begin() as conn:
        token, _ = await tokens.create(conn, owner)
    return {"Authorization": f"Bearer {token}"}


def upload(
    base: str, headers: dict[str, str], path: Path, name: str | None = None
) -> httpx.Response:
    with path.open("rb") as f:
        return httpx.post(
            f"{base}/api/audio", headers=headers, files={"file": (name or path.name, f)}, timeout=60
        )


async def wait_for(base: str, headers: dict[str, str], run_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = httpx.get(f"{base}/api/runs/{run_id}", headers=headers).json()
        if run["status"] == status:
            return dict(run)
        await asyncio.sleep(0.1)
    raise AssertionError(f"run stayed {run['status']}")


async def stored_audio(db: AsyncEngine) -> int:
    async with db.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM audio"))).scalar_one())


def blob_files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "blobs").rglob("*") if p.is_file()]


async def test_requests_without_a_valid_token_are_refused(server: str) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}):
        response = httpx.get(f"{server}/api/runs", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
    in_url = httpx.get(f"{server}/api/runs?access_token={ADMIN['Authorization'][7:]}")
    assert in_url.status_code == 401, "a token in the URL is for the streams only"


async def test_upload_then_inline_run_returns_the_finished_transcript(
    server: str, db: AsyncEngine, clips: dict[str, Path]
) -> None:
    alice = await token_for(db, "alice")
    created = upload(server, alice, clips["short"])
    assert created.status_code == 201, created.text
    audio = created.json()
    assert audio["filename"] == "short.wav" and 500 < audio["durationMs"] < 3000
    assert audio["sampleRate"] == 16000 and audio["channels"] == 1
    listed = httpx.get(f"{server}/api/audio", headers=alice).json()["items"]
    assert [a["id"] for a in listed] == [audio["id"]]

    response = httpx.post(
        f"{server}/api/runs", headers=alice, json={"audioId": audio["id"]}, timeout=60
    )
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["status"] == "succeeded" and "hello" in run["transcript"]["text"].lower()

    srt = httpx.get(f"{server}/api/runs/{run['id']}/transcript?format=srt", headers=alice)
    assert srt.status_code == 200 and srt.text.startswith("1\n00:00:")
    vtt = httpx.get(f"{server}/api/runs/{run['id']}/transcript?format=vtt", headers=alice)
    assert vtt.text.startswith("WEBVTT")
    txt = httpx.get(f"{server}/api/runs/{run['id']}/transcript?format=txt", headers=alice)
    assert "hello" in txt.text.lower()


async def test_long_audio_is_queued_and_progress_has_the_documented_shape(
    server: str, db: AsyncEngine, clips: dict[str, Path]
) -> None:
    alice = await token_for(db, "alice")
    with clips["long"].open("rb") as f:
        response = httpx.post(
            f"{server}/api/transcribe",
            headers=alice,
            files={"file": ("long.wav", f)},
            data={"language": "en"},
            timeout=60,
        )
    assert response.status_code == 202, response.text
    run = response.json()
    assert run["status"] in ("queued", "processing")
    progress = httpx.get(f"{server}/api/runs/{run['id']}/progress", headers=alice).json()
    assert set(progress) == {
        "runId",
        "audioId",
        "status",
        "stage",
        "progress",
        "timeElapsed",
        "estimatedTimeRemaining",
        "audio",
        "jobs",
        "error",
    }
    assert set(progress["audio"]) == {"id", "filename", "durationMs", "sizeBytes"}
    assert set(progress["jobs"][0]) == {
        "id",
        "jobType",
        "status",
        "attempts",
        "lastError",
        "runAfter",
    }
    assert progress["jobs"][0]["jobType"] == "transcribe_long"
    done = await wait_for(server, alice, run["id"], "succeeded")
    assert {"quick", "brown", "fox"} <= set(normalized(done["transcript"]["text"]).split())
    final = httpx.get(f"{server}/api/runs/{run['id']}/progress", headers=alice).json()
    assert (final["status"], final["stage"], final["progress"]) == ("succeeded", "done", 100)
    assert final["estimatedTimeRemaining"] == 0 and final["error"] is None
    listed = httpx.get(f"{server}/api/runs?status=succeeded", headers=alice).json()["items"]
    assert run["id"] in [r["id"] for r in listed]


def mp3_of(wav: Path, out: Path) -> Path:
    with av.open(str(wav)) as src, av.open(str(out), "w", format="mp3") as dst:
        stream = dst.add_stream("libmp3lame", rate=16000)
        for frame in src.decode(audio=0):
            frame.pts = None
            for packet in stream.encode(frame):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    return out


@pytest.mark.parametrize("case", ["empty", "text_as_mp3", "truncated_mp3", "too_large"])
async def test_bad_uploads_get_a_4xx_and_nothing_is_stored(
    server: str, db: AsyncEngine, data_dir: Path, clips: dict[str, Path], tmp_path: Path, case: str
) -> None:
    alice = await token_for(db, "alice")
    before = blob_files(data_dir)
    if case == "empty":
        path, expected = tmp_path / "empty.wav", (422, "audio_unreadable")
        path.write_bytes(b"")
    elif case == "text_as_mp3":
        path, expected = tmp_path / "notes.mp3", (422, "audio_unreadable")
        path.write_text("these are my meeting notes, not audio\n" * 50)
    elif case == "truncated_mp3":
        full = mp3_of(clips["long"], tmp_path / "full.mp3")
        path, expected = tmp_path / "cut.mp3", (422, "audio_unreadable")
        path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    else:
        path, expected = tmp_path / "big.wav", (413, "upload_too_large")
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(b"\x01\x00" * (MAX_UPLOAD // 2 + 1000))
    response = upload(server, alice, path)
    assert (response.status_code, response.json()["error"]["code"]) == expected
    assert await stored_audio(db) == 0
    assert blob_files(data_dir) == before


async def test_users_never_see_each_others_audio_or_runs(
    server: str, db: AsyncEngine, clips: dict[str, Path]
) -> None:
    alice, bob = await token_for(db, "alice"), await token_for(db, "bob")
    audio = upload(server, alice, clips["short"]).json()
    run = httpx.post(f"{server}/api/runs", headers=alice, json={"audioId": audio["id"]}, timeout=60)
    run_id = run.json()["id"]
    assert httpx.get(f"{server}/api/audio/{audio['id']}", headers=bob).status_code == 404
    assert httpx.get(f"{server}/api/audio", headers=bob).json()["items"] == []
    assert httpx.get(f"{server}/api/runs", headers=bob).json()["items"] == []
    for path in ("", "/progress", "/transcript"):
        assert httpx.get(f"{server}/api/runs/{run_id}{path}", headers=bob).status_code == 404
    assert httpx.post(f"{server}/api/runs/{run_id}/retry", headers=bob).status_code == 404
    stolen = httpx.post(f"{server}/api/runs", headers=bob, json={"audioId": audio["id"]})
    assert stolen.status_code == 404
    everyone = httpx.get(f"{server}/api/runs", headers=ADMIN).json()["items"]
    assert run_id in [r["id"] for r in everyone]


async def test_bad_input_gets_json_errors_never_a_500(server: str, db: AsyncEngine) -> None:
    alice = await token_for(db, "alice")
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("POST", "/api/runs", {"content": b"{not json"}, 400, "invalid_request"),
        ("POST", "/api/runs", {"json": {}}, 400, "invalid_request"),
        ("POST", "/api/runs", {"json": {"audioId": "x"}}, 400, "invalid_request"),
        (
            "POST",
            "/api/runs",
            {"json": {"audioId": "00000000-0000-0000-0000-000000000000"}},
            404,
            "not_found",
        ),
        ("GET", "/api/runs/not-a-uuid", {}, 404, "not_found"),
        ("GET", "/api/runs?status=done", {}, 400, "invalid_request"),
        ("GET", "/api/runs?cursor=%%%", {}, 400, "invalid_request"),
        ("GET", "/api/runs?limit=0", {}, 400, "invalid_request"),
        ("POST", "/api/audio", {"content": b"raw bytes"}, 415, "unsupported_media_type"),
        ("POST", "/api/audio", {"json": {"file": "x"}}, 400, "invalid_request"),
        ("POST", "/api/audio", {"files": {"other": ("a.wav", b"x")}}, 400, "invalid_request"),
        ("GET", "/api/nowhere", {}, 404, "not_found"),
        ("DELETE", "/api/runs", {}, 405, "method_not_allowed"),
        ("GET", "/api/admin/worker", {}, 403, "forbidden"),
        ("GET", "/api/runs/events?lastEventId=abc", {}, 400, "invalid_request"),
        ("GET", f"/api/runs/events?lastEventId={2**63}", {}, 400, "invalid_request"),
    ]
    for method, path, kwargs, status, code in cases:
        response = httpx.request(method, f"{server}{path}", headers=alice, **kwargs)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), path


async def test_unknown_engine_is_refused_with_the_available_ones_named(
    server: str, db: AsyncEngine, clips: dict[str, Path]
) -> None:
    alice = await token_for(db, "alice")
    audio = upload(server, alice, clips["short"]).json()
    response = httpx.post(
        f"{server}/api/runs", headers=alice, json={"audioId": audio["id"], "engine": "whisper"}
    )
    assert response.status_code == 422
    assert "local" in response.json()["error"]["message"]


async def test_cancel_and_retry_follow_the_run_state(
    server: str, db: AsyncEngine, clips: dict[str, Path]
) -> None:
    alice = await token_for(db, "alice")
    audio = upload(server, alice, clips["short"]).json()
    run = httpx.post(
        f"{server}/api/runs", headers=alice, json={"audioId": audio["id"]}, timeout=60
    ).json()
    assert httpx.post(f"{server}/api/runs/{run['id']}/cancel", headers=alice).status_code == 409
    assert httpx.post(f"{server}/api/runs/{run['id']}/retry", headers=alice).status_code == 409
    pending = httpx.get(f"{server}/api/runs/{run['id']}/transcript?format=pdf", headers=alice)
    assert pending.status_code == 400


async def test_pagination_walks_every_run_once(
    server: str, db: AsyncEngine, clips: dict[str, Path]
) -> None:
    alice = await token_for(db, "alice")
    audio = upload(server, alice, clips["short"]).json()
    created = []
    for _ in range(5):
        r = httpx.post(
            f"{server}/api/runs", headers=alice, json={"audioId": audio["id"]}, timeout=60
        )
        created.append(r.json()["id"])
    seen: list[str] = []
    cursor = ""
    while True:
        page = httpx.get(f"{server}/api/runs?limit=2&cursor={cursor}", headers=alice).json()
        seen.extend(r["id"] for r in page["items"])
        if not page["nextCursor"]:
            break
        cursor = page["nextCursor"]
    assert seen == list(reversed(created))


async def test_admin_sees_workers_and_can_stop_and_start_this_process_worker(
    server: str,
) -> None:
    deadline = time.monotonic() + 5
    while True:
        state = httpx.get(f"{server}/api/admin/worker", headers=ADMIN).json()
        if any(w["id"] == state["worker"]["id"] for w in state["workers"]):
            break
        assert time.monotonic() < deadline, "the worker's heartbeat never (re)registered it"
        await asyncio.sleep(0.1)
    assert state["worker"]["state"] == "running"
    assert set(state["queue"]) == {"queued", "processing", "succeeded", "failed", "cancelled"}
    stopped = httpx.delete(f"{server}/api/admin/worker", headers=ADMIN, timeout=60).json()
    assert stopped["worker"] is None
    started = httpx.post(f"{server}/api/admin/worker", headers=ADMIN).json()
    assert started["worker"]["state"] in ("running", "stopped")
    assert httpx.get(f"{server}/api/admin/worker", headers=ADMIN).json()["worker"] is not None


async def test_readiness_reports_database_and_migrations(server: str) -> None:
    ready = httpx.get(f"{server}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "migrations": "current", "listener": "ok"}
    assert ready.json()["model"]["present"] is True, "tests point WHISPER_MODEL at tiny.en"


async def test_an_english_only_model_refuses_another_language_before_anything_is_queued(
    server: str, db: AsyncEngine, clips: dict[str, Path]
) -> None:
    alice = await token_for(db, "alice")
    audio = upload(server, alice, clips["long"]).json()
    response = httpx.post(
        f"{server}/api/runs", headers=alice, json={"audioId": audio["id"], "language": "de"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "engine_refused"
    assert "English only" in response.json()["error"]["message"]
    other = httpx.post(
        f"{server}/api/runs", headers=alice, json={"audioId": audio["id"], "model": "large-v3"}
    )
    assert (other.status_code, other.json()["error"]["code"]) == (422, "model_not_allowed")
    async with db.connect() as conn:
        runs = (await conn.execute(text("SELECT count(*) FROM transcript_run"))).scalar_one()
    assert runs == 0


async def test_prompt_and_hotwords_reach_the_run_and_words_come_back(
    server: str, db: AsyncEngine, speech_dir: Path
) -> None:
    alice = await token_for(db, "alice")
    clip = speak("please send the report to kathryn before friday", speech_dir / "kathryn.wav")
    with clip.open("rb") as f:
        response = httpx.post(
            f"{server}/api/transcribe",
            headers=alice,
            files={"file": ("kathryn.wav", f)},
            data={"prompt": "Meeting with Kathryn.", "hotwords": "Kathryn"},
            timeout=60,
        )
    assert response.status_code == 202, response.text
    run = await wait_for(server, alice, response.json()["id"], "succeeded")
    assert (run["prompt"], run["hotwords"]) == ("Meeting with Kathryn.", "Kathryn")
    assert "Kathryn" in run["transcript"]["text"]
    words = [w for s in run["transcript"]["segments"] for w in s["words"]]
    assert [w["text"] for w in words][:4] == ["Please", "send", "the", "report"]
    assert all(0 <= w["probability"] <= 1 and w["start_ms"] <= w["end_ms"] for w in words)
    too_long = httpx.post(
        f"{server}/api/runs", headers=alice, json={"audioId": run["audioId"], "prompt": "x" * 1001}
    )
    assert (too_long.status_code, too_long.json()["error"]["code"]) == (400, "invalid_request")
