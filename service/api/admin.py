"""/api/admin/worker: this process's worker (start, stop, state), all workers, queue depth."""

from __future__ import annotations

import asyncio
import os
import resource
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from service.auth import require_admin
from service.context import Context
from service.jobs import queue
from service.queries import q
from service.runs.representations import waiting_message


async def _state(ctx: Context) -> dict[str, Any]:
    async with ctx.db.connect() as conn:
        workers = (await conn.execute(q("list_workers"))).mappings().all()
        depth = await queue.depth(conn)
        unserved = await queue.unserved(conn)
    return {
        "worker": ctx.worker.info() if ctx.worker and ctx.worker.running else None,
        "streams": {
            "subscribers": ctx.hub.subscriber_count if ctx.hub else 0,
            "listening": ctx.hub.listener.alive if ctx.hub else False,
            "delivered": ctx.hub.delivered if ctx.hub else 0,
            "tasks": len(asyncio.all_tasks()),
        },
        "process": {"pid": os.getpid(), "rssBytes": _rss_bytes()},
        "workers": [
            {
                "id": w["id"],
                "hostname": w["hostname"],
                "pid": w["pid"],
                "state": w["state"],
                "concurrency": w["concurrency"],
                "currentJobs": list(w["current_jobs"]),
                "startedAt": w["started_at"].isoformat(),
                "heartbeatAt": w["heartbeat_at"].isoformat(),
                "serves": w["serves"],
            }
            for w in workers
        ],
        "queue": {
            s: depth.get(s, 0) for s in ("queued", "processing", "succeeded", "failed", "cancelled")
        },
        "waiting": [
            {"needs": needs, "jobs": jobs, "message": waiting_message(needs)}
            for needs, jobs in unserved.items()
        ],
    }


async def worker_state(request: Request) -> JSONResponse:
    await require_admin(request)
    return JSONResponse(await _state(request.app.state.ctx))


async def start_worker(request: Request) -> JSONResponse:
    await require_admin(request)
    ctx: Context = request.app.state.ctx
    if ctx.worker is None or not ctx.worker.running:
        ctx.worker = ctx.make_worker()
        await ctx.worker.start()
    return JSONResponse(await _state(ctx), status_code=202)


async def stop_worker(request: Request) -> JSONResponse:
    await require_admin(request)
    ctx: Context = request.app.state.ctx
    if ctx.worker is not None:
        await ctx.worker.stop()
    return JSONResponse(await _state(ctx))


def _rss_bytes() -> int:
    """Current resident memory (Linux /proc), else the peak the OS reports."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
