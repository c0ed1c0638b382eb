"""One process pool per process for CPU-bound work (decoding, recognition).

The event loop serves uploads and live progress streams; a recogniser running on it, or in a
thread holding the GIL, would stall all of them. Work goes to separate processes instead, and
one shared pool keeps the total number of busy cores bounded however many runs are in flight.
Processes are spawned, not forked, so they never inherit the loop, sockets or database pools.

Each pool process has a memory ceiling (CPU_WORKER_MEMORY_MB, as RLIMIT_DATA): a call that
would pass it gets MemoryError inside the process, which comes back as that call's
`MemoryLimitExceeded`, while the process and the pool live on. A process that dies anyway
(killed from outside) breaks the whole pool and every call in flight on it; the pool is
replaced, and each of those calls runs once more in a process of its own, so the call that
kills its process again fails alone (`CpuProcessDied`), not every user's.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import resource
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from service.errors import CpuProcessDied, MemoryLimitExceeded

T = TypeVar("T")

WORKERS_ENV = "TAPELINE_CPU_WORKERS"

_pool: ProcessPoolExecutor | None = None
_lock = threading.Lock()
_memory_mb = 0


def set_memory_limit(memory_mb: int) -> None:
    """The ceiling for pool processes started from now on (0: none); see the module's doc."""
    global _memory_mb
    _memory_mb = memory_mb


def _limit_memory(memory_mb: int) -> None:
    """In a new pool process: cap its data segment (heap and private mappings)."""
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


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
            _pool = _new_pool(cpu_workers())
        return _pool


def _new_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_limit_memory,
        initargs=(_memory_mb,),
    )


async def run_cpu(fn: Callable[..., T], *args: object) -> T:
    """Run `fn(*args)` in the shared pool; `fn` and its arguments must be picklable.

    A call that passes the memory ceiling raises MemoryLimitExceeded. When the pool breaks
    under a call, the pool is replaced and the call runs once more alone, in a one-process
    pool, where killing its process again breaks nobody else's: then it raises CpuProcessDied.
    """
    loop = asyncio.get_running_loop()
    pool = _get_pool()
    try:
        return await loop.run_in_executor(pool, fn, *args)
    except BrokenProcessPool:
        _discard(pool)
    except MemoryError:
        raise MemoryLimitExceeded() from None
    alone = _new_pool(1)
    try:
        return await loop.run_in_executor(alone, fn, *args)
    except BrokenProcessPool:
        raise CpuProcessDied() from None
    except MemoryError:
        raise MemoryLimitExceeded() from None
    finally:
        alone.shutdown(wait=False, cancel_futures=True)


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
