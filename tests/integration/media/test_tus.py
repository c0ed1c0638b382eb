"""tus 1.0.0 against real `tapeline serve` processes, driven by tuspy (the real client) and by raw
HTTP where a client library would hide the case (a dropped connection, a bad checksum)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tusclient.client import TusClient
from tusclient.uploader import Uploader

from service import tokens
from tests.server import api_server, env_with
from tests.speech import long_recording, speak

TUS = {"Tus-Resumable": "1.0.0"}


class Sha256Uploader(Uploader):  # type: ignore[misc]
    """tuspy sends sha1 checksums by default; Tapeline documents sha256."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


@pytest.fixture(scope="module")
def server(
    subprocess_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    log = tmp_path_factory.mktemp("logs") / "api.log"
    with api_server(env_with(subprocess_env, TRANSCRIBE_SYNC_MAX_DURATION_MS="0"), log) as base:
        yield base


@pytest.fixture(scope="module")
def recording(speech_dir: Path) -> Path:
    """About a megabyte of real speech: enough to drop half-way through."""
    path, _ = long_recording(speech_dir / "tus-30s.wav", minutes=0.5)
    return path


@pytest.fixture(scope="module")
def hello(speech_dir: Path) -> Path:
    return speak("hello world", speech_dir / "tus-hello.wav")


async def token_for(db: AsyncEngine, owner: str) -> dict[str, str]:
    async with db.begin() as conn:
        token, _ = await tokens.create(conn, owner)
    return {"Authorization": f"Bearer {token}"}


def tus_client(base: str, auth: dict[str, str]) -> TusClient:
    return TusClient(f"{base}/api/uploads/", headers=dict(auth))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def upload_state(base: str, auth: dict[str, str], location: str) -> dict[str, Any]:
    response = httpx.get(f"{base}{urlparse(location).path}", headers=auth)
    assert response.status_code == 200, response.text
    return dict(response.json())


def create(base: str, auth: dict[str, str], length: int, **metadata: str) -> str:
    pairs = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in metadata.items())
    headers = {**TUS, **auth, "Upload-Length": str(length)}
    if pairs:
        headers["Upload-Metadata"] = pairs
    response = httpx.post(f"{base}/api/uploads/", headers=headers)
    assert response.status_code == 201, response.text
    assert response.headers["Tus-Resumable"] == "1.0.0" and "Upload-Expires" in response.headers
    return f"{base}{response.headers['Location']}"


def patch(url: str, auth: dict[str, str], offset: int, body: bytes, **extra: str) -> httpx.Response:
    headers = {
        **TUS,
        **auth,
        "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream",
        **extra,
    }
    return httpx.patch(url, headers=headers, content=body, timeout=60)


def drop_mid_patch(url: str, auth: dict[str, str], data: bytes, sent: int) -> None:
    """Announce the whole body, send `sent` bytes of it, and hang up, as a phone losing signal."""
    parsed = urlparse(url)
    head = (
        f"PATCH {parsed.path} HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
        f"Authorization: {auth['Authorization']}\r\nTus-Resumable: 1.0.0\r\n"
        "Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    with socket.create_connection((parsed.hostname, parsed.port)) as sock:
        sock.sendall(head.encode() + data[:sent])
        time.sleep(0.3)


def wait_for_offset(base: str, auth: dict[str, str], location: str, offset: int) -> None:
    deadline = time.monotonic() + 20
    while upload_state(base, auth, location)["offset"] != offset:
        assert time.monotonic() < deadline, upload_state(base, auth, location)
        time.sleep(0.05)


async def wait_for_run(base: str, auth: dict[str, str], run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        run = httpx.get(f"{base}/api/runs/{run_id}", headers=auth).json()
        if run["status"] not in ("queued", "processing"):
            return dict(run)
        await asyncio.sleep(0.2)
    raise AssertionError(f"run stayed {run['status']}")


async def test_discovery_needs_no_token(server: str) -> None:
    response = httpx.options(f"{server}/api/uploads/")
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    extensions = response.headers["Tus-Extension"].split(",")
    assert {"creation", "creation-with-upload", "termination", "expiration", "checksum"} <= set(
        extensions
    )
    assert "sha256" in response.headers["Tus-Checksum-Algorithm"]


async def test_dropped_at_half_a_new_client_resumes_at_the_servers_offset(
    server: str, db: AsyncEngine, recording: Path
) -> None:
    alice = await token_for(db, "alice")
    data = recording.read_bytes()
    location = create(server, alice, len(data), filename="interview.wav")
    half = len(data) // 2
    drop_mid_patch(location, alice, data, half)
    wait_for_offset(server, alice, location, half)

    uploader = Sha256Uploader(
        file_path=str(recording),
        url=location,
        client=tus_client(server, alice),
        chunk_size=200_000,
        upload_checksum=True,
    )
    assert uploader.offset == half
    uploader.upload()

    state = upload_state(server, alice, location)
    assert state["status"] == "completed" and state["offset"] == len(data)
    audio = httpx.get(f"{server}/api/audio/{state['audioId']}", headers=alice).json()
    assert audio["sha256"] == sha256_of(recording) and audio["filename"] == "interview.wav"
    assert 29_000 < audio["durationMs"] < 32_000
    listed = httpx.get(f"{server}/api/audio", headers=alice).json()["items"]
    assert state["audioId"] in [a["id"] for a in listed]


async def test_finished_upload_becomes_audio_and_transcribes(
    server: str, db: AsyncEngine, hello: Path
) -> None:
    alice = await token_for(db, "alice")
    uploader = tus_client(server, alice).uploader(
        file_path=str(hello),
        metadata={"filename": "hello.wav", "language": "en", "autoTranscribe": "1"},
    )
    uploader.upload()
    head = httpx.head(uploader.url, headers={**TUS, **alice})
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"]
    audio_id, run_id = head.headers["Tapeline-Audio-Id"], head.headers["Tapeline-Run-Id"]
    run = await wait_for_run(server, alice, run_id)
    assert run["status"] == "succeeded" and run["audioId"] == audio_id
    assert "hello" in run["transcript"]["text"].lower()


async def test_creation_with_upload_and_duplicates_return_the_same_audio(
    server: str, db: AsyncEngine, hello: Path
) -> None:
    alice = await token_for(db, "alice")
    data = hello.read_bytes()
    headers = {
        **TUS,
        **alice,
        "Upload-Length": str(len(data)),
        "Content-Type": "application/offset+octet-stream",
    }
    first = httpx.post(f"{server}/api/uploads/", headers=headers, content=data, timeout=60)
    assert first.status_code == 201, first.text
    assert first.headers["Upload-Offset"] == str(len(data))
    second = httpx.post(f"{server}/api/uploads/", headers=headers, content=data, timeout=60)
    assert second.headers["Tapeline-Audio-Id"] == first.headers["Tapeline-Audio-Id"]
    with hello.open("rb") as f:
        multipart = httpx.post(f"{server}/api/audio", headers=alice, files={"file": f})
    assert multipart.json()["id"] == first.headers["Tapeline-Audio-Id"]
    async with db.connect() as conn:
        count = (await conn.execute(text("SELECT count(*) FROM audio"))).scalar_one()
    assert count == 1


async def test_wrong_checksum_is_rejected_and_nothing_is_kept(
    server: str, db: AsyncEngine, hello: Path
) -> None:
    alice = await token_for(db, "alice")
    data = hello.read_bytes()
    location = create(server, alice, len(data))
    wrong = base64.b64encode(hashlib.sha256(b"something else").digest()).decode()
    response = patch(location, alice, 0, data[:1000], **{"Upload-Checksum": f"sha256 {wrong}"})
    assert response.status_code == 460 and response.json()["error"]["code"] == "checksum_mismatch"
    assert upload_state(server, alice, location)["offset"] == 0
    right = base64.b64encode(hashlib.sha256(data[:1000]).digest()).decode()
    ok = patch(location, alice, 0, data[:1000], **{"Upload-Checksum": f"sha256 {right}"})
    assert ok.status_code == 204 and ok.headers["Upload-Offset"] == "1000"
    unknown = patch(location, alice, 1000, data[1000:], **{"Upload-Checksum": "crc32 AAAA"})
    assert unknown.status_code == 400


async def test_termination_then_404_deleted_and_strangers_see_nothing(
    server: str, db: AsyncEngine
) -> None:
    alice, bob = await token_for(db, "alice"), await token_for(db, "bob")
    location = create(server, alice, 5000)
    assert patch(location, alice, 0, b"x" * 100).status_code == 204
    assert httpx.head(location, headers={**TUS, **bob}).status_code == 404
    assert patch(location, bob, 100, b"y").json()["error"]["code"] == "not_found"
    assert httpx.delete(location, headers={**TUS, **bob}).status_code == 404

    assert httpx.delete(location, headers={**TUS, **alice}).status_code == 204
    gone = httpx.get(location, headers=alice)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "deleted"
    assert httpx.get(location, headers=bob).json()["error"]["code"] == "not_found"
    assert httpx.head(location, headers={**TUS, **alice}).status_code == 404
    async with db.connect() as conn:
        rows = (await conn.execute(text("SELECT count(*) FROM upload"))).scalar_one()
    assert rows == 0


async def test_expired_upload_answers_410(server: str, db: AsyncEngine) -> None:
    alice = await token_for(db, "alice")
    location = create(server, alice, 5000)
    upload_id = urlparse(location).path.rsplit("/", 1)[-1]
    async with db.begin() as conn:
        await conn.execute(
            text("UPDATE upload SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": upload_id},
        )
    assert httpx.head(location, headers={**TUS, **alice}).status_code == 410
    response = patch(location, alice, 0, b"late")
    assert response.status_code == 410 and response.json()["error"]["code"] == "upload_expired"


async def test_protocol_errors(server: str, db: AsyncEngine) -> None:
    alice = await token_for(db, "alice")
    location = create(server, alice, 10)
    assert patch(location, alice, 3, b"abc").status_code == 409
    no_version = httpx.patch(location, headers=alice, content=b"a")
    assert no_version.status_code == 412 and no_version.headers["Tus-Version"] == "1.0.0"
    assert patch(location, alice, 0, b"x" * 11).status_code == 400
    assert upload_state(server, alice, location)["offset"] == 0
    wrong_type = httpx.patch(
        location, headers={**TUS, **alice, "Upload-Offset": "0"}, content=b"abc"
    )
    assert wrong_type.status_code == 415
    too_big = httpx.post(
        f"{server}/api/uploads/", headers={**TUS, **alice, "Upload-Length": str(10**13)}
    )
    assert too_big.status_code == 413
    unknown = httpx.post(
        f"{server}/api/uploads/",
        headers={**TUS, **alice, "Upload-Length": "10", "Upload-Metadata": "engine bm9wZQ=="},
    )
    assert unknown.status_code == 422
    anonymous = httpx.post(f"{server}/api/uploads/", headers={**TUS, "Upload-Length": "1"})
    assert anonymous.status_code == 401


async def test_unreadable_audio_fails_the_upload_with_its_code(
    server: str, db: AsyncEngine
) -> None:
    alice = await token_for(db, "alice")
    location = create(server, alice, 4000)
    response = patch(location, alice, 0, b"not audio at all" * 250)
    assert response.status_code == 422 and response.json()["error"]["code"] == "audio_unreadable"
    state = upload_state(server, alice, location)
    assert state["status"] == "failed" and state["error"]["code"] == "audio_unreadable"
    assert httpx.get(f"{server}/api/audio", headers=alice).json()["items"] == []


async def test_deleting_audio_removes_its_runs_and_says_deleted_afterwards(
    server: str, db: AsyncEngine, hello: Path
) -> None:
    alice, bob = await token_for(db, "alice"), await token_for(db, "bob")
    uploader = tus_client(server, alice).uploader(
        file_path=str(hello), metadata={"autoTranscribe": "1"}
    )
    uploader.upload()
    head = httpx.head(uploader.url, headers={**TUS, **alice})
    audio_id, run_id = head.headers["Tapeline-Audio-Id"], head.headers["Tapeline-Run-Id"]
    assert (await wait_for_run(server, alice, run_id))["status"] == "succeeded"

    assert httpx.delete(f"{server}/api/audio/{audio_id}", headers=bob).status_code == 404
    assert httpx.delete(f"{server}/api/audio/{audio_id}", headers=alice).status_code == 204
    for path in (f"/api/audio/{audio_id}", f"/api/runs/{run_id}", f"/api/runs/{run_id}/transcript"):
        gone = httpx.get(f"{server}{path}", headers=alice)
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "deleted", path
        assert httpx.get(f"{server}{path}", headers=bob).json()["error"]["code"] == "not_found"
    never = httpx.get(f"{server}/api/audio/{uuid.uuid4()}", headers=alice)
    assert never.status_code == 404 and never.json()["error"]["code"] == "not_found"
    async with db.connect() as conn:
        left = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM audio) + (SELECT count(*) FROM transcript_run)"
                    " + (SELECT count(*) FROM run_event) + (SELECT count(*) FROM job)"
                )
            )
        ).scalar_one()
    assert left == 0


async def test_idempotency_key_returns_the_same_run_however_often_retried(
    server: str, db: AsyncEngine, hello: Path
) -> None:
    alice = await token_for(db, "alice")

    def transcribe(key: str) -> httpx.Response:
        with hello.open("rb") as f:
            return httpx.post(
                f"{server}/api/transcribe",
                headers={**alice, "Idempotency-Key": key},
                files={"file": f},
                timeout=60,
            )

    answers = await asyncio.gather(*(asyncio.to_thread(transcribe, "t-1") for _ in range(6)))
    assert all(a.status_code in (200, 202) for a in answers), [a.text for a in answers]
    run_ids = {a.json()["id"] for a in answers}
    assert len(run_ids) == 1
    audio_id = answers[0].json()["audioId"]

    def create_run() -> httpx.Response:
        return httpx.post(
            f"{server}/api/runs",
            headers={**alice, "Idempotency-Key": "r-1"},
            json={"audioId": audio_id},
            timeout=60,
        )

    again = await asyncio.gather(*(asyncio.to_thread(create_run) for _ in range(6)))
    assert len({a.json()["id"] for a in again}) == 1
    assert again[0].json()["id"] not in run_ids
    async with db.connect() as conn:
        runs = (await conn.execute(text("SELECT count(*) FROM transcript_run"))).scalar_one()
    assert runs == 2
