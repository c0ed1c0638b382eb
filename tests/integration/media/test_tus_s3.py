"""tus on S3-compatible storage across two API processes that share no disk (a module of its
own: every API process of a module shares the test database, and one with local storage would
claim runs whose audio it cannot read)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from tusclient.uploader import Uploader

from tests.integration.media.test_tus import (
    TUS,
    sha256_of,
    token_for,
    tus_client,
    upload_state,
    wait_for_run,
)
from tests.s3 import S3Endpoint
from tests.server import api_server, env_with
from tests.speech import long_recording, speak


@pytest.fixture(scope="module")
def hello(speech_dir: Path) -> Path:
    return speak("hello world", speech_dir / "tus-s3-hello.wav")


@pytest.fixture(scope="module")
def s3_servers(
    subprocess_env: dict[str, str],
    s3_endpoint: S3Endpoint,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, str]]:
    """Two API processes that share nothing but Postgres and one bucket, each with its own
    data dir, like two machines."""
    bucket = s3_endpoint.new_bucket()
    logs = tmp_path_factory.mktemp("s3logs")
    bases = []
    envs = [
        env_with(
            subprocess_env,
            TAPELINE_DATA_DIR=str(tmp_path_factory.mktemp(f"machine{i}")),
            TRANSCRIBE_SYNC_MAX_DURATION_MS="0",
            **s3_endpoint.env(bucket),
        )
        for i in (1, 2)
    ]
    with api_server(envs[0], logs / "a.log") as a, api_server(envs[1], logs / "b.log") as b:
        bases.extend([a, b])
        yield a, b


async def test_on_s3_one_machine_starts_another_finishes_and_the_run_reads_from_s3(
    s3_servers: tuple[str, str], db: AsyncEngine, speech_dir: Path, hello: Path
) -> None:
    """Ten megabytes (S3 multipart parts and a tail object), half sent to one process, the rest
    to the other; then a short clip transcribed by whichever worker claims it."""
    a, b = s3_servers
    alice = await token_for(db, "alice")
    big, _ = long_recording(speech_dir / "tus-5min.wav", minutes=5.2)
    first = tus_client(a, alice).uploader(file_path=str(big), chunk_size=3 * 1024 * 1024)
    first.upload(stop_at=big.stat().st_size // 2)
    location = first.url
    second = Uploader(file_path=str(big), url=location, client=tus_client(b, alice))
    assert second.offset == first.offset > 0
    second.upload()
    state = upload_state(b, alice, location)
    audio = httpx.get(f"{a}/api/audio/{state['audioId']}", headers=alice).json()
    assert audio["sha256"] == sha256_of(big) and audio["sizeBytes"] == big.stat().st_size

    clip = tus_client(a, alice).uploader(file_path=str(hello), metadata={"autoTranscribe": "1"})
    clip.upload()
    run_id = httpx.head(clip.url, headers={**TUS, **alice}).headers["Tapeline-Run-Id"]
    run = await wait_for_run(b, alice, run_id)
    assert run["status"] == "succeeded" and "hello" in run["transcript"]["text"].lower()
