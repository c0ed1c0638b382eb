"""Postgres as production runs it, with real `tapeline serve` processes on a private cluster:
a fast-mode restart in the middle of transcriptions, and a transaction-pooling PgBouncer in
front (LISTEN on the direct connection)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.postgres import Cluster, pgbouncer, private_cluster
from tests.server import api_server, env_with, tapeline
from tests.speech import long_recording, speak
from tests.sse import Received, collect

pytestmark = pytest.mark.timeout(300)
Until = Callable[[list[Received]], bool]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with private_cluster(max_connections=80) as cluster:
        cluster.create_database("app")
        yield cluster


def _env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    import os

    return env_with(
        dict(os.environ),
        DATABASE_URL=database_url,
        TAPELINE_DATA_DIR=str(data_dir),
        ADMIN_TOKEN="admin-secret-for-tests-0123456789abcdef",
        POLL_INTERVAL_MS="100",
        JOB_LEASE_MS="3000",
        WORKER_RETRY_DELAYS="200,500,1000",
        TRANSCRIBE_SYNC_MAX_DURATION_MS="0",
        PYTHONUNBUFFERED="1",
        **extra,
    )


def _token(env: dict[str, str], owner: str) -> str:
    created = subprocess.run(
        tapeline("token", "create", owner), env=env, capture_output=True, text=True, timeout=120
    )
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def _ended(messages: list[Received]) -> bool:
    return bool(messages) and messages[-1].kind in ("done", "error")


async def _submit(client: httpx.AsyncClient, path: Path) -> str:
    created = await client.post("/api/transcribe", files={"file": path.read_bytes()}, timeout=60)
    assert created.status_code == 202, created.text
    return str(created.json()["id"])


async def _status(client: httpx.AsyncClient, run_id: str) -> str:
    return str((await client.get(f"/api/runs/{run_id}/progress")).json()["status"])


def test_a_fast_restart_mid_transcription_loses_no_run_and_no_subscriber(
    cluster: Cluster, speech_dir: Path, tmp_path: Path
) -> None:
    env = _env(cluster.url("app"), tmp_path / "data")
    token = _token(env, "rita")
    recordings = [
        long_recording(speech_dir / f"restart-{n}.wav", 0.3, sentences)[0]
        for n, sentences in enumerate(
            [("the meeting starts at nine",), ("we shipped the new release on friday",)]
        )
    ]

    async def scenario(base: str) -> tuple[list[list[Received]], list[Received], float]:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
            run_ids = [await _submit(client, path) for path in recordings]
            opened = [asyncio.Event() for _ in range(len(run_ids) + 1)]

            def until(index: int, ended: Until) -> Until:
                def check(messages: list[Received]) -> bool:
                    opened[index].set()
                    return ended(messages)

                return check

            streams = [
                asyncio.create_task(
                    collect(
                        client, f"/api/runs/{run_id}/events", until=until(i, _ended), timeout=240
                    )
                )
                for i, run_id in enumerate(run_ids)
            ]
            all_done = until(
                len(run_ids),
                lambda ms: {m.data.get("runId") for m in ms if m.kind == "done"} >= set(run_ids),
            )
            everything = asyncio.create_task(
                collect(client, "/api/runs/events", timeout=240, until=all_done)
            )
            async with asyncio.timeout(60):
                await asyncio.gather(*(event.wait() for event in opened))
            deadline = time.monotonic() + 120
            while [await _status(client, r) for r in run_ids] != ["processing"] * 2:
                assert time.monotonic() < deadline, "the runs never started"
                await asyncio.sleep(0.1)
            restarted_at = datetime.now(UTC)
            await asyncio.to_thread(cluster.restart)
            restarted = time.monotonic()
            while (await client.get("/readyz")).status_code != 200:
                await asyncio.sleep(0.1)
            ready_after = time.monotonic() - restarted
            per_run = [(await stream)[0] for stream in streams]
            overall = (await everything)[0]
            for run_id in run_ids:
                run = (await client.get(f"/api/runs/{run_id}")).json()
                assert run["status"] == "succeeded", run
                finished = datetime.fromisoformat(run["finishedAt"])
                assert finished > restarted_at, "the run was still being transcribed"
                assert run["transcript"]["text"], run
            return per_run, overall, ready_after

    with api_server(env, tmp_path / "serve.log", "--no-migrate") as base:
        per_run, overall, ready_after = asyncio.run(scenario(base))
    for messages in per_run:
        assert messages[0].kind == "init" and messages[-1].kind == "done", [
            m.data for m in messages
        ]
    assert sum(m.kind == "done" for m in overall) == 2
    assert ready_after < 10, f"/readyz was ready {ready_after:.1f} s after the restart"


def test_behind_pgbouncer_in_transaction_mode_with_listen_on_the_direct_connection(
    cluster: Cluster, speech_dir: Path, tmp_path: Path
) -> None:
    clip = speak("the pooler sits between us and the database", speech_dir / "pooler.wav")
    with pgbouncer(cluster, "app", pool_size=2) as port:
        env = _env(
            cluster.url("app", port),
            tmp_path / "data",
            DATABASE_DIRECT_URL=cluster.url("app"),
        )
        token = _token(env, "paul")

        async def scenario(base: str) -> None:
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
                run_ids = [await _submit(client, clip) for _ in range(2)]
                for run_id in run_ids:
                    messages, _ = await collect(
                        client, f"/api/runs/{run_id}/events", until=_ended, timeout=120
                    )
                    assert messages[-1].kind == "done", [m.data for m in messages]
                listed = (await client.get("/api/runs")).json()["items"]
                assert {r["id"] for r in listed} >= set(run_ids)
                assert all(r["status"] == "succeeded" for r in listed)
                assert (await client.get("/readyz")).status_code == 200

        with api_server(env, tmp_path / "serve.log", "--no-migrate") as base:
            asyncio.run(scenario(base))
        log = (tmp_path / "serve.log").read_text()
        assert "prepared statement" not in log, log[-3000:]
