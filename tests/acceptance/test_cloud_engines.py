"""A real `tapeline serve` process whose cloud engines talk to the fake providers by base URL."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import httpx

from tests.fakes import running_fakes
from tests.server import api_server, env_with, tapeline
from tests.speech import long_recording

GEMINI_KEY = "AIza-acceptance-gemini-key-42"
OPENAI_KEY = "sk-acceptance-openai-key-42"


async def test_serve_transcribes_on_gemini_and_openai_with_analysis(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    wav, _ = long_recording(tmp_path / "talk.wav", 0.1)
    with running_fakes() as fakes:
        fakes.openai.chat_reply(
            {"title": "A talk", "summary": "Someone talks.", "speaker_turns": []}
        )
        env = env_with(
            subprocess_env,
            GEMINI_API_KEY=GEMINI_KEY,
            GEMINI_BASE_URL=fakes.gemini_url,
            OPENAI_API_KEY=OPENAI_KEY,
            OPENAI_BASE_URL=fakes.openai_url,
            ANALYSIS_ENGINE="openai",
            TRANSCRIBE_SYNC_MAX_DURATION_MS="1000",
            GEMINI_POLL_INTERVAL_MS="50",
        )
        token = subprocess.run(
            tapeline("token", "create", "dora"),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout.strip()
        headers = {"Authorization": f"Bearer {token}"}
        log = tmp_path / "serve.log"
        finished = {}
        with api_server(env, log) as base:
            for engine in ("openai", "gemini"):
                with wav.open("rb") as f:
                    created = httpx.post(
                        f"{base}/api/transcribe",
                        headers=headers,
                        files={"file": f},
                        data={"engine": engine, "analysis": "true"},
                        timeout=60,
                    )
                assert created.status_code == 202, created.text
                run_id = created.json()["id"]
                deadline = time.monotonic() + 60
                while (run := httpx.get(f"{base}/api/runs/{run_id}", headers=headers).json())[
                    "status"
                ] not in ("succeeded", "failed"):
                    assert time.monotonic() < deadline, run
                    await asyncio.sleep(0.2)
                finished[engine] = run
        assert fakes.gemini.live_files == [] and len(fakes.gemini.uploaded) == 1
        assert len(fakes.openai.transcriptions) == 1 and len(fakes.openai.chat_requests) == 2
    for engine, run in finished.items():
        assert run["status"] == "succeeded", (engine, run["error"])
        assert run["transcript"]["segments"], engine
        assert run["analysis"]["title"] == "A talk"
    output = log.read_text()
    assert GEMINI_KEY not in output and OPENAI_KEY not in output
