"""Live status fan-out: how fast a committed change reaches N idle SSE subscribers, what an idle
connection costs the server, and what the same N clients cost polling `/progress` instead.

    python bench/sse.py [--subscribers 1000,5000] [--api-processes 1] [--database-url …]

For each N, against a freshly created scratch database `tapeline_bench_sse` (on the server the
URL names; the URL's own database is only used to create it and to read statistics):

1. a fresh `tapeline serve --no-worker` process (python -m service) on a free port, or with
   `--api-processes K` K of them, as behind a load balancer (each client process talks to one;
   RSS, CPU and subscribers are summed); its RSS from `GET /api/admin/worker` before any client
   connects;
2. N idle subscribers of `GET /api/runs/events` (admin token: every change reaches every one),
   held by separate client processes (bench/_sse_clients.py, raw asyncio protocols); once the
   admin endpoint counts N subscribers, RSS again: (after - before) / N per idle connection;
3. the driver, in this process, commits runs through create_run, start, set_stage (×2) and
   succeed with Tapeline's persistence functions, one transaction per transition, ~100–200 ms
   apart, noting time.time() right after each commit by its run_event id;
4. latency = each client's receive time of that id minus the commit time, over every (event,
   subscriber) pair: p50, p99, max, and deliveries that never arrived;
5. the same N clients poll `GET /api/runs/{id}/progress` every 2 s (random phase, keep-alive)
   while the driver moves one run through distinct progress values: mean staleness (commit to
   the first answer showing the value) and the database load.

Database load is transactions (xact_commit + xact_rollback in pg_stat_database for the scratch
database) per second of each window, the driver's own transactions and the server's idle
baseline (the listener's liveness query) taken out: what serving the clients costs Postgres.
Backends publish those counters up to 10 s late when busy, so each reading waits 11 s of quiet.
Everything runs on one machine with one clock; every subprocess is stopped on the way out.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/sse.py` puts bench/ first on sys.path, where bench/queue.py would shadow the
# stdlib `queue` (asyncio, asyncpg, SQLAlchemy import it); put the repository root there instead.
_BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(_BENCH_DIR.parent))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import ctypes  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import IO, Any  # noqa: E402

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from sqlalchemy.engine import URL  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine  # noqa: E402

from service import tokens  # noqa: E402
from service.database import asyncpg_dsn, normalize_url  # noqa: E402
from service.engines.base import Transcript  # noqa: E402
from service.queries import q  # noqa: E402
from service.runs import store as runs  # noqa: E402
from service.schema import upgrade  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
SCRATCH = "tapeline_bench_sse"
ADMIN_TOKEN = "bench-sse-admin-token-0123456789abcdef"
OWNER = "bench"
CLIENTS_SCRIPT = _BENCH_DIR / "_sse_clients.py"

TRANSITIONS_PER_RUN = 5  # queued, started, stage, stage, succeeded
STEP_S = (0.10, 0.20)  # pause between two commits of the SSE window
SSE_WINDOW_LIMIT_S = 20.0
POLL_INTERVAL_S = 2.0
POLL_LEAD_S = 2.0  # pollers settle into their phases before the first change
POLL_CHANGES = 8  # distinct progress values the polled run moves through
POLL_CHANGE_EVERY_S = 2.5  # longer than the poll interval: every client can see every value
POLL_TAIL_S = 2.5
POLL_GRACE_S = 15.0  # for answers still in flight when the polling window closes
STATS_SETTLE_S = 11.0  # a busy backend publishes its counters within 10 s once idle (PG 15+)
SERVER_START_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 120.0
SUBSCRIBERS_TIMEOUT_S = 60.0
CLIENT_MAX_S = 600.0


@dataclass
class Result:
    subscribers: int
    connected: int = 0
    client_processes: int = 0
    connect_s: float = math.nan
    rss_before_mib: float = math.nan
    rss_after_mib: float = math.nan
    rss_kib_per_conn: float = math.nan
    events: int = 0
    deliveries: int = 0
    missing: int = 0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    sse_mean_ms: float = math.nan
    fanout_spread_ms: float = math.nan  # median over events of last minus first delivery
    sse_window_s: float = math.nan
    sse_tx_s: float = math.nan
    sse_server_cpu_us_per_delivery: float = math.nan
    sse_client_lag_ms: float = math.nan
    sse_tx_per_change: float = math.nan
    poll_offered_rps: float = math.nan
    poll_rps: float = math.nan
    poll_ok: int = 0
    poll_errors: int = 0
    poll_lost: int = 0
    poll_skipped_ticks: int = 0
    poll_response_p50_ms: float = math.nan
    poll_response_p99_ms: float = math.nan
    poll_window_s: float = math.nan
    poll_tx_s: float = math.nan
    poll_tx_per_request: float = math.nan
    poll_staleness_ms: float = math.nan
    poll_unseen: int = 0
    poll_server_cpu_share: float = math.nan
    poll_client_lag_ms: float = math.nan
    notes: list[str] = field(default_factory=list)
    error: str | None = None


# --- processes ---------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the bench goes away, however it goes (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _stop(proc: subprocess.Popen[Any], timeout: float) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class Server:
    """`tapeline serve --no-worker` on a free port, against the scratch database."""

    def __init__(self, url: URL, workdir: Path, name: str = "server") -> None:
        self.url = url
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        self.data_dir = workdir / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.AsyncClient(
            base_url=self.base, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        )

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        root = str(_BENCH_DIR.parent)  # serve this checkout's code, whatever is installed
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        env.update(
            DATABASE_URL=self.url.render_as_string(hide_password=False),
            ADMIN_TOKEN=ADMIN_TOKEN,
            TAPELINE_DATA_DIR=str(self.data_dir),
            SSE_HEARTBEAT_MS="15000",
            MAX_STREAMS_PER_OWNER="0",  # --user-token: thousands of one owner's streams
        )
        command = [sys.executable, "-m", "service", "serve", "--no-worker", "--no-migrate"]
        with open(self.log_path, "wb") as log:
            return subprocess.Popen(
                [*command, "--port", str(self.port)],
                env=env,
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )

    async def start(self) -> None:
        self.proc = self._spawn()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited at start:\n{_tail(self.log_path)}")
            with contextlib.suppress(httpx.HTTPError):
                if (await self.http.get("/healthz", timeout=1)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"the server did not answer /healthz:\n{_tail(self.log_path)}")

    async def state(self) -> dict[str, Any]:
        response = await self.http.get("/api/admin/worker")
        response.raise_for_status()
        return dict(response.json())

    async def rss_bytes(self) -> int:
        return int((await self.state())["process"]["rssBytes"])

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used so far (/proc)."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def stop(self) -> None:
        await self.http.aclose()
        if self.proc is not None:
            _stop(self.proc, 15)


class Servers:
    """`--api-processes` API processes on the one database, as behind a load balancer: client
    process i talks to server i mod count; memory, CPU and subscribers are their sums."""

    def __init__(self, url: URL, workdir: Path, count: int) -> None:
        self.members = [Server(url, workdir, f"server-{i}") for i in range(count)]

    def port_for(self, index: int) -> int:
        return self.members[index % len(self.members)].port

    async def start(self) -> None:
        await asyncio.gather(*(server.start() for server in self.members))

    async def subscribers(self) -> int:
        states = await asyncio.gather(*(server.state() for server in self.members))
        return sum(int(state["streams"]["subscribers"]) for state in states)

    async def rss_bytes(self) -> int:
        return sum(await asyncio.gather(*(server.rss_bytes() for server in self.members)))

    def cpu_seconds(self) -> float:
        return sum(server.cpu_seconds() for server in self.members)

    def log_tails(self) -> str:
        return "\n".join(_tail(server.log_path) for server in self.members)

    async def stop(self) -> None:
        await asyncio.gather(*(server.stop() for server in self.members))


class ClientProcess:
    """One bench/_sse_clients.py process; JSON lines out, commands in."""

    def __init__(self, args: Sequence[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(CLIENTS_SCRIPT), *args, "--max-seconds", str(CLIENT_MAX_S)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            preexec_fn=_die_with_parent,
        )

    async def read(self, within: float) -> dict[str, Any]:
        """The process's next JSON line, waiting at most `within` seconds."""
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), within)
        if not line:
            raise RuntimeError(f"a client process ended early:\n{_tail(self.log_path)}")
        return dict(json.loads(line))

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.write(command.encode() + b"\n")
            self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        _stop(self.proc, 10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


def _shares(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


# --- the database side -------------------------------------------------------------------------


async def _prepare(admin_url: URL) -> URL:
    """Drop and create the scratch database, then migrate it."""
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {SCRATCH}")
    finally:
        await conn.close()
    url = admin_url.set(database=SCRATCH)
    await asyncio.to_thread(upgrade, url)
    return url


async def _drop(admin_url: URL) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
    finally:
        await conn.close()


class TxCounter:
    """Transactions Postgres counted for the scratch database, read from the admin database
    (so reading them is not counted)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, admin_url: URL) -> TxCounter:
        return cls(await asyncpg.connect(asyncpg_dsn(admin_url)))

    async def read(self) -> int:
        sql = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1"
        return int(await self.conn.fetchval(sql, SCRATCH))

    async def close(self) -> None:
        await self.conn.close()


class Driver:
    """Commits run transitions like a worker would, each in its own transaction, and counts the
    transactions it makes (a pool of one connection, no pre-ping: one `begin()` is one)."""

    def __init__(self, url: URL) -> None:
        self.db: AsyncEngine = create_async_engine(
            url,
            pool_size=1,
            max_overflow=0,
            json_serializer=json.dumps,
            json_deserializer=json.loads,
        )
        self.transactions = 0

    async def _audio(self, conn: Any) -> uuid.UUID:
        params = {
            "owner": OWNER,
            "filename": "bench.wav",
            "content_type": "audio/wav",
            "size_bytes": 1000,
            "duration_ms": 600_000,
            "sample_rate": 16000,
            "channels": 1,
            "sha256": uuid.uuid4().hex,
            "storage_key": f"audio/bench/{uuid.uuid4()}",
        }
        row = (await conn.execute(q("insert_audio"), params)).mappings().one()
        return uuid.UUID(str(row["id"]))

    async def new_run(self) -> tuple[uuid.UUID, int, float]:
        """An audio row and a queued run, in one transaction: (run id, event id, commit time)."""
        async with self.db.begin() as conn:
            audio_id = await self._audio(conn)
            change = await runs.create_run(
                conn, audio_id=audio_id, owner=OWNER, engine="local", model=None, language=None
            )
        committed = time.time()
        self.transactions += 1
        return uuid.UUID(str(change.run["id"])), change.event_id, committed

    async def step(self, run_id: uuid.UUID, step: int) -> tuple[int, float]:
        """The run's next transition (started, analyzing, finalizing, succeeded)."""
        async with self.db.begin() as conn:
            change: runs.Change | None
            if step == 0:
                change = await runs.start(conn, run_id, attempts=1, stage="uploading", progress=0)
            elif step == 1:
                change = await runs.set_stage(conn, run_id, "analyzing", 10)
            elif step == 2:
                change = await runs.set_stage(conn, run_id, "finalizing", 90)
            else:
                change = await runs.succeed(conn, run_id, Transcript("hello", "en", ()))
        committed = time.time()
        self.transactions += 1
        assert change is not None, f"run {run_id} refused transition {step}"
        return change.event_id, committed

    async def set_progress(self, run_id: uuid.UUID, progress: int) -> float:
        async with self.db.begin() as conn:
            change = await runs.set_stage(conn, run_id, "transcribing", progress)
        committed = time.time()
        self.transactions += 1
        assert change is not None
        return committed

    async def drive(self, run_count: int) -> dict[int, float]:
        """`run_count` runs through their whole life, ~100–200 ms between commits, bounded in
        time; the commit time of each run_event id."""
        committed: dict[int, float] = {}
        deadline = time.time() + SSE_WINDOW_LIMIT_S
        for _ in range(run_count):
            if time.time() > deadline:
                break
            run_id, event_id, at = await self.new_run()
            committed[event_id] = at
            for step in range(TRANSITIONS_PER_RUN - 1):
                await asyncio.sleep(random.uniform(*STEP_S))
                event_id, at = await self.step(run_id, step)
                committed[event_id] = at
            await asyncio.sleep(random.uniform(*STEP_S))
        return committed

    async def user_token(self) -> str:
        """A token of the owner every driven run belongs to (auth then reads the database)."""
        async with self.db.begin() as conn:
            token, _ = await tokens.create(conn, OWNER)
        return token

    async def close(self) -> None:
        await self.db.dispose()


# --- one N -------------------------------------------------------------------------------------


def _percentile(ordered: Sequence[float], share: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


async def _wait_for_subscribers(servers: Servers, count: int) -> int:
    deadline = time.monotonic() + SUBSCRIBERS_TIMEOUT_S
    seen = -1
    while time.monotonic() < deadline:
        seen = await servers.subscribers()
        if seen >= count:
            return seen
        await asyncio.sleep(0.5)
    return seen


def _sse_latencies(
    result: Result, committed: dict[int, float], received: dict[int, list[float]]
) -> None:
    latencies: list[float] = []
    spreads: list[float] = []
    for event_id, at in committed.items():
        times = received.get(event_id, [])[: result.connected]
        latencies.extend((t - at) * 1000 for t in times)
        if times:
            spreads.append((max(times) - min(times)) * 1000)
    latencies.sort()
    result.events = len(committed)
    result.deliveries = len(latencies)
    result.missing = len(committed) * result.connected - len(latencies)
    result.p50_ms = _percentile(latencies, 0.50)
    result.p99_ms = _percentile(latencies, 0.99)
    result.max_ms = latencies[-1] if latencies else math.nan
    result.sse_mean_ms = statistics.fmean(latencies) if latencies else math.nan
    result.fanout_spread_ms = statistics.median(spreads) if spreads else math.nan


def _staleness(
    result: Result, changes: list[tuple[int, float]], samples: list[tuple[Any, float, float, int]]
) -> None:
    """For every (client, change): commit to the first answer showing that value or a later one."""
    by_client: dict[Any, list[tuple[float, int]]] = {}
    for client, _sent, received, progress in samples:
        by_client.setdefault(client, []).append((received, progress))
    stale: list[float] = []
    unseen = 0
    for answers in by_client.values():
        answers.sort()
        for value, at in changes:
            first = next((t for t, p in answers if p >= value and t >= at), None)
            if first is None:
                unseen += 1
            else:
                stale.append((first - at) * 1000)
    result.poll_staleness_ms = statistics.fmean(stale) if stale else math.nan
    result.poll_unseen = unseen


@dataclass
class Options:
    runs: int = 6
    client_processes: int = 0  # 0: one per 5,000 clients
    user_token: bool = False
    polling: bool = True
    api_processes: int = 1

    def processes_for(self, n: int) -> int:
        return self.client_processes or max(self.api_processes, math.ceil(n / 5000))


class Bench:
    """One N: a server, the driver, the statistics reader, the client processes."""

    def __init__(self, url: URL, admin_url: URL, workdir: Path, n: int, options: Options):
        self.n = n
        self.options = options
        self.workdir = workdir
        self.result = Result(subscribers=n, client_processes=options.processes_for(n))
        self.server = Servers(url, workdir, options.api_processes)
        self.driver = Driver(url)
        self.admin_url = admin_url
        self.counter: TxCounter | None = None
        self.clients: list[ClientProcess] = []
        self.token = ADMIN_TOKEN
        self.poll_run: uuid.UUID | None = None

    def _spawn(self, mode: str, extra: list[str]) -> None:
        for i, share in enumerate(_shares(self.n, self.result.client_processes)):
            args = [mode, "--port", str(self.server.port_for(i)), "--count", str(share)]
            args += ["--token", self.token, *extra]
            self.clients.append(ClientProcess(args, self.workdir / f"{mode}-{i}.log"))

    def _stop_clients(self) -> None:
        for client in self.clients:
            client.stop()
        self.clients.clear()

    async def run(self) -> Result:
        try:
            self.counter = await TxCounter.open(self.admin_url)
            await self.server.start()
            await self.subscribe()
            await self.warm_up()
            await self.sse_window()
            if self.options.polling:
                await self.poll_window()
        except Exception as exc:
            self.result.error = f"{type(exc).__name__}: {exc}"
            self.result.notes.append(f"server log tail:\n{self.server.log_tails()}")
        finally:
            self._stop_clients()
            await self.server.stop()
            await self.driver.close()
            if self.counter is not None:
                await self.counter.close()
        return self.result

    async def subscribe(self) -> None:
        """N idle global streams; the server's RSS before and after."""
        result = self.result
        await asyncio.sleep(1.0)
        rss_before = await self.server.rss_bytes()
        result.rss_before_mib = rss_before / 2**20
        if self.options.user_token:
            self.token = await self.driver.user_token()
        started = time.time()
        self._spawn("subscribe", ["--connect-timeout", str(CONNECT_TIMEOUT_S)])
        ready = await asyncio.gather(*(c.read(CONNECT_TIMEOUT_S + 30) for c in self.clients))
        result.connect_s = time.time() - started
        result.connected = sum(int(r["ready"]) for r in ready)
        if result.connected < self.n:
            result.notes.append(f"only {result.connected} of {self.n} subscribers connected")
        counted = await _wait_for_subscribers(self.server, result.connected)
        if counted != result.connected:
            result.notes.append(f"the admin endpoint counts {counted} subscribers")
        await asyncio.sleep(1.0)
        rss_after = await self.server.rss_bytes()
        result.rss_after_mib = rss_after / 2**20
        result.rss_kib_per_conn = (rss_after - rss_before) / max(1, result.connected) / 1024

    async def warm_up(self) -> None:
        """Both paths once (statements, caches), and the run polling will watch, started."""
        self.poll_run, _, _ = await self.driver.new_run()
        async with self.driver.db.begin() as conn:
            await runs.start(conn, self.poll_run, attempts=1, stage="transcribing", progress=1)
        warm_run, _, _ = await self.driver.new_run()
        for step in range(TRANSITIONS_PER_RUN - 1):
            await self.driver.step(warm_run, step)

    async def sse_window(self) -> None:
        result = self.result
        assert self.counter is not None
        await asyncio.sleep(STATS_SETTLE_S)
        tx_before = await self.counter.read()
        cpu_before = self.server.cpu_seconds()
        self.driver.transactions = 0
        committed = await self.driver.drive(self.options.runs)
        driver_tx = self.driver.transactions
        result.sse_window_s = max(committed.values()) - min(committed.values())
        await asyncio.sleep(STATS_SETTLE_S)
        server_tx = await self.counter.read() - tx_before - driver_tx
        cpu = self.server.cpu_seconds() - cpu_before
        for client in self.clients:
            client.send("stop")
        outcomes = await asyncio.gather(*(c.read(120) for c in self.clients))
        self._stop_clients()

        received: dict[int, list[float]] = {}
        for outcome in outcomes:
            for key, times in outcome["received"].items():
                received.setdefault(int(key), []).extend(times)
        _sse_latencies(result, committed, received)
        result.sse_tx_s = server_tx / result.sse_window_s
        result.sse_tx_per_change = server_tx / len(committed)
        result.sse_client_lag_ms = max(float(o["worstLoopLagMs"]) for o in outcomes)
        if result.deliveries:
            result.sse_server_cpu_us_per_delivery = cpu / result.deliveries * 1e6
        lost = sum(int(o["lost"]) for o in outcomes)
        if lost:
            result.notes.append(f"{lost} SSE connections were closed by the server")

    async def poll_window(self) -> None:
        result = self.result
        assert self.counter is not None and self.poll_run is not None
        await asyncio.sleep(2.0)  # the SSE disconnects are done
        tx_before = await self.counter.read()  # nothing since the last settled reading
        self.driver.transactions = 0
        seconds = POLL_LEAD_S + POLL_CHANGES * POLL_CHANGE_EVERY_S + POLL_TAIL_S
        self._spawn(
            "poll",
            [
                "--path",
                f"/api/runs/{self.poll_run}/progress",
                "--interval",
                str(POLL_INTERVAL_S),
                "--duration",
                str(seconds),
                "--grace",
                str(POLL_GRACE_S),
            ],
        )
        cpu_before = self.server.cpu_seconds()
        starts = await asyncio.gather(*(c.read(30) for c in self.clients))
        start = max(float(s["started"]) for s in starts)
        await asyncio.sleep(max(0.0, start + POLL_LEAD_S - time.time()))
        changes: list[tuple[int, float]] = []
        for value in range(11, 11 + POLL_CHANGES):
            changes.append((value, await self.driver.set_progress(self.poll_run, value)))
            await asyncio.sleep(POLL_CHANGE_EVERY_S)
        outcomes = await asyncio.gather(
            *(c.read(seconds + POLL_GRACE_S + 60) for c in self.clients)
        )
        cpu = self.server.cpu_seconds() - cpu_before
        self._stop_clients()
        driver_tx = self.driver.transactions
        result.poll_window_s = max(float(o["end"]) for o in outcomes) - start
        await asyncio.sleep(STATS_SETTLE_S)
        server_tx = await self.counter.read() - tx_before - driver_tx

        samples: list[tuple[Any, float, float, int]] = []
        responses: list[float] = []
        for shard, outcome in enumerate(outcomes):
            for number, sent, got, status, progress in outcome["samples"]:
                if status == 200:
                    samples.append(((shard, number), sent, got, progress))
                    responses.append((got - sent) * 1000)
                else:
                    result.poll_errors += 1
            result.poll_lost += int(outcome["lostInFlight"]) + int(outcome["unanswered"])
            result.poll_lost += int(outcome["connectErrors"])
            result.poll_skipped_ticks += int(outcome["skippedTicks"])
        responses.sort()
        answered = len(samples) + result.poll_errors
        result.poll_ok = len(samples)
        result.poll_offered_rps = self.n / POLL_INTERVAL_S
        result.poll_rps = answered / result.poll_window_s
        result.poll_response_p50_ms = _percentile(responses, 0.50)
        result.poll_response_p99_ms = _percentile(responses, 0.99)
        result.poll_tx_s = server_tx / result.poll_window_s
        if answered:
            result.poll_tx_per_request = server_tx / answered
        result.poll_server_cpu_share = cpu / result.poll_window_s
        result.poll_client_lag_ms = max(float(o["worstLoopLagMs"]) for o in outcomes)
        _staleness(result, changes, samples)
        if result.poll_rps < 0.9 * result.poll_offered_rps:
            result.notes.append(
                f"polling saturates the server: {result.poll_rps:.0f} of "
                f"{result.poll_offered_rps:.0f} requests/s offered were answered"
            )


async def measure(admin_url: URL, n: int, options: Options) -> Result:
    url = await _prepare(admin_url)
    with tempfile.TemporaryDirectory(prefix="tapeline-bench-sse-") as tmp:
        return await Bench(url, admin_url, Path(tmp), n, options).run()


# --- report ------------------------------------------------------------------------------------


def _fmt(value: float, width: int, digits: int = 0) -> str:
    return f"{'-':>{width}}" if math.isnan(value) else f"{value:>{width}.{digits}f}"


def report(rows: list[Result]) -> None:
    columns: list[tuple[str, int, Callable[[Result], str]]] = [
        ("subscribers", 11, lambda r: f"{r.subscribers:>11}"),
        ("p50 ms", 7, lambda r: _fmt(r.p50_ms, 7, 1)),
        ("p99 ms", 7, lambda r: _fmt(r.p99_ms, 7, 1)),
        ("max ms", 7, lambda r: _fmt(r.max_ms, 7, 1)),
        ("missing", 7, lambda r: f"{r.missing:>7}"),
        ("KiB/conn", 8, lambda r: _fmt(r.rss_kib_per_conn, 8, 1)),
        ("| poll tx/s", 10, lambda r: "|" + _fmt(r.poll_tx_s, 9, 1)),
        ("stale ms", 8, lambda r: _fmt(r.poll_staleness_ms, 8)),
        ("| SSE tx/s", 9, lambda r: "|" + _fmt(r.sse_tx_s, 8, 1)),
        ("SSE mean ms", 11, lambda r: _fmt(r.sse_mean_ms, 11, 1)),
    ]
    print()
    print("Live status to N clients: SSE fan-out (idle global streams) vs. polling /progress / 2 s")
    print("tx/s = database transactions per second the server caused (driver writes excluded)")
    header = " ".join(f"{name:>{width}}" for name, width, _ in columns)
    print(header)
    print("-" * len(header))
    for row in rows:
        print(" ".join(cell(row) for _, _, cell in columns))
    for r in rows:
        print()
        print(f"N={r.subscribers}:")
        if r.error:
            print(f"  FAILED: {r.error}")
        print(
            f"  SSE: {r.connected} connected by {r.client_processes} client process(es) in "
            f"{r.connect_s:.1f} s; server RSS {r.rss_before_mib:.1f} -> {r.rss_after_mib:.1f} MiB"
        )
        print(
            f"  SSE: {r.events} events over {r.sse_window_s:.1f} s, {r.deliveries} deliveries; "
            f"median fan-out spread (first to last subscriber) {r.fanout_spread_ms:.0f} ms; "
            f"server CPU {r.sse_server_cpu_us_per_delivery:.0f} µs per delivery; "
            f"client loop lag max {r.sse_client_lag_ms:.0f} ms; "
            f"{r.sse_tx_per_change:.1f} server tx per change"
        )
        if math.isnan(r.poll_window_s):
            print("  poll: not measured")
        else:
            print(
                f"  poll: {r.poll_rps:.0f} of {r.poll_offered_rps:.0f} requests/s offered "
                f"answered ({r.poll_ok} ok, {r.poll_errors} errors, {r.poll_lost} lost or "
                f"unanswered, {r.poll_skipped_ticks} ticks skipped behind slow answers); "
                f"response p50 {r.poll_response_p50_ms:.0f} ms, p99 "
                f"{r.poll_response_p99_ms:.0f} ms"
            )
            print(
                f"  poll: {r.poll_tx_per_request:.2f} server tx per request; server CPU "
                f"{r.poll_server_cpu_share:.0%} of a core over {r.poll_window_s:.1f} s; "
                f"{r.poll_unseen} (client, change) pairs never seen; client loop lag max "
                f"{r.poll_client_lag_ms:.0f} ms"
            )
        for note in r.notes:
            print(f"  note: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--subscribers", default="1000,5000", help="comma-separated N values")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--runs", type=int, default=6, help="runs driven in each SSE window")
    parser.add_argument(
        "--client-processes",
        type=int,
        default=0,
        help="client processes per N (default: one per 5,000 clients)",
    )
    parser.add_argument(
        "--user-token",
        action="store_true",
        help="clients use one user's API token instead of ADMIN_TOKEN (auth then queries)",
    )
    parser.add_argument(
        "--api-processes",
        type=int,
        default=1,
        help="API processes sharing the clients, as several behind a load balancer",
    )
    parser.add_argument("--sse-only", action="store_true", help="skip the polling comparison")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    options = Options(
        runs=args.runs,
        client_processes=args.client_processes,
        user_token=args.user_token,
        polling=not args.sse_only,
        api_processes=args.api_processes,
    )
    counts = [int(part) for part in args.subscribers.split(",") if part.strip()]

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if max(counts) + 100 > hard:
        print(f"warning: open-file limit {hard} is below the largest N", file=sys.stderr)

    admin_url = normalize_url(args.database_url)
    rows: list[Result] = []
    try:
        for n in counts:
            print(f"N={n}: measuring…", file=sys.stderr, flush=True)
            rows.append(asyncio.run(measure(admin_url, n, options)))
    finally:
        if not args.keep:
            with contextlib.suppress(Exception):
                asyncio.run(_drop(admin_url))
    report(rows)
    if any(r.error for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
