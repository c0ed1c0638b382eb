"""What an operator sees of the Procfile's processes: JSON logs with job fields and no tokens,
and a separate worker's metrics on METRICS_PORT."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.server import api_server, env_with, free_port, process, tapeline
from tests.speech import speak


def json_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def worker_samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_json_logs_and_worker_metrics(
    subprocess_env: dict[str, str], speech_dir: Path, tmp_path: Path
) -> None:
    metrics_port = free_port()
    env = env_with(subprocess_env, LOG_FORMAT="json", TRANSCRIBE_SYNC_MAX_DURATION_MS="1000")
    token = subprocess.run(
        tapeline("token", "create", "erin"), env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    clip = speak("please send me the report before friday", speech_dir / "report.wav")
    web_log, worker_log = tmp_path / "web.log", tmp_path / "worker.log"
    with (
        api_server(env, web_log, "--no-worker", "--no-migrate") as base,
        process(
            tapeline("worker", "--no-migrate"),
            env_with(env, METRICS_PORT=str(metrics_port)),
            worker_log,
        ),
    ):
        with clip.open("rb") as f:
            created = httpx.post(
                f"{base}/api/transcribe",
                headers={"Authorization": f"Bearer {token}"},
                files={"file": f},
                timeout=60,
            )
        assert created.status_code == 202, created.text
        run_id = created.json()["id"]
        deadline = time.monotonic() + 120
        auth = {"Authorization": f"Bearer {token}"}
        while (progress := httpx.get(f"{base}/api/runs/{run_id}/progress", headers=auth).json())[
            "status"
        ] != "succeeded":
            assert progress["status"] in ("queued", "processing"), progress
            assert time.monotonic() < deadline, progress
            time.sleep(0.2)
        # A browser's EventSource sends its token in the URL: the access log must not keep it.
        streamed = httpx.get(
            f"{base}/api/runs/{run_id}/events", params={"access_token": token}, timeout=30
        )
        assert streamed.status_code == 200 and '"done"' in streamed.text
        samples = worker_samples(metrics_port)

    succeeded = (("engine", "local"), ("outcome", "succeeded"))
    assert samples[("tapeline_jobs_finished_total", succeeded)] == 1
    assert samples[("tapeline_job_duration_seconds_count", succeeded)] == 1
    assert not any(name == "tapeline_sse_connections" for name, _ in samples)

    web, worker = json_lines(web_log), json_lines(worker_log)
    for line in web + worker:
        assert {"time", "level", "logger", "message"} <= set(line)
    assert token not in web_log.read_text() + worker_log.read_text()
    polled = [
        line
        for line in web
        if line["logger"] == "uvicorn.access" and "access_token" in str(line["path"])
    ]
    assert polled and all(line["path"].endswith("?access_token=[redacted]") for line in polled)
    finished = [
        line
        for line in worker
        if line.get("run_id") == run_id and "succeeded after" in str(line["message"])
    ]
    assert len(finished) == 1, worker
    assert isinstance(finished[0]["job_id"], int) and finished[0]["engine"] == "local"


def test_serve_with_two_processes_shares_one_port_and_stops_on_sigterm(
    subprocess_env: dict[str, str], speech_dir: Path, tmp_path: Path
) -> None:
    env = env_with(subprocess_env, TRANSCRIBE_SYNC_MAX_DURATION_MS="0")
    token = subprocess.run(
        tapeline("token", "create", "fran"), env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    clip = speak("two processes answer on one port", speech_dir / "two-processes.wav")
    log = tmp_path / "serve.log"
    admin = {"Authorization": "Bearer admin-secret-for-tests-0123456789abcdef"}
    with api_server(env, log, "--processes", "2", "--no-migrate") as base:
        pids: set[int] = set()
        deadline = time.monotonic() + 30
        while len(pids) < 2:
            assert time.monotonic() < deadline, f"only {pids} answered"
            state = httpx.get(f"{base}/api/admin/worker", headers=admin).json()
            pids.add(state["process"]["pid"])
            assert state["streams"]["listening"] and state["worker"]["state"] == "running"
        created = httpx.post(
            f"{base}/api/transcribe",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": clip.read_bytes()},
            timeout=60,
        )
        assert created.status_code == 202, created.text
        run_id = created.json()["id"]
        with httpx.stream(
            "GET",
            f"{base}/api/runs/{run_id}/events",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        ) as stream:
            events = [
                json.loads(line[len("data: ") :])["event"]
                for line in stream.iter_lines()
                if line.startswith("data: ")
            ]
        assert events[0] == "init" and events[-1] == "done", events
    output = log.read_text()
    assert "Stopping parent process" in output, output[-2000:]
    assert output.count("Application shutdown complete") == 2, output[-2000:]
