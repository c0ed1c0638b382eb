"""tus on S3-compatible storage across two API processes that share no disk (a module of its
own: every API process of a module shares the test database, and one with local storage would
claim runs whose audio it cannot read)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

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


async def test_on_s3_a_player_is_sent_to_a_short_lived_url_of_the_recording(
    s3_servers: tuple[str, str], db: AsyncEngine, hello: Path
) -> None:
    """`GET /api/audio/{id}/content` on S3 storage: its owner (by header, or by `access_token`
    as an `<audio>` element asks) gets a 307 to a presigned URL that answers Range requests
    itself with the recording's type; anyone else gets the same 404 as for a missing id."""
    a, _ = s3_servers
    alice, bob = await token_for(db, "alice"), await token_for(db, "bob")
    uploader = tus_client(a, alice).uploader(file_path=str(hello))
    uploader.upload()
    audio_id = upload_state(a, alice, uploader.url)["audioId"]
    url = f"{a}/api/audio/{audio_id}/content"
    data = hello.read_bytes()
    token = alice["Authorization"].removeprefix("Bearer ")

    for answer in (httpx.get(url, headers=alice), httpx.get(f"{url}?access_token={token}")):
        assert answer.status_code == 307, answer.text
        assert answer.headers["cache-control"] == "no-store"
        presigned = answer.headers["location"]
        assert token not in presigned
        assert 0 < lifetime_s(presigned) <= 300, presigned
        part = httpx.get(presigned, headers={"Range": "bytes=4-11"})
        assert part.status_code == 206 and part.content == data[4:12]
        assert part.headers["content-range"] == f"bytes 4-11/{len(data)}"
        assert part.headers["content-type"].startswith("audio/")

    followed = httpx.get(url, headers=alice, follow_redirects=True)
    assert followed.status_code == 200 and followed.content == data
    stranger = httpx.get(url, headers=bob)
    assert stranger.status_code == 404 and "location" not in stranger.headers


def lifetime_s(presigned: str) -> float:
    """How long a presigned URL stays valid: SigV4 says it (`X-Amz-Expires`), SigV2 gives the
    moment it ends (`Expires`)."""
    query = parse_qs(urlsplit(presigned).query)
    if "X-Amz-Expires" in query:
        return float(query["X-Amz-Expires"][0])
    return float(query["Expires"][0]) - time.time()
