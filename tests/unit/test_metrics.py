"""Metric definitions and the scrape-time collector, read back through Prometheus' parser."""

from __future__ import annotations

import time

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from service import metrics
from service.errors import AudioUnreadable, UpstreamTimeout, WorkerLost


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_job_outcomes_count_durations_failures_and_retries() -> None:
    before = {
        "ok": sample("tapeline_jobs_finished_total", engine="unit", outcome="succeeded"),
        "failed": sample("tapeline_job_failures_total", error_code="audio_unreadable"),
        "retried": sample("tapeline_job_retries_total", error_code="upstream_timeout"),
        "lost": sample("tapeline_job_retries_total", error_code="worker_lost"),
        "lost_failed": sample("tapeline_job_failures_total", error_code="worker_lost"),
        "slow": sample(
            "tapeline_job_duration_seconds_bucket", engine="unit", outcome="succeeded", le="2.5"
        ),
    }
    metrics.job_outcome("unit", "succeeded", time.monotonic() - 2.0)
    metrics.job_outcome("unit", "failed", time.monotonic(), AudioUnreadable())
    metrics.job_outcome("unit", "retried", time.monotonic(), UpstreamTimeout())
    metrics.job_reclaimed(WorkerLost(), failed=False)
    metrics.job_reclaimed(WorkerLost(), failed=True)

    ok = sample("tapeline_jobs_finished_total", engine="unit", outcome="succeeded")
    assert ok == before["ok"] + 1
    assert sample("tapeline_job_failures_total", error_code="audio_unreadable") == (
        before["failed"] + 1
    )
    assert sample("tapeline_job_retries_total", error_code="upstream_timeout") == (
        before["retried"] + 1
    )
    assert sample("tapeline_job_retries_total", error_code="worker_lost") == before["lost"] + 1
    assert sample("tapeline_job_failures_total", error_code="worker_lost") == (
        before["lost_failed"] + 1
    )
    two_seconds = sample(
        "tapeline_job_duration_seconds_bucket", engine="unit", outcome="succeeded", le="2.5"
    )
    assert two_seconds == before["slow"] + 1


def test_render_adds_the_snapshot_to_the_process_metrics() -> None:
    snapshot = metrics.ScrapeSnapshot(
        queue_depth={"queued": 4}, sse_connections=3, events_delivered=17
    )
    body, content_type = metrics.render(snapshot)
    assert content_type.startswith("text/plain")
    values = {
        (s.name, tuple(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert values[("tapeline_queue_depth", (("status", "queued"),))] == 4
    assert values[("tapeline_queue_depth", (("status", "processing"),))] == 0
    assert values[("tapeline_sse_connections", ())] == 3
    assert values[("tapeline_sse_events_delivered_total", ())] == 17
    assert ("process_cpu_seconds_total", ()) in values


def test_a_worker_has_no_stream_or_queue_gauges() -> None:
    body, _ = metrics.render(
        metrics.ScrapeSnapshot(queue_depth=None, sse_connections=None, events_delivered=None)
    )
    assert b"tapeline_queue_depth" not in body and b"tapeline_sse_connections" not in body
    assert b"tapeline_jobs_finished_total" in body


def test_the_workers_metrics_listen_on_loopback_and_can_require_a_token() -> None:
    """Issue 15, finding 10: the worker's metrics server listened on every interface, open."""
    import httpx

    from service.config import Settings

    assert Settings().metrics_host == "127.0.0.1"
    server = metrics.serve_worker_metrics(0, Settings().metrics_host, "scrape-token")
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 401
        auth = {"Authorization": "Bearer scrape-token"}
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=auth)
        assert scraped.status_code == 200 and "tapeline_" in scraped.text
    finally:
        server.shutdown()
        server.server_close()
