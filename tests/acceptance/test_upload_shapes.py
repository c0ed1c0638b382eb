"""The shapes of file people actually upload, each through `POST /api/transcribe` of a real
server: every one either transcribes (judged by word error rate against what was spoken, the
stored duration and `noSpeech`) or is refused at once with a reason.

Files are generated from flite speech; none is committed. The word error rate allowed is one
the local engine (Whisper) meets with room to spare on every shape, phone audio and hard
clipping included.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest

from tests.server import api_server, env_with, tapeline
from tests.shapes import (
    resampled,
    silence,
    spoken,
    truncated,
    video_without_audio,
    with_id3_cover,
    with_stale_frame_count,
    word_error_rate,
    write_audio,
)

pytestmark = pytest.mark.timeout(600)

FIRST = "please send me the report before friday"
SECOND = "the river flows slowly past the old bridge"
SAID = f"{FIRST} {SECOND}"
WER = 0.5
NO_MP3_HEADERS = {"id3v2_version": "0", "write_xing": "0"}


@dataclass(frozen=True)
class Shape:
    path: Path
    said: str
    duration_ms: int


def _speech() -> np.ndarray:
    return np.concatenate([silence(0.3), spoken(FIRST), silence(0.6), spoken(SECOND), silence(0.3)])


def _ms(signal: np.ndarray, rate: int = 16_000) -> int:
    return round(len(signal) * 1000 / rate)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Shape]:
    out = tmp_path_factory.mktemp("shapes")
    speech = _speech()
    at48 = resampled(speech, 48_000)
    plain_mp3 = write_audio(
        out / "plain.mp3",
        speech[None],
        codec="libmp3lame",
        bit_rate=32_000,
        container_options=NO_MP3_HEADERS,
    )
    vbr = with_stale_frame_count(
        write_audio(out / "vbr-whole.mp3", speech[None], codec="libmp3lame", options={"q": "2"}),
        out / "vbr.mp3",
    )
    one_sentence = spoken("yes")
    gap = np.concatenate([spoken(FIRST), silence(20 * 60), spoken(SECOND)])
    return {
        "silence only": Shape(write_audio(out / "silence.wav", silence(10)[None]), "", 10_000),
        "under a second of speech": Shape(
            write_audio(out / "yes.wav", one_sentence[None]), "yes", _ms(one_sentence)
        ),
        "stereo 48 kHz": Shape(
            write_audio(out / "stereo.wav", np.stack([at48, 0.5 * at48]), rate=48_000),
            SAID,
            _ms(speech),
        ),
        "8 kHz phone audio": Shape(
            write_audio(
                out / "phone.wav", resampled(speech, 8_000)[None], rate=8_000, codec="pcm_mulaw"
            ),
            SAID,
            _ms(speech),
        ),
        "clipped": Shape(
            write_audio(out / "clipped.wav", np.clip(speech * 8, -1, 1)[None]),
            SAID,
            _ms(speech),
        ),
        "very quiet": Shape(
            write_audio(out / "quiet.wav", (speech * 0.03)[None]), SAID, _ms(speech)
        ),
        "mp3 with an ID3 cover image": Shape(
            with_id3_cover(plain_mp3, out / "cover.mp3"), SAID, _ms(speech)
        ),
        "mp4 video": Shape(
            write_audio(
                out / "video.mp4", speech[None], codec="aac", bit_rate=64_000, video="libx264"
            ),
            SAID,
            _ms(speech),
        ),
        "webm video": Shape(
            write_audio(
                out / "video.webm", at48[None], rate=48_000, codec="libopus", video="libvpx"
            ),
            SAID,
            _ms(speech),
        ),
        "an ogg named .mp3": Shape(
            write_audio(out / "lying.mp3", at48[None], rate=48_000, fmt="ogg", codec="libopus"),
            SAID,
            _ms(speech),
        ),
        "variable bit rate mp3 with wrong duration headers": Shape(vbr, SAID, _ms(speech)),
        "a truncated mp3 stream (no declared length)": Shape(
            truncated(plain_mp3, out / "cut.mp3", keep=0.55), FIRST, _ms(speech) * 55 // 100
        ),
        "20 minutes of silence between two sentences": Shape(
            write_audio(out / "gap.flac", gap[None], codec="flac"), SAID, _ms(gap)
        ),
    }


@pytest.fixture(scope="module")
def server(
    subprocess_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env = env_with(subprocess_env, TRANSCRIBE_SYNC_MAX_DURATION_MS="1500000", JOB_LEASE_MS="30000")
    with api_server(env, tmp_path_factory.mktemp("logs") / "api.log") as base:
        yield base


@pytest.fixture(scope="module")
def headers(subprocess_env: dict[str, str]) -> dict[str, str]:
    token = subprocess.run(
        tapeline("token", "create", "shapes"),
        env=subprocess_env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return {"Authorization": f"Bearer {token}"}


def _post(base: str, headers: dict[str, str], path: Path, route: str) -> httpx.Response:
    with path.open("rb") as f:
        return httpx.post(
            f"{base}{route}", headers=headers, files={"file": (path.name, f)}, timeout=300
        )


@pytest.mark.parametrize(
    "name",
    [
        "silence only",
        "under a second of speech",
        "stereo 48 kHz",
        "8 kHz phone audio",
        "clipped",
        "very quiet",
        "mp3 with an ID3 cover image",
        "mp4 video",
        "webm video",
        "an ogg named .mp3",
        "variable bit rate mp3 with wrong duration headers",
        "a truncated mp3 stream (no declared length)",
        pytest.param("20 minutes of silence between two sentences", marks=pytest.mark.slow),
    ],
)
def test_each_shape_transcribes_with_its_real_duration(
    name: str, shapes: dict[str, Shape], server: str, headers: dict[str, str]
) -> None:
    shape = shapes[name]
    assert shape.path.stat().st_size < 4 * 1024**2
    answer = _post(server, headers, shape.path, "/api/transcribe")
    assert answer.status_code == 200, answer.text
    run: dict[str, Any] = answer.json()
    assert run["status"] == "succeeded", run
    audio = httpx.get(f"{server}/api/audio/{run['audioId']}", headers=headers).json()
    assert abs(audio["durationMs"] - shape.duration_ms) <= 150, (audio, shape.duration_ms)
    text = run["transcript"]["text"]
    assert run["noSpeech"] is (not shape.said), run
    if shape.said:
        wer = word_error_rate(shape.said, text)
        assert wer <= WER, f"WER {wer:.2f} for {text!r}"
    else:
        assert text == "" and run["transcript"]["segments"] == []


def test_the_vbr_headers_really_are_wrong(shapes: dict[str, Shape]) -> None:
    """What the fixture is for: FFmpeg's own idea of the length is not the real one."""
    shape = shapes["variable bit rate mp3 with wrong duration headers"]
    with av.open(str(shape.path)) as container:
        header_ms = (container.duration or 0) / 1000
    assert header_ms > 2 * shape.duration_ms, (header_ms, shape.duration_ms)


@pytest.mark.parametrize("kind", ["video without audio", "truncated wav", "truncated mp4"])
def test_unreadable_shapes_are_refused_at_upload_and_nothing_is_kept(
    kind: str,
    shapes: dict[str, Shape],
    server: str,
    headers: dict[str, str],
    tmp_path: Path,
) -> None:
    if kind == "video without audio":
        path = video_without_audio(tmp_path / "screen.mp4")
    elif kind == "truncated wav":
        path = truncated(shapes["stereo 48 kHz"].path, tmp_path / "cut.wav")
    else:
        path = truncated(shapes["mp4 video"].path, tmp_path / "cut.mp4", keep=0.6)
    before = httpx.get(f"{server}/api/audio", headers=headers).json()["items"]
    answer = _post(server, headers, path, "/api/audio")
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "audio_unreadable"
    assert httpx.get(f"{server}/api/audio", headers=headers).json()["items"] == before
