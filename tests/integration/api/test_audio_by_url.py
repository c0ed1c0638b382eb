"""Audio by URL through a real `tapeline serve`: `POST /api/audio`, `/api/transcribe` and
`/api/runs` with a URL; small files are fetched in the request, unsized ones by the worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service import tokens
from tests.receiver import send_file, send_status, serving
from tests.server import api_server, env_with
from tests.speech import speak

MAX_UPLOAD = 2_000_000


@pytest.fixture(scope="module")
def server(
    subprocess_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env = env_with(subprocess_env, FETCH_ALLOW_PRIVATE="1", MAX_UPLOAD_BYTES=str(MAX_UPLOAD))
    with api_server(env, tmp_path_factory.mktemp("logs") / "api.log") as base:
        yield base


@pytest.fixture(scope="module")
def site(speech_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    clip = speak("good morning everyone", speech_dir / "url.wav")
    files = tmp_path_factory.mktemp("site")
    (files / "notes.txt").write_text("not audio at all " * 100)
    (files / "big.wav").write_bytes(b"\0" * (MAX_UPLOAD + 1))
    routes = {
        "/url.wav": send_file(clip),
        "/unsized.wav": send_file(clip, sized=False),
        "/notes.txt": send_file(files / "notes.txt"),
        "/big.wav": send_file(files / "big.wav"),
        "/missing.wav": send_status(404),
    }
    with serving(routes) as url:
        yield url


@pytest.fixture
async def auth(db: AsyncEngine) -> dict[str, str]:
    async with db.begin() as conn:
        token, _ = await tokens.create(conn, "ursula")
    return {"Authorization": f"Bearer {token}"}


def post(base: str, path: str, auth: dict[str, str], body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{base}{path}", headers=auth, json=body, timeout=60)


async def test_audio_from_a_url_is_stored_and_probed_like_an_upload(
    server: str, site: str, auth: dict[str, str]
) -> None:
    answer = post(server, "/api/audio", auth, {"url": f"{site}/url.wav"})
    assert answer.status_code == 201, answer.text
    audio = answer.json()
    assert audio["filename"] == "url.wav" and audio["durationMs"] > 500


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/missing.wav", 422, "fetch_failed"),
        ("/notes.txt", 422, "audio_unreadable"),
        ("/big.wav", 413, "too_large"),
    ],
)
async def test_clear_errors_for_urls_that_give_no_audio(
    server: str, site: str, auth: dict[str, str], path: str, status: int, code: str
) -> None:
    answer = post(server, "/api/audio", auth, {"url": f"{site}{path}"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), answer.text
    if code == "fetch_failed":
        assert answer.json()["error"]["status"] == 404


async def test_a_url_that_is_not_http_is_a_bad_request(server: str, auth: dict[str, str]) -> None:
    for body in ({"url": "file:///etc/passwd"}, {"url": 42}, {}):
        answer = post(server, "/api/transcribe", auth, body)
        assert answer.status_code == 400, answer.text


async def test_transcribe_a_small_url_in_the_request(
    server: str, site: str, auth: dict[str, str]
) -> None:
    answer = post(server, "/api/transcribe", auth, {"url": f"{site}/url.wav"})
    assert answer.status_code == 200, answer.text
    run = answer.json()
    assert run["status"] == "succeeded" and run["sourceUrl"] == f"{site}/url.wav"
    assert run["transcript"]["segments"]


async def test_an_unsized_url_is_fetched_by_the_worker_in_a_fetching_stage(
    server: str, site: str, auth: dict[str, str], db: AsyncEngine
) -> None:
    answer = post(server, "/api/runs", auth, {"audioUrl": f"{site}/unsized.wav"})
    assert answer.status_code == 202, answer.text
    queued = answer.json()
    assert queued["audioId"] is None and queued["sourceUrl"] == f"{site}/unsized.wav"
    deadline = time.monotonic() + 60
    while (run := httpx.get(f"{server}/api/runs/{queued['id']}", headers=auth).json())[
        "status"
    ] != "succeeded":
        assert run["status"] in ("queued", "processing") and time.monotonic() < deadline, run
        await asyncio.sleep(0.1)
    assert run["audioId"] is not None and run["transcript"]["segments"]
    async with db.connect() as conn:
        stages = await conn.execute(
            text("SELECT type, payload->>'stage' FROM run_event WHERE run_id = :r ORDER BY id"),
            {"r": queued["id"]},
        )
        assert ("started", "fetching") in [tuple(row) for row in stages]
