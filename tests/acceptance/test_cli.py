"""The client commands against a real `tapeline serve`: what a user types in a terminal."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server import api_server, env_with, free_port, process, tapeline
from tests.speech import long_recording, speak
from tests.wer import normalized

SENTENCE = "the quick brown fox jumps over the lazy dog near the river bank"


def cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tapeline(*args), env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def client_env(
    subprocess_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """A server that queues anything over a second, and the environment its users have."""
    env = env_with(subprocess_env, TRANSCRIBE_SYNC_MAX_DURATION_MS="1000")
    token = cli(env, "token", "create", "dora").stdout.strip()
    log = tmp_path_factory.mktemp("cli") / "serve.log"
    with api_server(env, log) as base:
        yield env_with(env, TAPELINE_URL=base, TAPELINE_TOKEN=token, COLUMNS="200")


@pytest.fixture(scope="module")
def sentence(speech_dir: Path) -> Path:
    return speak(SENTENCE, speech_dir / "cli-fox.wav")


def test_transcribe_follow_prints_the_transcript(client_env: dict[str, str], sentence: Path):
    done = cli(client_env, "transcribe", "--follow", str(sentence))
    assert done.returncode == 0, done.stderr
    assert {"quick", "brown", "fox", "lazy", "dog"} <= set(normalized(done.stdout).split()), (
        done.stdout
    )
    assert "100%" in done.stderr
    partial_lines = re.findall(r"^\[00:00:\d\d\.\d{3}\] .+$", done.stderr, re.M)
    assert partial_lines, f"the text so far was shown as it came: {done.stderr}"
    assert {"quick", "fox"} <= set(normalized(" ".join(partial_lines)).split())


def test_transcribe_follow_writes_subtitles_to_a_file(
    client_env: dict[str, str], sentence: Path, tmp_path: Path
):
    target = tmp_path / "fox.srt"
    done = cli(
        client_env, "transcribe", "--follow", "--format", "srt", "-o", str(target), str(sentence)
    )
    assert done.returncode == 0, done.stderr
    subtitles = target.read_text()
    assert subtitles.startswith("1\n") and " --> " in subtitles and "fox" in subtitles
    assert done.stdout == ""


def test_without_follow_prints_run_ids(client_env: dict[str, str], sentence: Path):
    started = cli(client_env, "transcribe", str(sentence), str(sentence))
    assert started.returncode == 0, started.stderr
    run_ids = started.stdout.split()
    assert len(run_ids) == 2 and len(set(run_ids)) == 2
    listed = cli(client_env, "runs")
    assert listed.returncode == 0, listed.stderr
    assert all(run_id in listed.stdout for run_id in run_ids), listed.stdout


def test_runs_search_prints_the_moments_a_word_is_spoken(
    client_env: dict[str, str], sentence: Path
):
    done = cli(client_env, "transcribe", "--follow", str(sentence))
    assert done.returncode == 0, done.stderr
    found = cli(client_env, "runs", "--search", "fox")
    assert found.returncode == 0, found.stderr
    assert "cli-fox.wav" in found.stdout
    assert re.search(r"^  \[00:00:\d\d\.\d{3}\] .*\bfox\b", found.stdout, re.M), found.stdout
    missing = cli(client_env, "runs", "--search", "xylophone")
    assert missing.returncode == 1 and "xylophone" in missing.stderr


def test_an_unreadable_file_exits_non_zero_with_the_message(
    client_env: dict[str, str], tmp_path: Path
):
    junk = tmp_path / "notes.mp3"
    junk.write_bytes(b"these are meeting notes, not a recording" * 50)
    failed = cli(client_env, "transcribe", "--follow", str(junk))
    assert failed.returncode == 1
    assert "audio_unreadable" in failed.stderr and "could not be read as audio" in failed.stderr


def test_a_cancelled_run_ends_follow_with_its_error_and_can_be_retried(
    client_env: dict[str, str], tmp_path: Path
):
    # Long enough to be still transcribing after two CLI commands have started (it is cancelled).
    recording, _ = long_recording(tmp_path / "talk.wav", minutes=3)
    headers = {"Authorization": f"Bearer {client_env['TAPELINE_TOKEN']}"}
    base = client_env["TAPELINE_URL"]
    follower = subprocess.Popen(
        tapeline("transcribe", "--follow", str(recording)),
        env=client_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            active = httpx.get(
                f"{base}/api/runs", params={"status": "processing"}, headers=headers
            ).json()["items"]
            if active:
                break
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.1)
        run_id = active[0]["id"]
        listed = cli(client_env, "runs", "--status", "processing")
        assert run_id in listed.stdout, listed.stdout
        cancelled = cli(client_env, "cancel", run_id)
        assert cancelled.returncode == 0, cancelled.stderr
        assert cancelled.stdout.split() == [run_id, "cancelled"]
        _, stderr = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 1
    assert "cancelled: The run was cancelled." in stderr
    again = cli(client_env, "cancel", run_id)
    assert again.returncode == 1 and "conflict" in again.stderr
    retried = cli(client_env, "retry", run_id)
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.split() == [run_id, "queued"]
    cli(client_env, "cancel", run_id)


def test_a_bad_token_is_reported(client_env: dict[str, str]):
    denied = cli(env_with(client_env, TAPELINE_TOKEN="tl_not_a_token"), "runs")
    assert denied.returncode == 1 and "unauthorized" in denied.stderr


def wait_healthy(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, "the server exited"
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)


def test_follow_survives_an_api_restart(
    subprocess_env: dict[str, str], speech_dir: Path, tmp_path: Path
):
    """The API process restarts mid-run (a deploy): the client reconnects with Last-Event-ID
    to the new process and still ends with the transcript."""
    env = env_with(subprocess_env, TRANSCRIBE_SYNC_MAX_DURATION_MS="1000")
    token = cli(env, "token", "create", "fred").stdout.strip()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = tapeline("serve", "--port", str(port), "--no-worker", "--no-migrate")
    recording, _ = long_recording(speech_dir / "restart.wav", minutes=0.4)
    user_env = env_with(env, TAPELINE_URL=base, TAPELINE_TOKEN=token)
    headers = {"Authorization": f"Bearer {token}"}
    with process(tapeline("worker", "--no-migrate"), env, tmp_path / "worker.log"):
        with process(serve, env, tmp_path / "web1.log") as web:
            wait_healthy(base, web)
            follower = subprocess.Popen(
                tapeline("transcribe", "--follow", str(recording)),
                env=user_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            deadline = time.monotonic() + 60
            while not httpx.get(
                f"{base}/api/runs", params={"status": "processing"}, headers=headers
            ).json()["items"]:
                assert time.monotonic() < deadline, "the run never started"
                time.sleep(0.1)
        try:
            with process(serve, env, tmp_path / "web2.log") as web:
                wait_healthy(base, web)
                stdout, stderr = follower.communicate(timeout=180)
        finally:
            if follower.poll() is None:
                follower.kill()
    assert follower.returncode == 0, stderr
    assert {"weather", "umbrella"} & set(normalized(stdout).split()), stdout
