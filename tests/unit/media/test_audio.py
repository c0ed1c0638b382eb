"""Probing and decoding real files in the formats people upload, and refusing broken ones."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from service.errors import AudioUnreadable, RecordingTooLong
from service.media.audio import decode_pcm16, media_type, probe
from tests.shapes import with_stale_frame_count
from tests.speech import speak

FORMATS = [
    ("mp3", "mp3", "libmp3lame"),
    ("flac", "flac", "flac"),
    ("ogg", "ogg", "libopus"),
    ("m4a", "mp4", "aac"),
    ("webm", "webm", "libopus"),
]
MEDIA_TYPES = {
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "m4a": "audio/mp4",
    "webm": "audio/webm",
}


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speak("testing one two three", tmp_path_factory.mktemp("audio") / "spoken.wav")


def encode(
    source: Path,
    target: Path,
    container: str,
    codec: str,
    rate: int | None = None,
    layout: str = "mono",
) -> Path:
    with av.open(str(source)) as src, av.open(str(target), "w", format=container) as dst:
        rate = rate or (48_000 if codec == "libopus" else 16_000)
        stream = dst.add_stream(codec, rate=rate, layout=layout)
        resampler = av.AudioResampler(format=stream.format, layout=layout, rate=rate)
        for frame in src.decode(audio=0):
            for out in resampler.resample(frame):
                dst.mux(stream.encode(out))
        for out in resampler.resample(None):
            dst.mux(stream.encode(out))
        dst.mux(stream.encode(None))
    return target


def test_wav_is_probed_and_decoded_to_16k_mono(spoken: Path) -> None:
    info = probe(spoken)
    assert media_type(info.container) == "audio/wav"
    assert (info.sample_rate, info.channels) == (16_000, 1)
    pcm = decode_pcm16(spoken)
    assert abs(len(pcm) / 32 - info.duration_ms) < 50


@pytest.mark.parametrize(("suffix", "container", "codec"), FORMATS)
def test_common_formats_decode_to_the_same_length(
    spoken: Path, tmp_path: Path, suffix: str, container: str, codec: str
) -> None:
    encoded = encode(spoken, tmp_path / f"clip.{suffix}", container, codec)
    info = probe(encoded)
    reference = probe(spoken).duration_ms
    assert abs(info.duration_ms - reference) < 150
    assert abs(len(decode_pcm16(encoded)) / 32 - reference) < 150
    assert media_type(info.container) == MEDIA_TYPES[suffix], "what a player is told it gets"


def test_empty_and_non_audio_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp3"
    text.write_text("meeting notes, not audio\n" * 100)
    for path in (empty, text):
        with pytest.raises(AudioUnreadable):
            probe(path)
        with pytest.raises(AudioUnreadable):
            decode_pcm16(path)


@pytest.mark.parametrize("suffix", ["wav", "mp3"])
def test_truncated_files_are_refused(spoken: Path, tmp_path: Path, suffix: str) -> None:
    whole = spoken if suffix == "wav" else encode(spoken, tmp_path / "x.mp3", "mp3", "libmp3lame")
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    probe(whole)
    with pytest.raises(AudioUnreadable):
        probe(cut)


@pytest.mark.parametrize(("suffix", "container", "codec"), [FORMATS[1], FORMATS[4]])
def test_truncated_flac_and_webm_are_refused(
    spoken: Path, tmp_path: Path, suffix: str, container: str, codec: str
) -> None:
    whole = encode(spoken, tmp_path / f"whole.{suffix}", container, codec)
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(AudioUnreadable):
        probe(cut)


def test_stereo_44k_is_mixed_down_to_16k_mono(spoken: Path, tmp_path: Path) -> None:
    stereo = encode(spoken, tmp_path / "stereo.flac", "flac", "flac", 44_100, "stereo")
    info = probe(stereo)
    assert (info.sample_rate, info.channels, info.codec) == (44_100, 2, "flac")
    pcm = decode_pcm16(stereo)
    assert abs(len(pcm) / 32 - probe(spoken).duration_ms) < 50
    assert np.abs(np.frombuffer(pcm, dtype="<i2")).max() > 1_000


def test_a_file_without_an_audio_stream_is_refused(tmp_path: Path) -> None:
    video = tmp_path / "silent-film.mp4"
    with av.open(str(video), "w") as dst:
        stream = dst.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(10):
            image = np.full((48, 64, 3), index * 20, dtype=np.uint8)
            dst.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        dst.mux(stream.encode(None))
    with pytest.raises(AudioUnreadable, match="no audio stream"):
        probe(video)
    with pytest.raises(AudioUnreadable, match="no audio stream"):
        decode_pcm16(video)


def test_a_stale_vbr_header_is_not_truncation_and_the_real_length_is_stored(
    spoken: Path, tmp_path: Path
) -> None:
    whole = encode(spoken, tmp_path / "vbr.mp3", "mp3", "libmp3lame")
    stale = with_stale_frame_count(whole, tmp_path / "stale.mp3", factor=3)
    with av.open(str(stale)) as container:
        claimed_ms = (container.duration or 0) / 1000
    real_ms = probe(whole).duration_ms
    assert claimed_ms > 2 * real_ms, "the header really claims another length"
    assert abs(probe(stale).duration_ms - real_ms) < 100  # encoder padding, trimmed or not


def test_decoding_past_the_longest_allowed_recording_stops_with_too_long(
    spoken: Path, tmp_path: Path
) -> None:
    length = probe(spoken).duration_ms
    assert probe(spoken, max_duration_ms=length + 100).duration_ms == length
    with pytest.raises(RecordingTooLong) as caught:
        probe(spoken, max_duration_ms=length // 2)
    assert caught.value.code == "too_long" and caught.value.http_status == 413
    assert "MAX_AUDIO_DURATION_MS" in caught.value.message
