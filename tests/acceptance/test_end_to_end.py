"""What a user and an operator do: the Procfile's processes, the CLI, a spoken recording."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.server import api_server, env_with, process, tapeline
from tests.speech import long_recording, speak
from tests.wer import normalized

SENTENCE = "the quick brown fox jumps over the lazy dog near the river bank"


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tapeline(*args), env=env, capture_output=True, text=True, timeout=120)


async def test_procfile_processes_transcribe_a_spoken_sentence(
    subprocess_env: dict[str, str], speech_dir: Path, tmp_path: Path
) -> None:
    env = env_with(subprocess_env, TRANSCRIBE_SYNC_MAX_DURATION_MS="1000")
    assert run_cli(env, "migrate").returncode == 0
    token = run_cli(env, "token", "create", "carol").stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    clip = speak(SENTENCE, speech_dir / "fox.wav")
    with (
        api_server(env, tmp_path / "web.log", "--no-worker", "--no-migrate") as base,
        process(tapeline("worker", "--no-migrate"), env, tmp_path / "worker.log"),
    ):
        with clip.open("rb") as f:
            created = httpx.post(
                f"{base}/api/transcribe", headers=headers, files={"file": f}, timeout=60
            )
        assert created.status_code == 202, created.text
        run_id = created.json()["id"]
        deadline = time.monotonic() + 120
        while (run := httpx.get(f"{base}/api/runs/{run_id}", headers=headers).json())[
            "status"
        ] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, run
            await asyncio.sleep(0.2)
    assert run["status"] == "succeeded", run["error"]
    heard = set(normalized(run["transcript"]["text"]).split())
    assert {"quick", "brown", "fox", "lazy", "dog"} <= heard, heard


@pytest.mark.timeout(240)
async def test_embedded_postgres_is_shared_by_every_command_on_one_data_dir(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(TAPELINE_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    migrated = run_cli(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    token = run_cli(env, "token", "create", "dave").stdout.strip()
    assert token.startswith("tl_")
    assert (tmp_path / "data" / "postgres" / "PG_VERSION").exists()
    with api_server(env, tmp_path / "serve.log", "--no-worker") as base:
        listed = httpx.get(f"{base}/api/runs", headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200, "serve found the database that `token create` used"
        assert httpx.get(f"{base}/readyz").json()["checks"]["database"] == "ok"
    listing = run_cli(env, "token", "list")
    assert "dave" in listing.stdout
    postmaster = tmp_path / "data" / "postgres" / "postmaster.pid"
    deadline = time.monotonic() + 10
    while postmaster.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not postmaster.exists(), "the embedded server stops when its last command exits"


def test_a_bad_setting_stops_start_up_naming_the_variable(
    subprocess_env: dict[str, str],
) -> None:
    env = env_with(subprocess_env, MAX_CONCURRENT_JOBS="lots")
    result = run_cli(env, "worker")
    assert result.returncode == 2
    assert "MAX_CONCURRENT_JOBS" in result.stderr and "Traceback" not in result.stderr


async def test_an_api_hosting_a_worker_stays_responsive_while_it_transcribes(
    subprocess_env: dict[str, str], speech_dir: Path, tmp_path: Path
) -> None:
    env = env_with(subprocess_env, TRANSCRIBE_SYNC_MAX_DURATION_MS="1000")
    token = run_cli(env, "token", "create", "frank").stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    recording, _ = long_recording(speech_dir / "minute.wav", 1.5)
    with api_server(env, tmp_path / "serve.log", "--no-migrate") as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            with recording.open("rb") as f:
                created = await client.post("/api/transcribe", headers=headers, files={"file": f})
            run_id = created.json()["id"]
            slowest = 0.0
            while True:
                started = time.monotonic()
                assert (await client.get("/healthz")).status_code == 200
                slowest = max(slowest, time.monotonic() - started)
                run = (await client.get(f"/api/runs/{run_id}", headers=headers)).json()
                if run["status"] not in ("queued", "processing"):
                    break
                await asyncio.sleep(0.05)
    assert run["status"] == "succeeded"
    assert slowest < 1.0, f"/healthz took {slowest:.2f}s while the worker transcribed"
