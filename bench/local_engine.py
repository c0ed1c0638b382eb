"""Does chunking a long recording across cores pay off for the local engine?

Builds an English recording with flite, then times (a) PocketSphinx over the whole audio in one
pass and (b) Tapeline's chunked, parallel `LocalEngine`, each from the audio file to segments,
and reports how many of the spoken words each recovered. The chunked path is timed twice: cold
(the pool's processes are spawned and load their models inside the measurement) and warm (a
long-running worker's steady state). The speed-up quoted first is the cold one. Other work on
the machine skews the figures, so the load average is printed and `--repeat` keeps the best.

    python bench/local_engine.py [--minutes 10] [--workers 2] [--repeat 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

# Import from the repository root, not from bench/, whose other scripts (queue.py) would shadow
# standard-library modules.
_BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(_BENCH_DIR.parent))

from service.cpu import WORKERS_ENV, shutdown_cpu_pool  # noqa: E402
from service.engines.base import EngineOptions, Segment  # noqa: E402
from service.engines.local import LocalEngine, transcribe_pcm_one_pass  # noqa: E402
from service.media.audio import decode_pcm16  # noqa: E402
from tests.fakes_engines import RecordingReporter  # noqa: E402
from tests.speech import long_recording  # noqa: E402


def word_recovery(spoken: Iterable[str], segments: Sequence[Segment]) -> float:
    """Share of spoken words found in the transcript, counted as a multiset, ignoring case."""
    said = Counter(word for sentence in spoken for word in sentence.lower().split())
    heard = Counter(word for segment in segments for word in segment.text.lower().split())
    return sum((said & heard).values()) / max(1, sum(said.values()))


def one_pass(path: Path) -> tuple[float, list[Segment]]:
    started = time.perf_counter()
    segments = transcribe_pcm_one_pass(decode_pcm16(path))
    return time.perf_counter() - started, segments


async def chunked(path: Path) -> tuple[float, list[Segment]]:
    started = time.perf_counter()
    transcript = await LocalEngine().transcribe(path, EngineOptions(), RecordingReporter())
    return time.perf_counter() - started, list(transcript.segments)


async def chunked_cold_then_warm(path: Path) -> tuple[float, float, list[Segment]]:
    """Time the engine with a pool it has to spawn, then again with the same pool."""
    shutdown_cpu_pool()
    try:
        cold_s, segments = await chunked(path)
        warm_s, _ = await chunked(path)
    finally:
        shutdown_cpu_pool()
    return cold_s, warm_s, segments


def load() -> str:
    """The machine's 1-minute load average: other work on the cores skews every figure."""
    return f"{os.getloadavg()[0]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the recording")
    parser.add_argument("--workers", type=int, default=2, help="pool processes (cores) to use")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the best time is kept")
    args = parser.parse_args()
    os.environ[WORKERS_ENV] = str(args.workers)

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        path, spoken = long_recording(Path(tmp) / "bench.wav", args.minutes)
        audio_s = len(decode_pcm16(path)) / 2 / 16000
        print(
            f"recording: {audio_s / 60:.1f} min, {len(spoken)} sentences, "
            f"built in {time.perf_counter() - started:.1f} s"
        )
        print(f"cores available: {os.cpu_count()}, pool workers: {args.workers}")

        single: list[float] = []
        cold: list[float] = []
        warm: list[float] = []
        for round_no in range(1, args.repeat + 1):
            print(f"round {round_no}: load {load()} before one pass", end="", flush=True)
            single_s, single_segments = one_pass(path)
            print(f", {load()} before chunked", end="", flush=True)
            cold_s, warm_s, chunked_segments = asyncio.run(chunked_cold_then_warm(path))
            print(f", {load()} after: {single_s:.1f} s / {cold_s:.1f} s / {warm_s:.1f} s")
            single.append(single_s)
            cold.append(cold_s)
            warm.append(warm_s)

    rows = [
        ("one pass (1 core)", min(single), single_segments),
        (f"chunked, cold pool ({args.workers} workers)", min(cold), chunked_segments),
        (f"chunked, warm pool ({args.workers} workers)", min(warm), chunked_segments),
    ]
    print()
    heading = f"path (best of {args.repeat})"
    print(f"{heading:<36} {'wall s':>8} {'x realtime':>11} {'words recovered':>16}")
    for label, seconds, segments in rows:
        recovered = word_recovery(spoken, segments)
        print(f"{label:<36} {seconds:8.1f} {audio_s / seconds:11.1f} {recovered:16.1%}")
    print()
    print(f"speed-up, cold pool: {min(single) / min(cold):.2f}x   (target >= 1.7x on 2 cores)")
    print(f"speed-up, warm pool: {min(single) / min(warm):.2f}x")
    print(f"one pass: {min(single) / (audio_s / 60):.1f} s of one core per minute of audio")


if __name__ == "__main__":
    main()
