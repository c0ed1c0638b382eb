"""A 60-minute recording through the openai engine and the fake OpenAI server (2 s per request).

Prints the wall time with Tapeline's concurrent chunking against one chunk at a time (the
baseline, measured in the same run), and the service's own overhead per run: wall time minus
the time at least one request was waiting on the provider (decoding, planning, encoding,
stitching, and anything else that is not the provider's fault).

    python bench/engines.py [--minutes 60] [--latency 2] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_BENCH_DIR = Path(__file__).resolve().parent
# bench/queue.py would shadow the standard library's queue module.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(_BENCH_DIR.parent))

from pydantic import SecretStr  # noqa: E402

from service.config import load_settings  # noqa: E402
from service.cpu import shutdown_cpu_pool  # noqa: E402
from service.engines.base import EngineOptions  # noqa: E402
from service.engines.openai import OpenAIEngine  # noqa: E402
from tests.fakes import Fakes, running_fakes  # noqa: E402
from tests.fakes_engines import RecordingReporter  # noqa: E402
from tests.speech import long_recording  # noqa: E402


def _union_seconds(intervals: list[tuple[float, float]]) -> float:
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


async def one_run(fakes: Fakes, wav: Path, concurrency: int) -> tuple[float, float, int]:
    """Wall seconds, seconds waiting on the provider, requests sent."""
    fakes.openai.recorder.clear()
    settings = load_settings(
        openai_api_key=SecretStr("sk-bench"),
        openai_base_url=fakes.openai_url,
        engine_max_concurrent_chunks=concurrency,
        job_timeout_ms=3_600_000,
        database_url="postgresql://unused/unused",
    )
    engine = OpenAIEngine(settings)
    create = engine.client.audio.transcriptions.create
    waits: list[tuple[float, float]] = []

    async def timed(**kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return await create(**kwargs)
        finally:
            waits.append((started, time.monotonic()))

    engine.client.audio.transcriptions.create = timed  # type: ignore[method-assign]
    started = time.monotonic()
    await engine.transcribe(wav, EngineOptions(), RecordingReporter())
    wall = time.monotonic() - started
    return wall, _union_seconds(waits), len(fakes.openai.transcriptions)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_fakes() as fakes:
        wav, _ = long_recording(Path(tmp) / "long.wav", args.minutes)
        fakes.openai.delay(args.latency)
        warm, _ = long_recording(Path(tmp) / "warm.wav", 0.2)
        await one_run(fakes, warm, args.concurrency)  # start the process pool
        sequential = await one_run(fakes, wav, 1)
        concurrent = await one_run(fakes, wav, args.concurrency)
    shutdown_cpu_pool()
    print(f"{args.minutes:g}-minute recording, fake OpenAI answering in {args.latency:g} s")
    for label, (wall, waiting, requests) in (
        ("one chunk at a time", sequential),
        (f"{args.concurrency} chunks at once", concurrent),
    ):
        print(
            f"  {label:<20} wall {wall:6.1f} s  waiting on the provider {waiting:5.1f} s  "
            f"service overhead {wall - waiting:5.1f} s  requests {requests}"
        )
    print(f"  speed-up (sequential wall / concurrent wall): {sequential[0] / concurrent[0]:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
