"""One process pool per process for CPU-bound work (decoding, recognition).

The event loop serves uploads and live progress streams; a recogniser running on it, or in a
thread holding the GIL, would stall all of them. Work goes to separate processes instead, and
one shared pool keeps the total number of busy cores bounded however many runs are in flight.
Processes are spawned, not forked, so they never inherit the loop, sockets or database pools.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

T = TypeVar("T")

WORKERS_ENV = "TAPELINE_CPU_WORKERS"

_pool: ProcessPoolExecutor | None = None
_lock = threading.Lock()


def cpu_workers() -> int:
    """How many worker processes the pool runs: `TAPELINE_CPU_WORKERS`, else one per core."""
    configured = os.environ.get(WORKERS_ENV, "").strip()
    if configured:
        workers = int(configured)
        if workers < 1:
            raise ValueError(f"{WORKERS_ENV} must be at least 1, got {workers}")
        return workers
    return os.cpu_count() or 1


def _get_pool() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(
                max_workers=cpu_workers(), mp_context=multiprocessing.get_context("spawn")
            )
        return _pool


async def run_cpu(fn: Callable[..., T], *args: object) -> T:
    """Run `fn(*args)` in the shared pool; `fn` and its arguments must be picklable.

    A worker that dies (killed for memory, say) breaks the whole pool; it is dropped so the
    next call, such as the job's retry, gets a fresh one.
    """
    loop = asyncio.get_running_loop()
    pool = _get_pool()
    try:
        return await loop.run_in_executor(pool, fn, *args)
    except BrokenProcessPool:
        _discard(pool)
        raise


def _discard(pool: ProcessPoolExecutor) -> None:
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=False, cancel_futures=True)


def shutdown_cpu_pool() -> None:
    """Stop the pool's processes (on shutdown, or in tests); the next `run_cpu` starts a new one."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
