"""Live status fan-out: how fast a committed change reaches N idle SSE subscribers, what an idle
connection costs the server, and the same N clients polling `/progress` instead.

    python bench/sse.py [--subscribers 1000,5000] [--database-url postgresql://…/test]

One `tapeline serve --no-worker` process serves the streams. The subscribers run in a separate
client process (plain asyncio protocols, so the client's own cost stays small), the driver
commits run transitions from this process with Tapeline's persistence functions and notes each
commit's time; latency is a client's receive time minus that commit time (one machine, one
clock). The URL names an existing database, used to create the scratch `tapeline_bench_sse`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

_BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(_BENCH_DIR.parent))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import URL  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine  # noqa: E402

from service import runs  # noqa: E402
from service.database import asyncpg_dsn, create_engine, normalize_url  # noqa: E402
from service.engines.base import Transcript  # noqa: E402
from service.queries import q  # noqa: E402
from service.schema import upgrade  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
SCRATCH = "tapeline_bench_sse"
ADMIN = "bench-admin"
RUNS = 6
STEP_S = 0.15
POLL_EVERY_S = 2.0
POLL_CHANGES = 10
POLL_CHANGE_EVERY_S = 1.0
STATS_SETTLE_S = 11.0  # an idle backend reports its counters within 10 s (PostgreSQL 15+)


# --- the client process ------------------------------------------------------------------------


class _Subscriber(asyncio.Protocol):
    """Counts `id:` lines as they arrive; nothing else is parsed."""

    def __init__(
        self, seen: dict[int, list[float]], ready: list[int], all_ready: asyncio.Event, count: int
    ) -> None:
        self.seen = seen
        self.ready = ready
        self.all_ready = all_ready
        self.count = count
        self.tail = b""

    def data_received(self, data: bytes) -> None:
        now = time.time()
        lines = (self.tail + data).split(b"\n")
        self.tail = lines.pop()
        for line in lines:
            if line.startswith(b"id: "):
                self.seen.setdefault(int(line[4:]), []).append(now)
            elif line.startswith(b"retry:"):
                self.ready[0] += 1
                if self.ready[0] == self.count:
                    self.all_ready.set()


async def _subscribe(port: int, count: int, pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    seen: dict[int, list[float]] = {}
    ready = [0]
    all_ready = asyncio.Event()
    request = f"GET /api/runs/events?access_token={ADMIN} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    transports = []
    gate = asyncio.Semaphore(100)

    async def open_one() -> None:
        async with gate:
            transport, _ = await loop.create_connection(
                lambda: _Subscriber(seen, ready, all_ready, count), "127.0.0.1", port
            )
            transport.write(request)
            transports.append(transport)

    await asyncio.gather(*(open_one() for _ in range(count)))
    await all_ready.wait()
    pipe.send("connected")
    await asyncio.to_thread(pipe.recv)
    pipe.send(seen)
    for transport in transports:
        transport.close()


async def _poll(port: int, count: int, run_id: str, seconds: float, pipe: Connection) -> None:
    """`count` clients asking `/progress` every 2 s (random phase) over keep-alive connections."""
    samples: list[tuple[int, float, int]] = []
    path = f"/api/runs/{run_id}/progress?access_token={ADMIN}"
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    deadline = time.time() + seconds
    gate = asyncio.Semaphore(200)

    async def client(number: int) -> None:
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(random.uniform(0, POLL_EVERY_S))
        while time.time() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            progress = int(body.split(b'"progress":')[1].split(b",")[0])
            samples.append((number, time.time(), progress))
            await asyncio.sleep(POLL_EVERY_S)
        writer.close()

    await asyncio.gather(*(client(n) for n in range(count)), return_exceptions=True)
    pipe.send(samples)


def _client_main(mode: str, port: int, count: int, extra: Any, pipe: Connection) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if mode == "subscribe":
        asyncio.run(_subscribe(port, count, pipe))
    else:
        run_id, seconds = extra
        asyncio.run(_poll(port, count, run_id, seconds, pipe))


# --- the server and the driver -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(url: URL, port: int, data_dir: Path) -> Iterator[str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url.render_as_string(hide_password=False),
        ADMIN_TOKEN=ADMIN,
        TAPELINE_DATA_DIR=str(data_dir),
    )
    args = [sys.executable, "-m", "service", "serve", "--no-worker", "--no-migrate"]
    proc = subprocess.Popen(
        [*args, "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _server_state(base: str) -> dict[str, Any]:
    body = httpx.get(f"{base}/api/admin/worker", headers={"Authorization": f"Bearer {ADMIN}"})
    return dict(body.json())


async def _transactions(db: AsyncEngine) -> int:
    async with db.connect() as conn:
        sql = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :d"
        value = (await conn.execute(text(sql), {"d": SCRATCH})).scalar_one()
    await asyncio.sleep(0)
    return int(value)


async def _new_run(db: AsyncEngine) -> tuple[Any, int]:
    params = {
        "owner": "bench",
        "filename": "bench.wav",
        "content_type": "audio/wav",
        "size_bytes": 1,
        "duration_ms": 1000,
        "sample_rate": 16000,
        "channels": 1,
        "sha256": "x",
        "storage_key": "audio/bench",
    }
    async with db.begin() as conn:
        audio = (await conn.execute(q("insert_audio"), params)).mappings().one()
        created = await runs.create_run(
            conn, audio_id=audio["id"], owner="bench", engine="local", model=None, language=None
        )
    return created.run["id"], created.event_id


async def _drive_transitions(db: AsyncEngine) -> dict[int, float]:
    """Runs through their life, one committed transition every STEP_S; commit time by event id."""
    committed: dict[int, float] = {}
    for _ in range(RUNS):
        run_id, event_id = await _new_run(db)
        committed[event_id] = time.time()
        for step in range(4):
            await asyncio.sleep(STEP_S)
            async with db.begin() as conn:
                change = await _step(conn, run_id, step)
            assert change is not None
            committed[change.event_id] = time.time()
    return committed


async def _step(conn: AsyncConnection, run_id: Any, step: int) -> runs.Change | None:
    """The run's next transition: started, analyzing, finalizing, succeeded."""
    if step == 0:
        return await runs.start(conn, run_id, attempts=1, stage="uploading", progress=0)
    if step == 1:
        return await runs.set_stage(conn, run_id, "analyzing", 10)
    if step == 2:
        return await runs.set_stage(conn, run_id, "finalizing", 90)
    return await runs.succeed(conn, run_id, Transcript("hello", "en", ()))


async def _drive_progress(db: AsyncEngine, run_id: Any) -> dict[int, float]:
    """One run's progress moves through distinct values; commit time by value."""
    committed: dict[int, float] = {}
    for value in range(1, POLL_CHANGES + 1):
        await asyncio.sleep(POLL_CHANGE_EVERY_S)
        async with db.begin() as conn:
            await runs.set_stage(conn, run_id, f"step-{value}", value)
        committed[value] = time.time()
    return committed


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _measure(url: URL, subscribers: int) -> dict[str, float]:
    db = create_engine(url, pool_size=2)
    context = multiprocessing.get_context("spawn")
    result: dict[str, float] = {"subscribers": subscribers}
    with (
        tempfile.TemporaryDirectory() as data_dir,
        _server(url, _free_port(), Path(data_dir)) as base,
    ):
        port = int(base.rsplit(":", 1)[1])
        rss_before = _server_state(base)["process"]["rssBytes"]

        ours, theirs = context.Pipe()
        clients = context.Process(
            target=_client_main, args=("subscribe", port, subscribers, None, theirs)
        )
        clients.start()
        assert await asyncio.to_thread(ours.recv) == "connected"
        await asyncio.sleep(1.0)
        state = _server_state(base)
        assert state["streams"]["subscribers"] == subscribers, state["streams"]
        result["rss_kib_per_conn"] = (
            (state["process"]["rssBytes"] - rss_before) / subscribers / 1024
        )

        await asyncio.sleep(STATS_SETTLE_S)
        tx_before, started = await _transactions(db), time.time()
        committed = await _drive_transitions(db)
        window = time.time() - started
        await asyncio.sleep(STATS_SETTLE_S)
        driver_tx = len(committed) + 1
        result["sse_tx_s"] = (await _transactions(db) - tx_before - driver_tx) / window
        ours.send("stop")
        seen: dict[int, list[float]] = await asyncio.to_thread(ours.recv)
        clients.join(30)

        latencies = [
            (received - at) * 1000
            for event_id, at in committed.items()
            for received in seen.get(event_id, [])
        ]
        result["missing"] = len(committed) * subscribers - len(latencies)
        result["p50"] = statistics.median(latencies)
        result["p99"] = _percentile(latencies, 0.99)
        result["max"] = max(latencies)
        result["sse_mean"] = statistics.fmean(latencies)

        run_id, _ = await _new_run(db)
        async with db.begin() as conn:
            await runs.start(conn, run_id, attempts=1, stage="analyzing", progress=0)
        seconds = POLL_CHANGES * POLL_CHANGE_EVERY_S + POLL_EVERY_S + 1
        ours, theirs = context.Pipe()
        pollers = context.Process(
            target=_client_main, args=("poll", port, subscribers, (str(run_id), seconds), theirs)
        )
        await asyncio.sleep(STATS_SETTLE_S)
        tx_before = await _transactions(db)
        pollers.start()
        changed = await _drive_progress(db, run_id)
        samples: list[tuple[int, float, int]] = await asyncio.to_thread(ours.recv)
        pollers.join(30)
        await asyncio.sleep(STATS_SETTLE_S)
        driver_tx = POLL_CHANGES + 1
        result["poll_tx_s"] = (await _transactions(db) - tx_before - driver_tx) / seconds
        result["poll_requests_s"] = len(samples) / seconds
        first_seen: dict[tuple[int, int], float] = {}
        for client, seen_at, value in sorted(samples, key=lambda s: s[1]):
            if value in changed:
                first_seen.setdefault((client, value), seen_at)
        staleness = [(at - changed[value]) * 1000 for (_, value), at in first_seen.items()]
        result["poll_staleness"] = statistics.fmean(staleness) if staleness else float("nan")
    await db.dispose()
    return result


async def _prepare(admin_url: URL) -> URL:
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {SCRATCH}")
    finally:
        await conn.close()
    url = admin_url.set(database=SCRATCH)
    await asyncio.to_thread(upgrade, url)
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", default="1000,5000")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_URL))
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    url = asyncio.run(_prepare(normalize_url(args.database_url)))
    rows = [asyncio.run(_measure(url, int(n))) for n in args.subscribers.split(",")]
    print()
    print("SSE fan-out (global stream, idle subscribers) against polling /progress every 2 s")
    header = (
        f"{'clients':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'missing':>8} "
        f"{'KiB/conn':>9} | {'SSE tx/s':>9} {'SSE mean ms':>11} | {'poll req/s':>10} "
        f"{'poll tx/s':>9} {'poll stale ms':>13}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['subscribers']:>8.0f} {r['p50']:>8.1f} {r['p99']:>8.1f} {r['max']:>8.1f} "
            f"{r['missing']:>8.0f} {r['rss_kib_per_conn']:>9.1f} | {r['sse_tx_s']:>9.1f} "
            f"{r['sse_mean']:>11.1f} | {r['poll_requests_s']:>10.1f} {r['poll_tx_s']:>9.1f} "
            f"{r['poll_staleness']:>13.1f}"
        )


if __name__ == "__main__":
    main()
