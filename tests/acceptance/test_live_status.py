"""Live status across processes: two API processes, one worker, real SSE clients."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service import tokens
from tests.server import api_server, env_with, free_port, process, tapeline
from tests.speech import speak
from tests.sse import Received, collect, done_for, transitions

pytestmark = pytest.mark.timeout(240)

WORKER = ["python", "-m", "tests.acceptance.worker_process"]


@dataclass
class Cluster:
    api1: str
    api2: str
    env: dict[str, str]
    clip: Path
    logs: Path


@pytest.fixture(scope="module")
def cluster(
    subprocess_env: dict[str, str], speech_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    env = env_with(
        subprocess_env,
        TRANSCRIBE_SYNC_MAX_DURATION_MS="0",
        SSE_HEARTBEAT_MS="500",
        MAX_STREAMS_PER_OWNER="0",  # load tests: hundreds of streams of one owner
    )
    logs = tmp_path_factory.mktemp("cluster")
    clip = speak("status updates for everyone", speech_dir / "status.wav")
    with ExitStack() as stack:
        api1 = stack.enter_context(api_server(env, logs / "api1.log", "--no-worker"))
        api2 = stack.enter_context(
            api_server(env, logs / "api2.log", "--no-worker", "--no-migrate")
        )
        worker = [*WORKER, "--engine-delay", "2", "--ticks", "6"]
        stack.enter_context(process(worker, env, logs / "worker.log"))
        yield Cluster(api1, api2, env, clip, logs)


async def bearer(db: AsyncEngine, owner: str) -> tuple[str, dict[str, str]]:
    async with db.begin() as conn:
        token, _ = await tokens.create(conn, owner)
    return token, {"Authorization": f"Bearer {token}"}


def watch_until_done(client: httpx.AsyncClient, url: str) -> asyncio.Task[Any]:
    """Read a global stream in the background until some run is done."""
    return asyncio.create_task(
        collect(client, url, until=lambda m: any(x.kind == "done" for x in m))
    )


async def start_run(
    client: httpx.AsyncClient, base: str, headers: dict[str, str], clip: Path
) -> str:
    response = await client.post(
        f"{base}/api/transcribe", headers=headers, files={"file": clip.read_bytes()}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def logged(db: AsyncEngine, run_id: str) -> list[tuple[int, str]]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text("SELECT id, type FROM run_event WHERE run_id = :r ORDER BY id"), {"r": run_id}
        )
        return [(int(i), str(t)) for i, t in rows]


async def test_a_subscriber_on_the_other_process_sees_every_transition_in_order(
    cluster: Cluster, db: AsyncEngine
) -> None:
    token, alice = await bearer(db, "alice")
    async with httpx.AsyncClient(timeout=30) as client:
        everything = watch_until_done(
            client, f"{cluster.api2}/api/runs/events?access_token={token}"
        )
        await asyncio.sleep(0.5)
        run_id = await start_run(client, cluster.api1, alice, cluster.clip)
        own, headers = await collect(
            client, f"{cluster.api2}/api/runs/{run_id}/events?access_token={token}"
        )
        global_messages, global_headers = await everything
    log = await logged(db, run_id)
    assert [t for _, t in log] == ["queued", "started", "stage", "stage", "succeeded"]

    assert own[0].kind == "init" and own[-1].kind == "done"
    assert {m.event_name for m in own} == {"message"}, "every message is unnamed"
    init_id = int(own[0].id or 0)
    assert transitions(own, run_id) == [e for e in log if e[0] > init_id]
    assert own[-1].data["transcriptUrl"] == f"/api/runs/{run_id}/transcript"
    assert any(m.data.get("transition") == "progress" for m in own), "progress ticks arrive"
    assert headers["cache-control"] == "no-cache" and headers["x-accel-buffering"] == "no"

    assert global_messages[0].kind == "snapshot"
    assert transitions(global_messages, run_id) == log, "global: every transition, once, in order"
    assert global_messages[-1].kind == "done"
    assert global_headers["content-type"].startswith("text/event-stream")


async def test_a_finished_run_gets_init_then_done_at_once(
    cluster: Cluster, db: AsyncEngine
) -> None:
    token, alice = await bearer(db, "alice")
    async with httpx.AsyncClient(timeout=30) as client:
        run_id = await start_run(client, cluster.api1, alice, cluster.clip)
        await collect(client, f"{cluster.api1}/api/runs/{run_id}/events?access_token={token}")
        started = time.monotonic()
        again, _ = await collect(
            client, f"{cluster.api2}/api/runs/{run_id}/events?access_token={token}"
        )
    assert [m.kind for m in again] == ["init", "done"]
    assert again[0].data["status"] == "succeeded"
    assert time.monotonic() - started < 2


async def test_resume_by_last_event_id_gives_exactly_the_remaining_transitions(
    cluster: Cluster, db: AsyncEngine
) -> None:
    token, alice = await bearer(db, "alice")
    async with httpx.AsyncClient(timeout=30) as client:
        run_id = await start_run(client, cluster.api1, alice, cluster.clip)
        url = f"{cluster.api1}/api/runs/{run_id}/events?access_token={token}"
        first, _ = await collect(
            client,
            url,
            until=lambda m: (
                any(x.data.get("transition") == "started" for x in m)
                or any(x.kind == "init" and x.data["status"] == "processing" for x in m)
            ),
        )
        last_seen = (
            max(i for i, _ in transitions(first, run_id))
            if transitions(first, run_id)
            else int(first[0].id or 0)
        )
        rest, _ = await collect(
            client,
            f"{cluster.api2}/api/runs/{run_id}/events?access_token={token}",
            headers={"Last-Event-ID": str(last_seen)},
        )
    log = await logged(db, run_id)
    assert transitions(rest, run_id) == [e for e in log if e[0] > last_seen]
    assert rest[-1].kind == "done"
    got = transitions(first, run_id) + transitions(rest, run_id)
    assert len(got) == len(set(got)), "nothing delivered twice"


async def test_streams_survive_the_listen_connection_being_terminated(
    cluster: Cluster, db: AsyncEngine
) -> None:
    token, alice = await bearer(db, "alice")
    async with httpx.AsyncClient(timeout=30) as client:
        run_id = await start_run(client, cluster.api1, alice, cluster.clip)
        watching = asyncio.create_task(
            collect(client, f"{cluster.api2}/api/runs/{run_id}/events?access_token={token}")
        )
        await asyncio.sleep(0.3)
        async with db.connect() as conn:
            killed = (
                await conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = 'tapeline-listener'"
                    )
                )
            ).scalar_one()
        assert killed >= 2, "both API processes (and the worker) were listening"
        messages, _ = await watching
    assert messages[-1].kind == "done"
    log = await logged(db, run_id)
    assert transitions(messages, run_id) == [e for e in log if e[0] > int(messages[0].id or 0)]
    ready = httpx.get(f"{cluster.api2}/readyz").json()
    assert ready["checks"]["listener"] == "ok"


async def test_users_only_ever_see_their_own_runs(cluster: Cluster, db: AsyncEngine) -> None:
    alice_token, alice = await bearer(db, "alice")
    bob_token, bob = await bearer(db, "bob")
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(f"{cluster.api2}/api/runs/events")).status_code == 401
        bobs_view = watch_until_done(
            client, f"{cluster.api2}/api/runs/events?access_token={bob_token}"
        )
        await asyncio.sleep(0.3)
        alices_run = await start_run(client, cluster.api1, alice, cluster.clip)
        bobs_run = await start_run(client, cluster.api1, bob, cluster.clip)
        peek = await client.get(
            f"{cluster.api2}/api/runs/{alices_run}/events?access_token={bob_token}"
        )
        assert peek.status_code == 404
        bob_messages, _ = await bobs_view
        alice_messages, _ = await collect(
            client, f"{cluster.api1}/api/runs/{alices_run}/events?access_token={alice_token}"
        )
    seen_by_bob = {m.data.get("runId") for m in bob_messages} - {None}
    assert seen_by_bob == {bobs_run}
    assert {m.data.get("runId") for m in alice_messages} == {alices_run}


async def test_the_heartbeat_keeps_idle_streams_alive(cluster: Cluster, db: AsyncEngine) -> None:
    token, _ = await bearer(db, "carol")
    lines: list[str] = []
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("GET", f"{cluster.api2}/api/runs/events?access_token={token}") as response,
    ):
        started = time.monotonic()
        async for line in response.aiter_lines():
            lines.append(line)
            if line.startswith(": ping") or time.monotonic() - started > 5:
                break
    assert lines[0] == "retry: 3000", "a reconnection hint comes first"
    assert any(line.startswith(": ping") for line in lines), lines


async def test_a_client_that_never_reads_does_not_delay_one_that_does(
    cluster: Cluster, db: AsyncEngine
) -> None:
    token, alice = await bearer(db, "alice")
    host, port = cluster.api2.removeprefix("http://").split(":")
    stalled = []
    for _ in range(50):
        _reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"GET /api/runs/events?access_token={token} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
        await writer.drain()
        stalled.append(writer)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            watching = watch_until_done(
                client, f"{cluster.api2}/api/runs/events?access_token={token}"
            )
            await asyncio.sleep(0.3)
            run_id = await start_run(client, cluster.api1, alice, cluster.clip)
            messages, _ = await watching
            received_at = time.time()
        async with db.connect() as conn:
            finished = (
                await conn.execute(
                    text(
                        "SELECT extract(epoch FROM finished_at) FROM transcript_run WHERE id = :r"
                    ),
                    {"r": run_id},
                )
            ).scalar_one()
        assert messages[-1].data["runId"] == run_id
        assert received_at - float(finished) < 1.0, "done arrived promptly despite 50 stalled peers"
    finally:
        for writer in stalled:
            writer.close()


async def test_sigterm_with_500_open_streams_exits_fast_and_clients_resume_elsewhere(
    cluster: Cluster, db: AsyncEngine
) -> None:
    token, alice = await bearer(db, "alice")
    clients = 500
    port = free_port()
    doomed_url = f"http://127.0.0.1:{port}"
    with process(
        tapeline("serve", "--no-worker", "--no-migrate", "--port", str(port)),
        cluster.env,
        cluster.logs / "doomed.log",
    ) as doomed:
        async with httpx.AsyncClient(timeout=30) as probe:
            for _ in range(100):
                try:
                    if (await probe.get(f"{doomed_url}/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
        run_holder: dict[str, str] = {}
        connected = asyncio.Semaphore(0)

        async def subscriber(client: httpx.AsyncClient) -> list[Received]:
            first, _ = await collect(
                client,
                f"{doomed_url}/api/runs/events?access_token={token}",
                until=lambda m: (
                    (connected.release(), False)[1]
                    or (bool(run_holder) and done_for(run_holder["id"])(m))
                ),
                timeout=60,
                allow_drop=True,
            )
            last = max((int(m.id) for m in first if m.id), default=0)
            rest, _ = await collect(
                client,
                f"{cluster.api2}/api/runs/events?access_token={token}",
                headers={"Last-Event-ID": str(last)},
                until=lambda m: done_for(run_holder["id"])(first + m),
                timeout=60,
            )
            return first + rest

        limits = httpx.Limits(max_connections=clients * 2, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            tasks = [asyncio.create_task(subscriber(client)) for _ in range(clients)]
            for _ in range(clients):
                await asyncio.wait_for(connected.acquire(), 60)
            run_holder["id"] = await start_run(client, cluster.api1, alice, cluster.clip)
            await asyncio.sleep(0.8)
            signalled = time.monotonic()
            os.kill(doomed.pid, signal.SIGTERM)
            while doomed.poll() is None:
                await asyncio.sleep(0.05)
            exited_in = time.monotonic() - signalled
            results = await asyncio.gather(*tasks)
    log = await logged(db, run_holder["id"])
    assert exited_in < 5, f"the API process took {exited_in:.1f}s to exit"
    for messages in results:
        got = transitions(messages, run_holder["id"])
        snapshot_id = int(messages[0].id or 0)
        assert got == [e for e in log if e[0] > snapshot_id], "nothing lost, nothing twice"


async def test_ten_thousand_connects_and_disconnects_leave_nothing_behind(
    cluster: Cluster, db: AsyncEngine
) -> None:
    token, _ = await bearer(db, "erin")
    admin = {"Authorization": "Bearer admin-secret-for-tests-0123456789abcdef"}
    cycles, parallel = 10_000, 50

    async def state(client: httpx.AsyncClient) -> dict[str, int]:
        body = (await client.get(f"{cluster.api2}/api/admin/worker", headers=admin)).json()
        return {**body["streams"], "rss": body["process"]["rssBytes"]}

    async with httpx.AsyncClient(timeout=30) as client:
        warm = [
            collect(
                client, f"{cluster.api2}/api/runs/events?access_token={token}", until=lambda m: True
            )
            for _ in range(parallel)
        ]
        await asyncio.gather(*warm)
        before = await state(client)

        async def churn(count: int) -> None:
            for _ in range(count):
                await collect(
                    client,
                    f"{cluster.api2}/api/runs/events?access_token={token}",
                    until=lambda m: True,
                )

        await asyncio.gather(*(churn(cycles // parallel) for _ in range(parallel)))
        deadline = time.monotonic() + 10
        while (after := await state(client))["subscribers"] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    assert after["subscribers"] == 0
    assert after["tasks"] <= before["tasks"] + 2, (before, after)
    grown = (after["rss"] - before["rss"]) / 2**20
    assert grown < 25, f"RSS grew {grown:.1f} MiB over {cycles} cycles"
