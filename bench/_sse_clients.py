"""The client side of `bench/sse.py`, run as its own process so its event loop stays out of the
driver's way: N idle SSE subscribers, or N clients polling `/progress`.

    python bench/_sse_clients.py subscribe --port P --count N --token T
    python bench/_sse_clients.py poll --port P --count N --token T --path /api/runs/ID/progress

Standard library only (uvloop when installed), raw `asyncio.Protocol` connections, requests
written by hand. It talks to its parent in JSON lines: stdout says `{"ready": …}` once every
connection is up, then waits for a line on stdin (`go` / `stop`; end of input counts as `stop`)
and answers with one line of results. A hard `--max-seconds` ends it whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any, cast

# `python bench/_sse_clients.py` puts bench/ first on sys.path, where bench/queue.py would shadow
# the stdlib `queue`; nothing here is imported from bench/.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]

CONNECT_GATE = 200  # connections being set up at once (TCP + HTTP + first message)
_PROGRESS = re.compile(rb'"progress":\s*(\d+)')
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def _command() -> str:
    """The parent's next line; end of input (the parent died) reads as `stop`."""
    line = await asyncio.to_thread(sys.stdin.readline)
    return line.strip() or "stop"


class _LagProbe:
    """How late this process's event loop runs a 10 ms timer: its own share of any latency."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._loop = asyncio.get_running_loop()
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self.worst = 0.0
        self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def _schedule(self) -> None:
        self._due = self._loop.time() + 0.01
        self._handle = self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        self.worst = max(self.worst, self._loop.time() - self._due)
        self._schedule()


# --- idle SSE subscribers ----------------------------------------------------------------------


class _Subscriber(asyncio.Protocol):
    """Notes the arrival time of every `id:` line; nothing else of the stream is parsed."""

    def __init__(self, shared: _Subscribers) -> None:
        self.shared = shared
        self.tail = b""
        self.status: bytes | None = None
        self.ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.shared.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        lines = (self.tail + data).split(b"\n")
        self.tail = lines.pop()
        for line in lines:
            if line.startswith(b"id: "):
                self.shared.received.setdefault(int(line[4:]), []).append(now)
                if not self.ready.done():
                    self.ready.set_result(True)
            elif self.status is None and line.startswith(b"HTTP/1.1 "):
                self.status = line[9:12]
                if self.status != b"200":
                    self.shared.bad_status += 1
                    if not self.ready.done():
                        self.ready.set_result(False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.shared.lost += 1
        if not self.ready.done():
            self.ready.set_result(False)


class _Subscribers:
    def __init__(self, token: str) -> None:
        path = f"/api/runs/events?access_token={token}"
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
        self.received: dict[int, list[float]] = {}
        self.bad_status = 0
        self.lost = 0


async def subscribe(port: int, count: int, token: str, connect_timeout: float) -> None:
    loop = asyncio.get_running_loop()
    shared = _Subscribers(token)
    protocols: list[_Subscriber] = []
    gate = asyncio.Semaphore(CONNECT_GATE)
    started = time.time()

    async def open_one() -> bool:
        async with gate:
            try:
                _, protocol = await loop.create_connection(
                    lambda: _Subscriber(shared), "127.0.0.1", port
                )
            except OSError:
                return False
            protocols.append(protocol)
            return await protocol.ready

    try:
        async with asyncio.timeout(connect_timeout):
            outcomes = await asyncio.gather(*(open_one() for _ in range(count)))
    except TimeoutError:
        outcomes = [
            p.ready.done() and not p.ready.cancelled() and p.ready.result() for p in protocols
        ]
    connected = sum(outcomes)
    _emit(
        {
            "ready": connected,
            "failed": count - connected,
            "connectSeconds": time.time() - started,
        }
    )
    probe = _LagProbe()
    probe.start()
    cpu_before = _cpu_seconds()
    await _command()
    probe.stop()
    _emit(
        {
            "received": shared.received,
            "lost": shared.lost,
            "badStatus": shared.bad_status,
            "worstLoopLagMs": probe.worst * 1000,
            "cpuSeconds": _cpu_seconds() - cpu_before,
        }
    )
    for protocol in protocols:
        if protocol.transport is not None:
            protocol.transport.close()


# --- polling clients ---------------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection with one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.answer: asyncio.Future[tuple[int, int]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def ask(self, request: bytes) -> asyncio.Future[tuple[int, int]]:
        """Send the request; the future gives (status, progress or -1)."""
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.answer

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[: end + 2]
        length_match = _LENGTH.search(head)
        length = int(length_match.group(1)) if length_match else 0
        if len(self.buffer) < end + 4 + length:
            return
        body = self.buffer[end + 4 : end + 4 + length]
        self.buffer = self.buffer[end + 4 + length :]
        status = int(head[9:12])
        match = _PROGRESS.search(body) if status == 200 else None
        if self.answer is not None and not self.answer.done():
            self.answer.set_result((status, int(match.group(1)) if match else -1))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionResetError("connection closed"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _PollStats:
    def __init__(self) -> None:
        self.samples: list[tuple[int, float, float, int, int]] = []
        self.connects = 0
        self.connect_errors = 0
        self.lost_in_flight = 0
        self.skipped = 0
        self.in_flight = 0


async def poll(
    port: int, count: int, token: str, path: str, interval: float, duration: float, grace: float
) -> None:
    """`count` clients asking `path` on a fixed `interval` grid, each with a random phase.

    A client connects at its first tick and keeps the connection alive (reconnecting if the
    server closes it). Never more than one request per client is in flight: an answer that comes
    back after the next tick makes the client skip the ticks it overlapped (counted)."""
    loop = asyncio.get_running_loop()
    separator = "&" if "?" in path else "?"
    request = f"GET {path}{separator}access_token={token} HTTP/1.1\r\nHost: bench\r\n\r\n"
    request_bytes = request.encode()
    stats = _PollStats()
    connections: list[_Connection] = []
    start = time.time()
    deadline = start + duration
    _emit({"started": start})
    probe = _LagProbe()
    probe.start()
    cpu_before = _cpu_seconds()

    async def client(number: int) -> None:
        tick = start + random.uniform(0, interval)
        conn: _Connection | None = None
        while tick < deadline:
            await asyncio.sleep(max(0.0, tick - time.time()))
            if conn is None or conn.closed:
                try:
                    _, conn = await loop.create_connection(_Connection, "127.0.0.1", port)
                except OSError:
                    stats.connect_errors += 1
                    conn = None
                else:
                    stats.connects += 1
                    connections.append(conn)
            if conn is not None:
                sent = time.time()
                stats.in_flight += 1
                try:
                    status, progress = await conn.ask(request_bytes)
                except ConnectionError:
                    stats.lost_in_flight += 1
                else:
                    stats.samples.append((number, sent, time.time(), status, progress))
                finally:
                    stats.in_flight -= 1
            tick += interval
            while tick < time.time():
                tick += interval
                stats.skipped += 1

    tasks = [asyncio.create_task(client(n)) for n in range(count)]
    _done, pending = await asyncio.wait(tasks, timeout=duration + grace)
    unanswered = stats.in_flight
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    ended = time.time()
    probe.stop()
    for conn in connections:
        conn.close()
    _emit(
        {
            "samples": stats.samples,
            "connects": stats.connects,
            "connectErrors": stats.connect_errors,
            "skippedTicks": stats.skipped,
            "lostInFlight": stats.lost_in_flight,
            "unanswered": unanswered,
            "start": start,
            "end": ended,
            "worstLoopLagMs": probe.worst * 1000,
            "cpuSeconds": _cpu_seconds() - cpu_before,
        }
    )


# --- entry point -------------------------------------------------------------------------------


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _raise_file_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("subscribe", "poll"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--path", default="")
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--grace", type=float, default=15.0)
    parser.add_argument("--connect-timeout", type=float, default=120.0)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args()
    _raise_file_limit()
    if args.mode == "subscribe":
        work = subscribe(args.port, args.count, args.token, args.connect_timeout)
    else:
        work = poll(
            args.port, args.count, args.token, args.path, args.interval, args.duration, args.grace
        )

    async def bounded() -> None:
        try:
            async with asyncio.timeout(args.max_seconds):
                await work
        except TimeoutError:
            print("client process: --max-seconds reached, giving up", file=sys.stderr)

    try:
        import uvloop
    except ImportError:
        asyncio.run(bounded())
    else:
        uvloop.run(bounded())


if __name__ == "__main__":
    main()
