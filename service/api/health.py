"""/healthz (the process answers) and /readyz (database reachable, migrations current; and
whether the default Whisper model is on this machine, which does not decide readiness)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse

from service.context import Context
from service.engines.models import find_model
from service.schema import current_revision, head_revision


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    ctx: Context = request.app.state.ctx
    checks: dict[str, object] = {}
    try:
        revision = await current_revision(ctx.db)
        checks["database"] = "ok"
        checks["migrations"] = "current" if revision == head_revision() else f"at {revision}"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    if ctx.hub is not None:
        checks["listener"] = "ok" if ctx.hub.listener.alive else "reconnecting"
    ready = all(
        checks.get(k, "ok") in ("ok", "current") for k in ("database", "migrations", "listener")
    )
    name = ctx.settings.whisper_model
    present = await asyncio.to_thread(find_model, ctx.settings, name) is not None
    return JSONResponse(
        {
            "status": "ready" if ready else "not ready",
            "checks": checks,
            "model": {"name": name, "present": present},
        },
        status_code=200 if ready else 503,
    )
