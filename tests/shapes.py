"""The shapes of file people actually upload, generated from flite speech (nothing committed).

Each builder writes one file and returns it with what is spoken in it, so a test can judge a
transcript by word error rate against the spoken text rather than by exact words, which differ
from one recogniser to the next.
"""

from __future__ import annotations

import re
import struct
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import jiwer
import numpy as np
import numpy.typing as npt

from tests.speech import SAMPLE_RATE, _frames_of

Signal = npt.NDArray[np.float32]
"""Mono float32 samples in -1..1 at `SAMPLE_RATE`."""


def spoken(text: str) -> Signal:
    """`text` spoken by flite, as float samples."""
    pcm = np.frombuffer(_frames_of(text), dtype="<i2")
    return (pcm.astype(np.float32) / 32768.0).astype(np.float32)


def silence(seconds: float) -> Signal:
    return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)


def word_error_rate(said: str, heard: str) -> float:
    """WER of `heard` against `said`, case and punctuation ignored (Whisper writes both)."""

    def words(text: str) -> str:
        return " ".join(re.findall(r"[a-z0-9']+", text.lower()))

    reference = words(said)
    return float(jiwer.wer(reference, words(heard) or "<nothing>")) if reference else 0.0


def write_audio(
    path: Path,
    channels: npt.NDArray[np.float32],
    *,
    rate: int = SAMPLE_RATE,
    fmt: str | None = None,
    codec: str = "pcm_s16le",
    bit_rate: int | None = None,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    video: str | None = None,
) -> Path:
    """Encode (channels, samples) float audio at `rate` into `path`; with `video`, a small
    moving picture of that codec goes alongside, as in a screen or phone recording."""
    channels = np.atleast_2d(channels)
    layout = "mono" if channels.shape[0] == 1 else "stereo"
    with av.open(str(path), "w", format=fmt, options=container_options or {}) as container:
        picture = None
        if video is not None:
            picture = container.add_stream(video, rate=5)
            picture.width, picture.height, picture.pix_fmt = 160, 120, "yuv420p"
        stream = container.add_stream(codec, rate=rate, layout=layout, options=options or {})
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        samples = np.ascontiguousarray(channels, dtype=np.float32)
        frame_size = stream.codec_context.frame_size or 1024
        for start in range(0, samples.shape[1], frame_size):
            block = np.ascontiguousarray(samples[:, start : start + frame_size])
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if picture is not None:
            _film(container, picture, samples.shape[1] / rate)
    return path


def _film(container: Any, picture: Any, seconds: float) -> None:
    """Five frames a second of a slowly brightening picture, muxed into `container`."""
    for index in range(int(seconds * 5)):
        image = np.full((120, 160, 3), (index * 7) % 255, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = index
        for packet in picture.encode(frame):
            container.mux(packet)
    for packet in picture.encode(None):
        container.mux(packet)


def resampled(signal: Signal, rate: int) -> Signal:
    """`signal` at another sample rate (linear interpolation: enough for tests)."""
    count = int(len(signal) * rate / SAMPLE_RATE)
    positions = np.linspace(0, len(signal) - 1, count)
    return np.interp(positions, np.arange(len(signal)), signal).astype(np.float32)


def video_without_audio(path: Path, seconds: float = 2.0) -> Path:
    with av.open(str(path), "w") as container:
        picture = container.add_stream("mpeg4", rate=5)
        picture.width, picture.height, picture.pix_fmt = 160, 120, "yuv420p"
        _film(container, picture, seconds)
    return path


def with_id3_cover(mp3: Path, path: Path, size: int = 160) -> Path:
    """`mp3` behind an ID3v2.3 tag holding a title and a PNG cover of `size`² noise pixels."""
    pixels = np.random.default_rng(3).integers(0, 256, (size, size * 3), dtype=np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    apic = b"\x00image/png\x00\x03cover\x00" + png
    title = b"\x00Quarterly review"

    def frame(kind: bytes, data: bytes) -> bytes:
        return kind + struct.pack(">I", len(data)) + b"\x00\x00" + data

    frames = frame(b"TIT2", title) + frame(b"APIC", apic)
    size_bytes = len(frames)
    synchsafe = bytes((size_bytes >> shift) & 0x7F for shift in (21, 14, 7, 0))
    path.write_bytes(b"ID3\x03\x00\x00" + synchsafe + frames + mp3.read_bytes())
    return path


def truncated(source: Path, path: Path, keep: float = 0.5) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def with_stale_frame_count(mp3: Path, path: Path, factor: int = 3) -> Path:
    """`mp3` (which must carry a Xing/Info header) with the header's frame count multiplied by
    `factor`, as an editor that joined or trimmed the file and never updated it leaves it: the
    header then claims a length the file does not have."""
    data = bytearray(mp3.read_bytes())
    for tag in (b"Xing", b"Info"):
        at = data.find(tag, 0, 4096)
        if at >= 0:
            flags = int.from_bytes(data[at + 4 : at + 8], "big")
            assert flags & 0x1, "the header records no frame count"
            frames = int.from_bytes(data[at + 8 : at + 12], "big")
            data[at + 8 : at + 12] = (frames * factor).to_bytes(4, "big")
            path.write_bytes(bytes(data))
            return path
    raise ValueError(f"{mp3} has no Xing/Info header")
