"""Whatever bytes arrive at `POST /api/audio`, the answer is never a 500, and nothing is kept
for a file that was refused: random byte strings and random truncations of real recordings."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from service import tokens
from tests.server import api_server, env_with
from tests.shapes import resampled, silence, spoken, write_audio

pytestmark = pytest.mark.timeout(300)
LONGEST_MS = 60_000


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    out = tmp_path_factory.mktemp("recordings")
    speech = np.concatenate([spoken("the plan for tomorrow"), silence(0.4)])
    at48 = resampled(speech, 48_000)
    files = [
        write_audio(out / "a.wav", speech[None]),
        write_audio(out / "a.mp3", speech[None], codec="libmp3lame", bit_rate=32_000),
        write_audio(out / "a.ogg", at48[None], rate=48_000, codec="libopus"),
        write_audio(out / "a.flac", speech[None], codec="flac"),
        write_audio(out / "a.m4a", speech[None], fmt="mp4", codec="aac", bit_rate=48_000),
        write_audio(out / "a.webm", at48[None], rate=48_000, codec="libopus"),
    ]
    return [path.read_bytes() for path in files]


@pytest.fixture(scope="module")
def storage_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("property-data")


@pytest.fixture(scope="module")
def server(
    subprocess_env: dict[str, str], storage_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env = env_with(
        subprocess_env, TAPELINE_DATA_DIR=str(storage_dir), MAX_AUDIO_DURATION_MS=str(LONGEST_MS)
    )
    with api_server(env, tmp_path_factory.mktemp("logs") / "api.log", "--no-worker") as base:
        yield base


def _stored(storage_dir: Path) -> set[Path]:
    blobs = storage_dir / "blobs"
    return {p for p in blobs.rglob("*") if p.is_file()} if blobs.exists() else set()


async def test_random_bytes_and_truncations_never_give_a_500_nor_keep_a_refused_file(
    recordings: list[bytes], server: str, storage_dir: Path, db: AsyncEngine
) -> None:
    async with db.begin() as conn:
        token, _ = await tokens.create(conn, "prop")
    auth_headers = {"Authorization": f"Bearer {token}"}

    def kept() -> tuple[set[Path], list[str]]:
        listed = httpx.get(f"{server}/api/audio?limit=100", headers=auth_headers).json()
        return _stored(storage_dir), [a["id"] for a in listed["items"]]

    cut = st.builds(
        lambda data, share: data[: int(len(data) * share)],
        st.sampled_from(recordings),
        st.floats(0, 1),
    )
    noise = st.binary(max_size=8_192)
    spoiled = st.builds(
        lambda data, at, junk: data[:at] + junk + data[at + len(junk) :],
        st.sampled_from(recordings),
        st.integers(0, 4_000),
        st.binary(min_size=1, max_size=64),
    )

    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(body=st.one_of(noise, cut, spoiled), name=st.sampled_from(["a.mp3", "a.wav", "x"]))
    def upload(body: bytes, name: str) -> None:
        before = kept()
        answer = httpx.post(
            f"{server}/api/audio",
            headers=auth_headers,
            files={"file": (name, body)},
            timeout=60,
        )
        assert answer.status_code < 500, (answer.status_code, answer.text)
        if answer.status_code >= 400:
            assert answer.json()["error"]["code"], answer.text
            assert kept() == before, "a refused upload left something behind"
        else:
            assert answer.status_code == 201 and answer.json()["durationMs"] > 0

    await asyncio.to_thread(upload)


async def test_a_recording_past_max_audio_duration_is_413_too_long_and_not_kept(
    server: str, storage_dir: Path, db: AsyncEngine, tmp_path: Path
) -> None:
    async with db.begin() as conn:
        token, _ = await tokens.create(conn, "long")
    headers = {"Authorization": f"Bearer {token}"}
    long = write_audio(tmp_path / "long.flac", silence(LONGEST_MS / 1000 + 5)[None], codec="flac")
    before = _stored(storage_dir)
    answer = await asyncio.to_thread(
        httpx.post,
        f"{server}/api/audio",
        headers=headers,
        files={"file": ("long.flac", long.read_bytes())},
        timeout=60,
    )
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "too_long"
    assert "MAX_AUDIO_DURATION_MS" in answer.json()["error"]["message"]
    assert _stored(storage_dir) == before
    assert httpx.get(f"{server}/api/audio", headers=headers).json()["items"] == []
