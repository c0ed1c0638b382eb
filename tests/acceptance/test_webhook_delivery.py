"""Webhook deliveries survive a worker killed between attempts, and the CLI's secrets."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from service import tokens
from service.config import Settings
from service.media.storage import LocalStorage
from service.runs import webhooks
from tests.acceptance.test_workers import WORKER, wait_until
from tests.integration.helpers import queue_run
from tests.receiver import webhook_receiver
from tests.server import env_with, process, tapeline


async def attempts(db: AsyncEngine) -> list[tuple[int, int | None]]:
    async with db.connect() as conn:
        rows = await conn.execute(text("SELECT attempt, status_code FROM webhook_delivery"))
        return sorted(tuple(row) for row in rows)  # type: ignore[misc]


async def test_a_worker_killed_between_attempts_loses_no_delivery(
    db: AsyncEngine, settings: Settings, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    env = env_with(subprocess_env, WEBHOOK_ALLOW_PRIVATE="1", WEBHOOK_RETRY_DELAYS="8000")
    async with db.begin() as conn:
        _, token = await tokens.create(conn, "kim")
    storage = LocalStorage(settings.tapeline_data_dir / "blobs")
    with webhook_receiver() as receiver:
        receiver.script = [500]
        run, _ = await queue_run(db, "kim", storage=storage)
        async with db.begin() as conn:
            hook = webhooks.WebhookRequest(receiver.url, webhooks.DEFAULT_EVENTS, token["id"])
            await webhooks.attach(conn, run["id"], hook)
        with process(WORKER, env, tmp_path / "doomed.log") as doomed:

            async def between_attempts() -> bool:
                """The first attempt is recorded and its retry is a queued job (not a timer)."""
                async with db.connect() as conn:
                    status = await conn.execute(
                        text("SELECT status FROM job WHERE job_type = 'deliver_webhook'")
                    )
                    waiting = status.scalar_one_or_none()
                return waiting == "queued" and await attempts(db) == [(1, 500)]

            await wait_until(between_attempts, 30, "the first attempt and its queued retry")
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait()
        with process(WORKER, env, tmp_path / "rescuer.log"):

            async def delivered() -> bool:
                return await attempts(db) == [(1, 500), (2, 200)]

            await wait_until(delivered, 30, "the second attempt from another worker")
        first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    for request in (first, second):
        body = Webhook(token["webhook_secret"]).verify(request.body, request.headers)
        assert body["type"] == "run.succeeded" and body["data"]["runId"] == str(run["id"])


def test_the_cli_prints_a_secret_once_and_rotates_it(subprocess_env: dict[str, str]) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            tapeline("token", *args), env=subprocess_env, capture_output=True, text=True, timeout=60
        )

    created = cli("create", "lena", "--webhook-url", "https://hooks.example.com/tapeline")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip().startswith("tl_"), "stdout stays the token alone"
    secret = created.stderr.strip().rsplit(" ", 1)[-1]
    assert secret.startswith("whsec_")
    rotated = cli("rotate-webhook-secret", "lena")
    assert rotated.returncode == 0 and "whsec_" in rotated.stdout and secret not in rotated.stdout
    refused = cli("create", "lena", "--webhook-url", "ftp://nowhere")
    assert refused.returncode != 0


pytestmark = pytest.mark.timeout(180)
