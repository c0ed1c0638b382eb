"""Webhooks, signed per the Standard Webhooks specification and delivered through the job queue.

A run may ask for a callback (`webhookUrl`, or its token's default). When the run reaches an
event it asked for (`run.succeeded`, `run.failed`, `run.cancelled`, and `run.started` on
request), the transaction that records the transition also stores a `webhook_message` (the
body, and the id every retry repeats as `webhook-id`) and queues a `deliver_webhook` job for
it, so a crash anywhere loses nothing. Any worker sends it: POST, 15 s per attempt
(`WEBHOOK_TIMEOUT_MS`), no redirects followed, to an address the private-address guard allows.
Every attempt is a `webhook_delivery` row; a failure is retried on `WEBHOOK_RETRY_DELAYS`
(or the receiver's `Retry-After`, if later); a 410 stops every delivery to that URL.

Signature: `v1,` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")), the key being the
base64 after `whsec_` in the token's secret. During a rotation the previous secret signs too,
and both signatures go in `webhook-signature`, space-separated.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.config import Settings
from service.database import Row
from service.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    TapelineError,
    WebhookFailed,
    WebhookGone,
    WebhookRefused,
)
from service.jobs import queue
from service.jobs.queue import ClaimedJob
from service.outbound import PrivateAddressRefused, PrivateAllowance, checked_url, guarded_client
from service.queries import q
from service.tokens import WEBHOOK_SECRET_PREFIX, Principal

log = logging.getLogger(__name__)

DELIVER_WEBHOOK = "deliver_webhook"
EVENTS = {
    "started": "run.started",
    "succeeded": "run.succeeded",
    "failed": "run.failed",
    "cancelled": "run.cancelled",
}
DEFAULT_EVENTS = ("run.succeeded", "run.failed", "run.cancelled")
ATTEMPT_CEILING = 100
"""`max_attempts` of a delivery job: the transaction that queues it cannot see the settings,
so the handler ends the schedule itself (after len(WEBHOOK_RETRY_DELAYS) retries)."""
MAX_BODY_BYTES = 20_000
ERROR_TEXT_BYTES = 500
USER_AGENT = "Tapeline-Webhooks/1"


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """Where a run's webhooks go, which events, and which token's secret signs them."""

    url: str
    events: tuple[str, ...]
    token_id: uuid.UUID


def requested(
    principal: Principal,
    url: object,
    events: object,
    allowance: PrivateAllowance,
) -> WebhookRequest | None:
    """The webhook a submission asks for (`webhookUrl`, else the token's default), checked:
    an http(s) URL not naming a refused address, and known event names."""
    if url is None or url == "":
        url = principal.webhook_url
    if url is None:
        if events not in (None, "", []):
            raise InvalidRequest("`webhookEvents` needs a `webhookUrl`.")
        return None
    if principal.token_id is None:
        raise InvalidRequest(
            "Webhooks are signed with the secret of the token that submits the run; "
            "the admin token has none. Submit with an owner's token."
        )
    checked = checked_url(url, "webhookUrl", allowance)
    return WebhookRequest(checked, wanted_events(events), principal.token_id)


def wanted_events(value: object) -> tuple[str, ...]:
    """`webhookEvents`: a list (or comma-separated string) of event names; default: the ends."""
    if value is None or value == "" or value == []:
        return DEFAULT_EVENTS
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InvalidRequest("`webhookEvents` must be a list of event names.")
    cleaned = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
    unknown = [n for n in cleaned if n not in EVENTS.values()]
    if unknown or not cleaned:
        raise InvalidRequest(f"`webhookEvents` may hold: {', '.join(EVENTS.values())}.")
    return cleaned


async def attach(conn: AsyncConnection, run_id: uuid.UUID, webhook: WebhookRequest) -> Row:
    """Record the webhook on a run created in the same transaction."""
    params = {
        "run_id": run_id,
        "webhook_url": webhook.url,
        "webhook_events": list(webhook.events),
        "webhook_token_id": webhook.token_id,
    }
    return (await conn.execute(q("set_run_webhook"), params)).mappings().one()


# --- queueing, in the transition's transaction ------------------------------------------------


async def on_transition(conn: AsyncConnection, run: Row, transition: str) -> str | None:
    """Queue the webhook for this transition if the run asked for it; the message id, if any."""
    event = EVENTS.get(transition)
    url = run.get("webhook_url")
    if event is None or not url or event not in (run.get("webhook_events") or ()):
        return None
    audio = None
    if run["audio_id"] is not None:
        params = {"audio_id": run["audio_id"], "owner": None}
        audio = (await conn.execute(q("get_audio"), params)).mappings().first()
    message_id = f"msg_{uuid.uuid4().hex}"
    body = message_body(event, run, audio)
    params = {
        "id": message_id,
        "run_id": run["id"],
        "owner": run["owner"],
        "event_type": event,
        "url": url,
        "token_id": run.get("webhook_token_id"),
        "body": body,
    }
    await conn.execute(q("insert_webhook_message"), params)
    await enqueue_delivery(conn, message_id, run["id"], ATTEMPT_CEILING)
    return message_id


async def enqueue_delivery(
    conn: AsyncConnection, message_id: str, run_id: uuid.UUID, max_attempts: int
) -> int:
    job_id = await queue.enqueue(
        conn, job_type=DELIVER_WEBHOOK, run_id=run_id, max_attempts=max_attempts
    )
    await conn.execute(q("insert_webhook_job"), {"job_id": job_id, "message_id": message_id})
    return job_id


def message_body(event: str, run: Row, audio: Row | None) -> str:
    """`{type, timestamp, data}`: the run's outcome and where to read it, never its text."""
    run_id = str(run["id"])
    error = None
    if run["error_code"]:
        error = {"code": run["error_code"], "message": (run["error_message"] or "")[:2000]}
    elif run["status"] == "cancelled":
        error = {"code": "cancelled", "message": "The run was cancelled."}
    data: dict[str, Any] = {
        "runId": run_id,
        "status": run["status"],
        "engine": run["engine"],
        "attempts": run["attempts"],
        "error": error,
        "audio": None,
        "runUrl": f"/api/runs/{run_id}",
        "transcriptUrls": None,
    }
    if audio is not None:
        data["audio"] = {
            "id": str(audio["id"]),
            "filename": str(audio["filename"])[:255],
            "durationMs": audio["duration_ms"],
            "sizeBytes": audio["size_bytes"],
        }
    if run.get("source_url"):
        data["sourceUrl"] = str(run["source_url"])[:2048]
    if run["status"] == "succeeded":
        base = f"/api/runs/{run_id}/transcript?format="
        data["transcriptUrls"] = {fmt: base + fmt for fmt in ("json", "txt", "srt", "vtt")}
    timestamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    body = json.dumps({"type": event, "timestamp": timestamp, "data": data}, ensure_ascii=False)
    assert len(body.encode()) < MAX_BODY_BYTES
    return body


# --- signing ----------------------------------------------------------------------------------


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """One Standard Webhooks signature, `v1,<base64>`."""
    key = base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.{body}".encode()
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_header(secrets: Sequence[str], message_id: str, timestamp: int, body: str) -> str:
    return " ".join(sign(secret, message_id, timestamp, body) for secret in secrets)


# --- delivery -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    status_code: int | None
    duration_ms: int
    error: str | None
    retry_after_ms: int | None = None


class WebhookHandler:
    """The `deliver_webhook` job: one attempt per execution, recorded whatever happens."""

    def __init__(self, db: AsyncEngine, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def run(self, job: ClaimedJob) -> None:
        async with self.db.connect() as conn:
            message = (await conn.execute(q("webhook_for_job"), {"job_id": job.id})).mappings()
            row = message.first()
        if row is None:
            raise WebhookGone("The webhook's message no longer exists.")
        if job.attempts > self.settings.webhook_max_attempts:
            raise WebhookGone("Every attempt of the schedule (WEBHOOK_RETRY_DELAYS) is spent.")
        if row["gone"]:
            await self._record(row, Attempt(None, 0, "webhook_gone: the URL answered 410 before"))
            raise WebhookGone()
        secrets = [row["webhook_secret"]] if row["webhook_secret"] else []
        if row["webhook_secret_previous"] and row["rotation_overlaps"]:
            secrets.append(row["webhook_secret_previous"])
        if not secrets:
            await self._record(row, Attempt(None, 0, "webhook_failed: the token has no secret"))
            raise WebhookGone("The token that signs this webhook was deleted or has no secret.")
        attempt = await self.send(row["url"], row["id"], row["body"], secrets)
        await self._record(row, attempt)
        if attempt.status_code is not None and 200 <= attempt.status_code < 300:
            return
        if attempt.status_code == 410:
            async with self.db.begin() as conn:
                params = {"owner": row["owner"], "url": row["url"]}
                await conn.execute(q("mark_webhook_gone"), params)
            raise WebhookGone()
        if attempt.error and attempt.error.startswith(WebhookRefused.code):
            raise WebhookRefused()
        failure = WebhookFailed(attempt.error or f"The receiver answered {attempt.status_code}.")
        failure.details["retry_after_ms"] = attempt.retry_after_ms
        raise failure

    async def send(self, url: str, message_id: str, body: str, secrets: Sequence[str]) -> Attempt:
        """One POST; never raises for what the receiver or the network did."""
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(secrets, message_id, timestamp, body),
        }
        timeout = self.settings.webhook_timeout_ms / 1000
        started = time.monotonic()
        try:
            async with guarded_client(
                self.settings.webhook_allow_private, timeout=timeout
            ) as client:
                response = await client.post(url, content=body.encode(), headers=headers)
        except PrivateAddressRefused as exc:
            return Attempt(None, _ms_since(started), f"{WebhookRefused.code}: {exc}")
        except httpx.TimeoutException:
            return Attempt(None, _ms_since(started), f"timeout after {timeout:g} s")
        except httpx.HTTPError as exc:
            return Attempt(None, _ms_since(started), f"{type(exc).__name__}: {exc}"[:500])
        duration = _ms_since(started)
        error = None
        if 300 <= response.status_code < 400:
            error = f"redirect ({response.status_code}) not followed"
        elif not 200 <= response.status_code < 300:
            error = f"HTTP {response.status_code}"
        return Attempt(response.status_code, duration, error, _retry_after_ms(response))

    async def _record(self, message: Row, attempt: Attempt) -> None:
        params = {
            "message_id": message["id"],
            "run_id": message["run_id"],
            "owner": message["owner"],
            "event": message["event_type"],
            "url": message["url"],
            "status_code": attempt.status_code,
            "duration_ms": attempt.duration_ms,
            "error": attempt.error[:ERROR_TEXT_BYTES] if attempt.error else None,
        }
        async with self.db.begin() as conn:
            await conn.execute(q("record_webhook_delivery"), params)
        log.info(
            "webhook %s (%s) to %s: %s",
            message["id"],
            message["event_type"],
            _origin(message["url"]),
            attempt.status_code or attempt.error,
        )

    def retry_delay_ms(self, job: ClaimedJob, error: TapelineError) -> int | None:
        """The schedule: WEBHOOK_RETRY_DELAYS[retry], or the receiver's Retry-After if later."""
        delays = self.settings.webhook_retry_delays
        if job.attempts > len(delays):
            return None
        delay = delays[job.attempts - 1]
        retry_after = error.details.get("retry_after_ms")
        return max(delay, int(retry_after)) if retry_after else delay

    async def on_success(self, conn: AsyncConnection, job: ClaimedJob, result: Any) -> None:
        return None

    async def on_retry(self, conn: AsyncConnection, job: ClaimedJob, error: TapelineError) -> None:
        return None

    async def on_failure(
        self, conn: AsyncConnection, job: ClaimedJob, error: TapelineError
    ) -> None:
        return None

    async def on_release(self, conn: AsyncConnection, job: ClaimedJob) -> None:
        return None


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _origin(url: str) -> str:
    """Scheme, host and port only: a URL's path or query may carry the receiver's own secret."""
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}" + (f":{parsed.port}" if parsed.port else "")


def _retry_after_ms(response: httpx.Response) -> int | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    if value.strip().isdigit():
        return int(value.strip()) * 1000
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0, int((when - datetime.now(UTC)).total_seconds() * 1000))


# --- reading and redelivering -------------------------------------------------------------------


async def for_run(conn: AsyncConnection, run_id: uuid.UUID) -> list[dict[str, Any]]:
    """The run's webhook deliveries (one per event and URL), each with its attempts."""
    rows = (await conn.execute(q("run_webhooks"), {"run_id": run_id})).mappings().all()
    return [delivery_json(row) for row in rows]


def delivery_json(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "event": row["event_type"],
        "url": row["url"],
        "status": row["status"],
        "nextAttemptAt": row["next_attempt_at"].isoformat() if row["next_attempt_at"] else None,
        "createdAt": row["created_at"].isoformat(),
        "attempts": row["attempts"],
    }


async def redeliver(conn: AsyncConnection, run_id: uuid.UUID, delivery_id: str) -> dict[str, Any]:
    """Send a delivery again (one attempt, same `webhook-id` and body); a 410 mark on its URL
    is lifted, since the owner asked for this one explicitly."""
    params = {"run_id": run_id, "key": delivery_id}
    message = (await conn.execute(q("find_webhook_message"), params)).mappings().first()
    if message is None:
        raise NotFound("No webhook delivery with that id exists for this run.")
    pending = (await conn.execute(q("webhook_pending"), {"message_id": message["id"]})).first()
    if pending is not None:
        raise Conflict("That delivery is still queued or being sent.")
    await conn.execute(q("clear_webhook_gone"), {"owner": message["owner"], "url": message["url"]})
    await enqueue_delivery(conn, message["id"], run_id, 1)
    rows = (await conn.execute(q("run_webhooks"), {"run_id": run_id})).mappings().all()
    return next(delivery_json(row) for row in rows if row["id"] == message["id"])
