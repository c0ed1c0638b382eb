"""The Starlette application: routes, error rendering, and the process's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Mapping

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from service.api import admin, audio, events, health, metrics, openapi, runs
from service.api import openai as openai_compat
from service.api import uploads as tus_uploads
from service.api import web as web_page
from service.auth import FailedAuthentications
from service.config import Settings, get_settings
from service.context import open_context
from service.cpu import shutdown_cpu_pool
from service.engines.base import Engine
from service.errors import DatabaseUnavailable, TapelineError, is_connection_loss
from service.live.event_stream import close_streams_on_shutdown
from service.logs import configure_logging

log = logging.getLogger(__name__)

GC_YOUNG_THRESHOLD = 20_000  # allocations between young collections (CPython's default: 700)

ROUTES = [
    Route("/healthz", health.healthz),
    Route("/readyz", health.readyz),
    Route("/api/audio", audio.upload_audio, methods=["POST"]),
    Route("/api/audio", audio.list_audio, methods=["GET"]),
    Route("/api/audio/{audio_id}", audio.get_audio, methods=["GET"]),
    Route("/api/transcribe", runs.transcribe, methods=["POST"]),
    Route("/api/runs", runs.create_run, methods=["POST"]),
    Route("/api/runs", runs.list_runs, methods=["GET"]),
    Route("/api/runs/events", events.StreamEndpoint(events.global_stream), methods=["GET"]),
    Route("/api/runs/{run_id}", runs.get_run, methods=["GET"]),
    Route("/api/runs/{run_id}/transcript", runs.get_transcript, methods=["GET"]),
    Route("/api/runs/{run_id}/progress", runs.get_progress, methods=["GET"]),
    Route("/api/runs/{run_id}/events", events.StreamEndpoint(events.run_stream), methods=["GET"]),
    Route("/api/runs/{run_id}/cancel", runs.cancel, methods=["POST"]),
    Route("/api/runs/{run_id}/retry", runs.retry, methods=["POST"]),
    Route("/api/runs/{run_id}/webhooks", runs.list_webhooks, methods=["GET"]),
    Route(
        "/api/runs/{run_id}/webhooks/{delivery_id}/redeliver",
        runs.redeliver_webhook,
        methods=["POST"],
    ),
    Route("/api/admin/worker", admin.worker_state, methods=["GET"]),
    Route("/api/admin/worker", admin.start_worker, methods=["POST"]),
    Route("/api/admin/worker", admin.stop_worker, methods=["DELETE"]),
    Route("/", web_page.index, methods=["GET"]),
    Mount("/web", app=web_page.WebFiles(), name="web"),
    Route("/api/uploads", tus_uploads.options, methods=["OPTIONS"]),
    Route("/api/uploads/", tus_uploads.options, methods=["OPTIONS"]),
    Route("/api/uploads", tus_uploads.create, methods=["POST"]),
    Route("/api/uploads/", tus_uploads.create, methods=["POST"]),
    Route("/api/uploads/{upload_id}", tus_uploads.options, methods=["OPTIONS"]),
    Route("/api/uploads/{upload_id}", tus_uploads.get_or_head, methods=["GET", "HEAD"]),
    Route("/api/uploads/{upload_id}", tus_uploads.patch, methods=["PATCH"]),
    Route("/api/uploads/{upload_id}", tus_uploads.terminate, methods=["DELETE"]),
    Route("/api/audio/{audio_id}", audio.delete_audio, methods=["DELETE"]),
    Route("/api/audio/{audio_id}", audio.rename_audio, methods=["PATCH"]),
    Route("/api/audio/{audio_id}/content", audio.audio_content, methods=["GET", "HEAD"]),
    Route("/metrics", metrics.scrape, methods=["GET"]),
    Route("/openapi.json", openapi.openapi_json, methods=["GET"]),
    Route("/v1/audio/transcriptions", openai_compat.create_transcription, methods=["POST"]),
    Route("/v1/models", openai_compat.list_models, methods=["GET"]),
    Route("/v1/models/{model}", openai_compat.get_model, methods=["GET"]),
]

HTTP_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "upload_too_large",
}


async def tapeline_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TapelineError)
    headers = getattr(exc, "headers", None)
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status, headers=headers)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    return JSONResponse(
        {"error": {"code": code, "message": str(exc.detail)}},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A 500, except that losing the database (a restart) is a 503 worth retrying shortly."""
    if is_connection_loss(exc):
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        error = DatabaseUnavailable("The database is unavailable for a moment. Try again.")
        return JSONResponse(
            {"error": error.to_dict()}, status_code=503, headers={"Retry-After": "2"}
        )
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": TapelineError().to_dict()}, status_code=500)


def settle_garbage_collector() -> None:
    """Move start-up's objects (modules, SDKs, settings) out of the collector's way.

    A process holding thousands of streams allocates on every message; with the default
    thresholds the collector runs often and now and then walks everything alive, which
    doubled the fan-out's p99 at 5,000 subscribers (bench/sse.py: 767 ms against 402 ms).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


def create_app(
    settings: Settings | None = None,
    *,
    with_worker: bool = True,
    engines: Mapping[str, Engine] | None = None,
) -> Starlette:
    """An API process; `with_worker` also runs a worker in it (`tapeline serve` default)."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_context(settings, engines=engines) as ctx:
            app.state.ctx = ctx
            ctx.hub = ctx.make_hub()
            await ctx.hub.start()
            shutdown_watch = asyncio.create_task(close_streams_on_shutdown(ctx.hub))
            if with_worker:
                ctx.worker = ctx.make_worker()
                await ctx.worker.start()
            settle_garbage_collector()
            try:
                yield
            finally:
                shutdown_watch.cancel()
                if ctx.worker is not None:
                    await ctx.worker.stop()
        shutdown_cpu_pool()

    app = Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        exception_handlers={
            TapelineError: tapeline_error,
            HTTPException: http_error,
            Exception: unexpected_error,
        },
    )
    app.state.auth_failures = FailedAuthentications(settings.auth_failures_per_minute)
    app.state.streams_per_owner = events.StreamsPerOwner(settings.max_streams_per_owner)
    return app


SERVE_WITH_WORKER = "TAPELINE_SERVE_WITH_WORKER"
"""How `tapeline serve --processes N` tells the processes it starts whether to run a worker."""


def serve_process() -> Starlette:
    """One of the API processes of `tapeline serve --processes N`. Uvicorn starts each one by
    importing this by name, so what `serve` decided reaches it through the environment."""
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level, secrets=settings.secret_values())
    return create_app(settings, with_worker=os.environ.get(SERVE_WITH_WORKER, "1") == "1")
