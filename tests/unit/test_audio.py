"""Probing and decoding real files in the formats people upload, and refusing broken ones."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from service.audio import decode_pcm16, probe
from service.errors import AudioUnreadable
from tests.speech import speak

FORMATS = [
    ("mp3", "mp3", "libmp3lame"),
    ("flac", "flac", "flac"),
    ("ogg", "ogg", "libopus"),
    ("m4a", "mp4", "aac"),
    ("webm", "webm", "libopus"),
]


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speak("testing one two three", tmp_path_factory.mktemp("audio") / "spoken.wav")


def encode(source: Path, target: Path, container: str, codec: str) -> Path:
    with av.open(str(source)) as src, av.open(str(target), "w", format=container) as dst:
        rate = 48_000 if codec == "libopus" else 16_000
        stream = dst.add_stream(codec, rate=rate)
        resampler = av.AudioResampler(format=stream.format, layout="mono", rate=rate)
        for frame in src.decode(audio=0):
            for out in resampler.resample(frame):
                dst.mux(stream.encode(out))
        for out in resampler.resample(None):
            dst.mux(stream.encode(out))
        dst.mux(stream.encode(None))
    return target


def test_wav_is_probed_and_decoded_to_16k_mono(spoken: Path) -> None:
    info = probe(spoken)
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
