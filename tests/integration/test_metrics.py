"""/metrics of a real `tapeline serve` after real runs: jobs, failures, uploads, streams, queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service import tokens
from service.jobs import queue
from tests.server import api_server, env_with
from tests.speech import speak


@pytest.fixture(scope="module")
def server(
    subprocess_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    log = tmp_path_factory.mktemp("metrics") / "api.log"
    with api_server(env_with(subprocess_env, TRANSCRIBE_SYNC_MAX_DURATION_MS="5000"), log) as base:
        yield base


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{base}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_a_run_a_failure_an_upload_and_a_stream_show_in_metrics(
    server: str, db: AsyncEngine, speech_dir: Path, data_dir: Path
) -> None:
    async with db.begin() as conn:
        token, _ = await tokens.create(conn, "olga")
    headers = {"Authorization": f"Bearer {token}"}
    clip = speak("hello world", speech_dir / "metrics-hello.wav")
    before = scrape(server)

    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", f"{server}/api/runs/events", headers=headers) as stream,
    ):
        lines = stream.aiter_lines()  # held: a collected iterator would close the stream
        await anext(lines)
        with clip.open("rb") as f:
            done = httpx.post(
                f"{server}/api/transcribe", headers=headers, files={"file": f}, timeout=60
            )
        assert done.status_code == 200 and done.json()["status"] == "succeeded", done.text

        with clip.open("rb") as f:
            audio = httpx.post(f"{server}/api/audio", headers=headers, files={"file": f}).json()
        async with db.connect() as conn:
            key = (
                await conn.execute(
                    text("SELECT storage_key FROM audio WHERE id = :id"), {"id": audio["id"]}
                )
            ).scalar_one()
        (data_dir / "blobs" / key).unlink()
        failed = httpx.post(
            f"{server}/api/runs", headers=headers, json={"audioId": audio["id"]}, timeout=60
        ).json()
        assert failed["error"]["code"] == "audio_missing", failed

        deadline = time.monotonic() + 10
        while value(during := scrape(server), "tapeline_sse_events_delivered_total") <= value(
            before, "tapeline_sse_events_delivered_total"
        ):
            assert time.monotonic() < deadline, "no delivered stream message was counted"
            await asyncio.sleep(0.05)
    after = scrape(server)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("tapeline_jobs_finished_total", engine="local", outcome="succeeded") == 1
    assert grew("tapeline_jobs_finished_total", engine="local", outcome="failed") == 1
    assert grew("tapeline_job_duration_seconds_count", engine="local", outcome="succeeded") == 1
    assert grew("tapeline_job_failures_total", error_code="audio_missing") == 1
    assert grew("tapeline_upload_bytes_total") == 2 * clip.stat().st_size
    assert value(during, "tapeline_sse_connections") == 1
    assert value(before, "tapeline_sse_connections") == 0
    for status in ("queued", "processing"):
        assert ("tapeline_queue_depth", (("status", status),)) in after


async def test_queue_depth_is_read_from_postgres_at_scrape_time(
    server: str, db: AsyncEngine
) -> None:
    base = value(scrape(server), "tapeline_queue_depth", status="queued")
    async with db.begin() as conn:
        for _ in range(3):
            await queue.enqueue(
                conn, job_type=queue.TRANSCRIBE_LONG, run_id=None, max_attempts=1, delay_ms=600_000
            )
    assert value(scrape(server), "tapeline_queue_depth", status="queued") == base + 3
