"""Prometheus metrics, all named `tapeline_*`, defined here and nowhere else.

Counters and histograms that code updates live in the process's default registry (so the
`process_*` and `python_*` collectors come along). Values that already exist elsewhere are read
at scrape time instead of being mirrored: queue depth from Postgres (one indexed query) and the
SSE hub's open streams and delivered messages from the hub itself.

Metrics are per process. An API process serves them at `/metrics`; a separate `tapeline worker`
serves its own (job counters and durations) on `METRICS_PORT` when that is set, on loopback
unless `METRICS_HOST` says otherwise. With `METRICS_TOKEN` both need it as a bearer token.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    make_wsgi_app,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler
from prometheus_client.registry import Collector

from service.errors import TapelineError

JOB_DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
QUEUE_STATUSES = ("queued", "processing")

JOB_DURATION = Histogram(
    "tapeline_job_duration_seconds",
    "Time from a job's start on a worker to its outcome, by engine and outcome.",
    ["engine", "outcome"],
    buckets=JOB_DURATION_BUCKETS,
)
JOBS_FINISHED = Counter(
    "tapeline_jobs_finished",
    "Job attempts ended, by engine and outcome (succeeded, failed, retried, cancelled).",
    ["engine", "outcome"],
)
JOB_FAILURES = Counter(
    "tapeline_job_failures",
    "Jobs that failed for good, by error code.",
    ["error_code"],
)
JOB_RETRIES = Counter(
    "tapeline_job_retries",
    "Jobs scheduled for another attempt after a transient error, by error code.",
    ["error_code"],
)
UPLOAD_BYTES = Counter("tapeline_upload_bytes", "Audio bytes received by uploads.")


def job_outcome(
    engine: str, outcome: str, started: float, error: TapelineError | None = None
) -> None:
    """Count one job attempt's end; `started` is its `time.monotonic()` start."""
    JOB_DURATION.labels(engine, outcome).observe(max(0.0, time.monotonic() - started))
    JOBS_FINISHED.labels(engine, outcome).inc()
    if error is not None and outcome == "failed":
        JOB_FAILURES.labels(error.code).inc()
    elif error is not None and outcome == "retried":
        JOB_RETRIES.labels(error.code).inc()


def job_reclaimed(error: TapelineError, *, failed: bool) -> None:
    """A job whose worker vanished, requeued (or failed, out of attempts) by a lease sweep."""
    (JOB_FAILURES if failed else JOB_RETRIES).labels(error.code).inc()


@dataclass(frozen=True, slots=True)
class ScrapeSnapshot:
    """What the scrape-time collector reports, read just before rendering."""

    queue_depth: Mapping[str, int] | None
    sse_connections: int | None
    events_delivered: int | None


class SnapshotCollector(Collector):
    """Gauges for values owned by Postgres and by the hub, from one snapshot."""

    def __init__(self, snapshot: ScrapeSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        if self.snapshot.queue_depth is not None:
            depth = GaugeMetricFamily(
                "tapeline_queue_depth",
                "Jobs in the queue by status, across all workers (read from PostgreSQL).",
                labels=["status"],
            )
            for status in QUEUE_STATUSES:
                depth.add_metric([status], self.snapshot.queue_depth.get(status, 0))
            yield depth
        if self.snapshot.sse_connections is not None:
            yield GaugeMetricFamily(
                "tapeline_sse_connections",
                "Open SSE streams on this API process.",
                value=self.snapshot.sse_connections,
            )
        if self.snapshot.events_delivered is not None:
            yield CounterMetricFamily(
                "tapeline_sse_events_delivered",
                "Stream messages handed to subscribers by this API process.",
                value=self.snapshot.events_delivered,
            )


def render(snapshot: ScrapeSnapshot | None = None) -> tuple[bytes, str]:
    """The exposition text for this process (plus the snapshot), and its content type."""
    body = generate_latest(REGISTRY)
    if snapshot is not None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(snapshot))
        body += generate_latest(registry)
    return body, CONTENT_TYPE_LATEST


def bearer_matches(authorization: str | None, token: str | None) -> bool:
    """Whether a scrape may read the metrics: always without METRICS_TOKEN, else only with
    `Authorization: Bearer <METRICS_TOKEN>`."""
    if not token:
        return True
    scheme, _, value = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode(), token.encode()
    )


def serve_worker_metrics(port: int, host: str, token: str | None) -> WSGIServer:
    """The worker's metrics on `host:port` (loopback unless METRICS_HOST says otherwise), in a
    daemon thread; with a token, a scrape without it gets 401."""
    metrics_app = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if not bearer_matches(environ.get("HTTP_AUTHORIZATION"), token):
            start_response("401 Unauthorized", [("Content-Type", "text/plain")])
            return [b"METRICS_TOKEN required\n"]
        return metrics_app(environ, start_response)  # type: ignore[no-any-return]

    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_SilentHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
