"""Webhooks from a real `tapeline serve`: signed (checked with the `standardwebhooks` library),
retried with the same id, stopped by 410, listed and redelivered; the guard and the secrets."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from service import tokens
from service.config import load_settings
from service.errors import InvalidRequest
from service.outbound import PrivateAllowance
from service.runs import webhooks
from service.runs.webhooks import WebhookHandler
from service.tokens import Principal
from tests.receiver import Receiver, webhook_receiver
from tests.server import api_server, env_with
from tests.speech import speak


@pytest.fixture(scope="module")
def server(
    subprocess_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env = env_with(subprocess_env, WEBHOOK_ALLOW_PRIVATE="1", WEBHOOK_RETRY_DELAYS="200,200,200")
    with api_server(env, tmp_path_factory.mktemp("logs") / "api.log") as base:
        yield base


@pytest.fixture(scope="module")
def clip(speech_dir: Path) -> Path:
    return speak("hello world", speech_dir / "hook.wav")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as receiver:
        yield receiver


async def new_token(db: AsyncEngine, owner: str, webhook_url: str | None = None) -> tuple[str, str]:
    async with db.begin() as conn:
        token, row = await tokens.create(conn, owner, webhook_url=webhook_url)
    return token, row["webhook_secret"]


def transcribe(base: str, token: str, clip: Path, **fields: str) -> dict[str, Any]:
    with clip.open("rb") as f:
        response = httpx.post(
            f"{base}/api/transcribe",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": ("hook.wav", f)},
            data=fields,
            timeout=60,
        )
    assert response.status_code in (200, 202), response.text
    return dict(response.json())


async def deliveries(base: str, token: str, run_id: str, until: Any) -> list[dict[str, Any]]:
    """GET /webhooks until `until(items)` holds."""
    deadline = time.monotonic() + 30
    while True:
        answer = httpx.get(
            f"{base}/api/runs/{run_id}/webhooks", headers={"Authorization": f"Bearer {token}"}
        )
        items: list[dict[str, Any]] = answer.json()["items"]
        if until(items):
            return items
        assert time.monotonic() < deadline, items
        await asyncio.sleep(0.05)


async def test_a_receiver_verifies_every_event_with_the_standard_library(
    server: str, clip: Path, db: AsyncEngine, receiver: Receiver
) -> None:
    token, secret = await new_token(db, "wanda")
    run = transcribe(
        server,
        token,
        clip,
        webhookUrl=f"{receiver.url}/hook?key=abc",
        webhookEvents="run.started,run.succeeded",
    )
    got = await asyncio.to_thread(receiver.wait_for, 2)
    bodies = [Webhook(secret).verify(r.body, r.headers) for r in got]
    assert [b["type"] for b in bodies] == ["run.started", "run.succeeded"]
    done = bodies[1]
    assert done["data"]["runId"] == run["id"] and done["data"]["status"] == "succeeded"
    assert done["data"]["transcriptUrls"]["srt"] == f"/api/runs/{run['id']}/transcript?format=srt"
    assert done["data"]["audio"]["filename"] == "hook.wav"
    assert all(len(r.body) < 20_000 for r in got) and got[0].path == "/hook?key=abc"
    transcript = httpx.get(
        f"{server}/api/runs/{run['id']}", headers={"Authorization": f"Bearer {token}"}
    ).json()["transcript"]
    assert transcript["text"] and transcript["text"] not in got[1].body.decode()
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 32).verify(got[1].body, got[1].headers)

    items = await deliveries(server, token, run["id"], lambda i: len(i) == 2)
    assert [(i["event"], i["status"]) for i in items] == [
        ("run.started", "succeeded"),
        ("run.succeeded", "succeeded"),
    ]
    assert items[1]["id"] == got[1].headers["webhook-id"]
    assert items[1]["attempts"][0]["statusCode"] == 200
    answers = [
        httpx.get(
            f"{server}/api/runs/{run['id']}{path}", headers={"Authorization": f"Bearer {token}"}
        ).text
        for path in ("", "/webhooks", "/progress")
    ]
    async with db.connect() as conn:
        events = (await conn.execute(text("SELECT payload::text FROM run_event"))).scalars().all()
    assert not any(secret in text_ for text_ in [*answers, *events])


async def test_two_500s_then_200_arrive_three_times_with_one_webhook_id(
    server: str, clip: Path, db: AsyncEngine, receiver: Receiver
) -> None:
    token, secret = await new_token(db, "xavier")
    receiver.script = [500, 500]
    run = transcribe(server, token, clip, webhookUrl=receiver.url)
    got = await asyncio.to_thread(receiver.wait_for, 3)
    assert len({r.headers["webhook-id"] for r in got}) == 1
    assert all(Webhook(secret).verify(r.body, r.headers)["type"] == "run.succeeded" for r in got)
    items = await deliveries(
        server, token, run["id"], lambda i: i and i[0]["status"] == "succeeded"
    )
    assert [a["statusCode"] for a in items[0]["attempts"]] == [500, 500, 200]
    assert [a["attempt"] for a in items[0]["attempts"]] == [1, 2, 3]
    async with db.connect() as conn:
        rows = await conn.execute(
            text("SELECT attempt, status_code FROM webhook_delivery ORDER BY id")
        )
        assert [tuple(r) for r in rows] == [(1, 500), (2, 500), (3, 200)]


async def test_410_stops_deliveries_to_that_url_until_one_is_redelivered(
    server: str, clip: Path, db: AsyncEngine, receiver: Receiver
) -> None:
    token, _ = await new_token(db, "yusuf")
    receiver.default = 410
    first = transcribe(server, token, clip, webhookUrl=receiver.url)
    await deliveries(server, token, first["id"], lambda i: i and i[0]["status"] == "failed")
    second = transcribe(server, token, clip, webhookUrl=receiver.url, engine="local")
    items = await deliveries(
        server, token, second["id"], lambda i: i and i[0]["status"] == "failed"
    )
    assert "webhook_gone" in items[0]["attempts"][0]["error"]
    assert len(receiver.requests) == 1, "nothing is sent to a URL that answered 410"

    receiver.default = 200
    answer = httpx.post(
        f"{server}/api/runs/{second['id']}/webhooks/{items[0]['id']}/redeliver",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 202, answer.text
    got = await asyncio.to_thread(receiver.wait_for, 2)
    assert got[1].headers["webhook-id"] == items[0]["id"]
    await deliveries(server, token, second["id"], lambda i: i[0]["status"] == "succeeded")


async def test_a_token_s_default_url_and_a_rotation_s_two_signatures(
    server: str, clip: Path, db: AsyncEngine, receiver: Receiver
) -> None:
    token, old = await new_token(db, "zora", webhook_url=f"{receiver.url}/default")
    async with db.begin() as conn:
        (rotated,) = await tokens.rotate_webhook_secret(conn, "zora")
    new = rotated["webhook_secret"]
    assert new != old and new.startswith("whsec_")
    transcribe(server, token, clip)
    (got,) = await asyncio.to_thread(receiver.wait_for, 1)
    assert got.path == "/default" and len(got.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(got.body, got.headers)["type"] == "run.succeeded"


async def test_bad_webhook_requests_are_refused_at_submit(
    server: str, clip: Path, db: AsyncEngine
) -> None:
    token, _ = await new_token(db, "abel")
    for fields in (
        {"webhookUrl": "ftp://example.com/x"},
        {"webhookUrl": "https://example.com/x", "webhookEvents": "run.exploded"},
    ):
        with clip.open("rb") as f:
            answer = httpx.post(
                f"{server}/api/transcribe",
                headers={"Authorization": f"Bearer {token}"},
                files={"file": ("hook.wav", f)},
                data=fields,
            )
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_request"
    admin = httpx.post(
        f"{server}/api/runs",
        headers={"Authorization": "Bearer admin-secret-for-tests-0123456789abcdef"},
        json={"audioId": "00000000-0000-0000-0000-000000000000", "webhookUrl": "https://e.x/"},
    )
    assert admin.status_code == 400 and "admin token" in admin.json()["error"]["message"]


async def test_private_addresses_are_refused_without_the_setting(receiver: Receiver) -> None:
    principal = Principal(owner="p", token_id=uuid.uuid4())
    for url in (
        "http://127.0.0.1:9/",
        "http://[::1]/",
        "http://169.254.169.254/",
        "http://10.1.2.3/",
    ):
        with pytest.raises(InvalidRequest, match="private"):
            webhooks.requested(principal, url, None, PrivateAllowance())
    handler = WebhookHandler(None, load_settings())  # type: ignore[arg-type]
    by_name = receiver.url.replace("127.0.0.1", "localhost")
    attempt = await handler.send(by_name, "msg_1", "{}", ["whsec_" + "A" * 32])
    assert attempt.status_code is None and attempt.error is not None
    assert attempt.error.startswith("webhook_refused") and receiver.requests == []
    allowed = WebhookHandler(None, load_settings(webhook_allow_private="1"))  # type: ignore[arg-type]
    receiver.script, receiver.headers = [302], {"Location": f"{receiver.url}/elsewhere"}
    moved = await allowed.send(by_name, "msg_1", "{}", ["whsec_" + "A" * 32])
    assert moved.error == "redirect (302) not followed" and len(receiver.requests) == 1
    receiver.script, receiver.headers = [503], {"Retry-After": "7"}
    sent = await allowed.send(by_name, "msg_1", "{}", ["whsec_" + "A" * 32])
    assert (sent.status_code, sent.retry_after_ms, sent.error) == (503, 7000, "HTTP 503")
    assert json.loads(receiver.requests[0].body) == {}


async def test_a_tus_upload_s_metadata_asks_for_the_webhook(
    server: str, clip: Path, db: AsyncEngine, receiver: Receiver
) -> None:
    token, secret = await new_token(db, "tess")
    data = clip.read_bytes()
    metadata = {"filename": "tus.wav", "autoTranscribe": "true", "webhookUrl": receiver.url}
    encoded = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in metadata.items())
    answer = httpx.post(
        f"{server}/api/uploads",
        headers={
            "Authorization": f"Bearer {token}",
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(len(data)),
            "Upload-Metadata": encoded,
            "Content-Type": "application/offset+octet-stream",
        },
        content=data,
        timeout=60,
    )
    assert answer.status_code == 201, answer.text
    (got,) = await asyncio.to_thread(receiver.wait_for, 1)
    event = Webhook(secret).verify(got.body, got.headers)
    assert event["data"]["runId"] == answer.headers["Tapeline-Run-Id"]
