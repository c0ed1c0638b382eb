"""Time to first words: a long recording on the local engine, read live as partial transcripts,
against waiting for the full transcript.

    python bench/partial.py [--minutes 30]

Makes a flite recording of `--minutes`, starts `tapeline serve` (API and worker, local engine)
on a database of its own (on DATABASE_URL's server, else the embedded PostgreSQL), uploads the
recording with POST /api/transcribe and follows the run's stream from the moment the upload is
answered. Prints when the first words arrived and when the whole transcript was done (both from
that moment), their ratio, how much of the final text a reader had at each quarter of the wait,
and checks that the partials add up to exactly the final transcript.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/partial.py` puts bench/ first on sys.path, where bench/queue.py would shadow the
# stdlib `queue`; put the repository root there instead.
_BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(_BENCH_DIR.parent))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
from httpx_sse import connect_sse  # noqa: E402

from bench._server import own_database, token_for  # noqa: E402
from tests.server import serving  # noqa: E402
from tests.speech import long_recording  # noqa: E402


@dataclass
class Arrival:
    at_s: float
    words: int
    segments: list[dict[str, Any]]


def follow(base: str, headers: dict[str, str], run_id: str, started: float) -> list[Arrival]:
    """Every partial until `done`, each with its time since `started` and its word count."""
    arrivals: list[Arrival] = []
    with (
        httpx.Client(base_url=base, headers=headers, timeout=httpx.Timeout(30, read=600)) as http,
        connect_sse(http, "GET", f"/api/runs/{run_id}/events") as source,
    ):
        source.response.raise_for_status()
        for sse in source.iter_sse():
            if not sse.data:
                continue
            data = json.loads(sse.data)
            if data["event"] == "partial":
                words = sum(len(s["text"].split()) for s in data["segments"])
                arrivals.append(Arrival(time.perf_counter() - started, words, data["segments"]))
            elif data["event"] == "done":
                arrivals.append(Arrival(time.perf_counter() - started, 0, []))
                return arrivals
            elif data["event"] == "error":
                raise SystemExit(f"the run failed: {data['error']}")
    raise SystemExit("the stream ended before the run was done")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="tapeline-bench-partial-") as tmp,
        own_database() as database,
    ):
        root = Path(tmp)
        made = time.perf_counter()
        recording, _ = long_recording(root / "talk.wav", args.minutes)
        print(
            f"recording: {args.minutes:g} min of flite speech, made in "
            f"{time.perf_counter() - made:.0f} s"
        )
        env = dict(os.environ, TAPELINE_DATA_DIR=str(root / "data"), PYTHONUNBUFFERED="1")
        env.update(database, TRANSCRIBE_SYNC_MAX_DURATION_MS="0")
        headers = {"Authorization": f"Bearer {token_for(env, 'bench')}"}
        with serving(env, root / "server.log", timeout=120) as (base, _):
            with recording.open("rb") as f:
                created = httpx.post(
                    f"{base}/api/transcribe",
                    headers=headers,
                    files={"file": ("talk.wav", f, "audio/wav")},
                    data={"engine": "local"},
                    timeout=300,
                )
            created.raise_for_status()
            started = time.perf_counter()
            run_id = created.json()["id"]
            arrivals = follow(base, headers, run_id, started)
            final = httpx.get(
                f"{base}/api/runs/{run_id}/transcript", headers=headers, timeout=60
            ).json()

    partials, done = arrivals[:-1], arrivals[-1]
    first = next(a for a in partials if a.words)
    total_words = len(final["text"].split())
    stitched = sorted(
        (s for a in partials for s in a.segments), key=lambda s: (s["start_ms"], s["end_ms"])
    )
    print(f"partials: {len(partials)} (one per chunk), {total_words} words in all")
    print(f"first words after      {first.at_s:8.1f} s")
    print(f"full transcript after  {done.at_s:8.1f} s")
    print(f"ratio                  {done.at_s / first.at_s:8.1f}x sooner to first words")
    for quarter in (0.25, 0.5, 0.75):
        seen = sum(a.words for a in partials if a.at_s <= quarter * done.at_s)
        print(f"text readable at {quarter:4.0%} of the wait: {seen / max(1, total_words):6.1%}")
    print(f"partials add up to the final transcript: {stitched == final['segments']}")


if __name__ == "__main__":
    main()
