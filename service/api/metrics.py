"""/metrics: this process's Prometheus metrics, with queue depth and stream counts read now."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from service import metrics
from service.context import Context
from service.errors import Unauthorized
from service.jobs import queue

log = logging.getLogger(__name__)


async def scrape(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    token = ctx.settings.metrics_token
    expected = token.get_secret_value() if token is not None else None
    if not metrics.bearer_matches(request.headers.get("authorization"), expected):
        raise Unauthorized("Send METRICS_TOKEN as `Authorization: Bearer <token>`.")
    depth: dict[str, int] | None
    try:
        async with ctx.db.connect() as conn:
            depth = await queue.active_depth(conn)
    except Exception:
        log.warning("metrics: could not read the queue depth", exc_info=True)
        depth = None
    hub = ctx.hub
    snapshot = metrics.ScrapeSnapshot(
        queue_depth=depth,
        sse_connections=hub.subscriber_count if hub is not None else None,
        events_delivered=hub.delivered if hub is not None else None,
    )
    body, content_type = metrics.render(snapshot)
    return Response(body, media_type=content_type)
