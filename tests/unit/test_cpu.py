"""The CPU pool: a memory ceiling per process, and one dying process does not fail the others
(issue 15, finding 1)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest

from service import cpu
from service.errors import CpuProcessDied, MemoryLimitExceeded


def allocate(mb: int) -> int:
    block = bytearray(mb * 1024 * 1024)
    return len(block)


def slow_square(x: int) -> int:
    time.sleep(1.0)
    return x * x


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(cpu.WORKERS_ENV, "2")
    cpu.shutdown_cpu_pool()
    cpu.set_memory_limit(300)
    yield
    cpu.shutdown_cpu_pool()
    cpu.set_memory_limit(0)


async def test_a_call_past_the_memory_ceiling_fails_alone(pool: None) -> None:
    assert await cpu.run_cpu(allocate, 50) == 50 * 1024 * 1024
    with pytest.raises(MemoryLimitExceeded):
        await cpu.run_cpu(allocate, 1024)
    assert await cpu.run_cpu(allocate, 50) == 50 * 1024 * 1024


async def test_a_process_that_dies_fails_its_own_call_not_the_others(pool: None) -> None:
    innocent = asyncio.create_task(cpu.run_cpu(slow_square, 7))
    await asyncio.sleep(0.3)
    with pytest.raises(CpuProcessDied):
        await cpu.run_cpu(die)
    assert await innocent == 49
    assert await cpu.run_cpu(slow_square, 3) == 9
