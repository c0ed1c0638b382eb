"""Webhook signing (checked by the `standardwebhooks` library), events and the retry schedule."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from standardwebhooks.webhooks import Webhook

from service.config import load_settings
from service.errors import InvalidRequest, WebhookFailed
from service.jobs.queue import ClaimedJob
from service.outbound import PrivateAllowance
from service.runs.webhooks import (
    DEFAULT_EVENTS,
    WebhookHandler,
    message_body,
    requested,
    signature_header,
    wanted_events,
)
from service.tokens import Principal, new_webhook_secret

RUN = {
    "id": uuid.uuid4(),
    "status": "failed",
    "engine": "local",
    "attempts": 4,
    "error_code": "audio_unreadable",
    "error_message": "x" * 50_000,
    "source_url": "https://example.com/" + "a" * 5000,
}


def test_signatures_verify_with_the_standard_library_old_and_new_secret_alike() -> None:
    old, new = new_webhook_secret(), new_webhook_secret()
    body = message_body("run.failed", RUN, None)
    stamp = int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature_header([new, old], "msg_1", stamp, body),
    }
    for secret in (old, new):
        assert Webhook(secret).verify(body, headers)["type"] == "run.failed"


def test_the_body_stays_under_20_kb_whatever_the_run_holds() -> None:
    body = message_body("run.failed", RUN, None)
    data = json.loads(body)["data"]
    assert len(body.encode()) < 20_000
    assert data["error"]["code"] == "audio_unreadable" and data["transcriptUrls"] is None


def test_events_default_to_the_ends_and_unknown_ones_are_refused() -> None:
    assert wanted_events(None) == DEFAULT_EVENTS
    assert wanted_events("run.started, run.failed") == ("run.started", "run.failed")
    with pytest.raises(InvalidRequest):
        wanted_events(["run.finished"])
    principal = Principal(owner="o", token_id=uuid.uuid4(), webhook_url="https://e.com/h")
    hook = requested(principal, None, None, PrivateAllowance())
    assert hook is not None and hook.url == "https://e.com/h"
    assert requested(Principal(owner="o"), None, None, PrivateAllowance()) is None


def test_the_schedule_is_one_delay_per_retry_and_retry_after_wins_when_later() -> None:
    handler = WebhookHandler(None, load_settings(webhook_retry_delays="5000,300000"))  # type: ignore[arg-type]

    def job(attempts: int) -> ClaimedJob:
        return ClaimedJob(1, None, "deliver_webhook", attempts, 100)

    failed = WebhookFailed()
    assert handler.retry_delay_ms(job(1), failed) == 5000
    assert handler.retry_delay_ms(job(2), failed) == 300_000
    assert handler.retry_delay_ms(job(3), failed) is None
    failed.details["retry_after_ms"] = 60_000
    assert handler.retry_delay_ms(job(1), failed) == 60_000
    assert handler.retry_delay_ms(job(2), failed) == 300_000
