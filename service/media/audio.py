"""Reading uploaded audio: check that it is whole and decodable, and turn it into 16 kHz PCM.

Everything here is synchronous and CPU-bound; callers run it off the event loop. Any failure to
read the file as audio becomes `AudioUnreadable`, so a bad upload fails with a clear code instead
of surfacing later as an engine error.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.audio.stream
import numpy as np
import numpy.typing as npt

from service.errors import AudioUnreadable, RecordingTooLong

# Decoded audio shorter than this share of the declared length, and by more than the slack, is
# a truncated upload; the slack absorbs encoder priming and padding on very short files.
_TRUNCATION_RATIO = 0.95
_TRUNCATION_SLACK_S = 0.2

_MP3_VBR_TAGS = (b"Xing", b"Info", b"VBRI")
_MP3_TAG_SEARCH_BYTES = 4096
_WAV_UNKNOWN_SIZES = (0, 0xFFFFFFFF)


@dataclass(frozen=True)
class AudioInfo:
    """What `probe` learned about a file. `codec` and `container` use FFmpeg's names."""

    duration_ms: int
    sample_rate: int
    channels: int
    codec: str
    container: str


def probe(path: Path, max_duration_ms: int | None = None) -> AudioInfo:
    """Decode the whole audio stream of `path` and describe it, or raise `AudioUnreadable`.

    Headers alone are not trusted: a file can claim an hour and hold a minute, and a
    variable-bit-rate MP3 without a Xing header claims whatever its first frame suggests. The
    duration reported is what actually decodes, counted frame by frame without keeping any
    PCM, so probing ten hours costs no more memory than probing one minute. A file that
    decodes clearly shorter than its header declares is rejected as truncated rather than
    transcribed in part; decoding stops with `RecordingTooLong` as soon as it passes
    `max_duration_ms`.
    """
    if path.stat().st_size == 0:
        raise AudioUnreadable("The file is empty.")
    with _open(path) as container:
        stream = _audio_stream(container)
        codec_context = stream.codec_context
        sample_rate = int(codec_context.sample_rate)
        channels = int(codec_context.layout.nb_channels)
        decoded_s = 0.0
        limit_s = None if max_duration_ms is None else max_duration_ms / 1000
        for frame in _decode(container, stream):
            decoded_s += frame.samples / (frame.sample_rate or sample_rate)
            if limit_s is not None and decoded_s > limit_s:
                raise RecordingTooLong(
                    f"The recording is longer than this server accepts "
                    f"({_hours(max_duration_ms or 0)}, MAX_AUDIO_DURATION_MS).",
                )
        if decoded_s <= 0:
            raise AudioUnreadable("The file contains no decodable audio.")
        declared_s = _declared_seconds(path, container, stream)
        if declared_s is not None and _is_truncated(decoded_s, declared_s):
            raise AudioUnreadable(
                f"The file is truncated: it declares {declared_s:.1f} s of audio "
                f"but only {decoded_s:.1f} s could be decoded.",
            )
        return AudioInfo(
            duration_ms=round(decoded_s * 1000),
            sample_rate=sample_rate,
            channels=channels,
            codec=codec_context.codec.canonical_name,
            container=container.format.name,
        )


_MEDIA_TYPES = {
    "wav": "audio/wav",
    "w64": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "mov,mp4,m4a,3gp,3g2,mj2": "audio/mp4",
    "matroska,webm": "audio/webm",
    "aac": "audio/aac",
    "amr": "audio/amr",
    "aiff": "audio/aiff",
}


def media_type(container: str) -> str | None:
    """The MIME type for an FFmpeg container name (`probe`'s `container`), None if unknown."""
    return _MEDIA_TYPES.get(container)


def is_playable(content_type: str | None) -> bool:
    """Whether a MIME type tells a player it gets sound (audio/*, or video/* with a sound track)."""
    return bool(content_type) and str(content_type).split("/")[0] in ("audio", "video")


def decode_pcm16(path: Path, sample_rate: int = 16000) -> bytes:
    """Decode `path` to mono signed 16-bit little-endian PCM at `sample_rate`.

    This is the one shape every engine and the chunker work with, whatever was uploaded.
    """
    pcm = b"".join(block.tobytes() for block in stream_pcm16(path, sample_rate))
    if not pcm:
        raise AudioUnreadable("The file contains no decodable audio.")
    return pcm


def stream_pcm16(path: Path, sample_rate: int = 16000) -> Iterator[npt.NDArray[np.int16]]:
    """`decode_pcm16` a decoded frame at a time, so hours of audio never sit in memory whole."""
    if path.stat().st_size == 0:
        raise AudioUnreadable("The file is empty.")
    with _open(path) as container:
        stream = _audio_stream(container)
        resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
        try:
            for frame in _decode(container, stream):
                frame.pts = None
                for out in resampler.resample(frame):
                    yield _samples(out)
            for out in resampler.resample(None):
                yield _samples(out)
        except (av.FFmpegError, ValueError) as exc:
            raise AudioUnreadable(f"The audio could not be resampled: {exc}") from exc


def _hours(ms: int) -> str:
    hours = ms / 3_600_000
    return f"{hours:g} h" if hours >= 1 else f"{ms / 60_000:g} min"


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r", metadata_errors="replace")
    except av.FFmpegError as exc:
        raise AudioUnreadable() from exc


def _audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream:
    if not container.streams.audio:
        raise AudioUnreadable("The file has no audio stream.")
    return container.streams.audio[0]


def _decode(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream
) -> Iterator[av.AudioFrame]:
    try:
        yield from container.decode(stream)
    except av.FFmpegError as exc:
        raise AudioUnreadable(
            f"The audio could not be decoded; the file is damaged or truncated ({exc.strerror})."
        ) from exc


def _samples(frame: av.AudioFrame) -> npt.NDArray[np.int16]:
    samples: npt.NDArray[np.int16] = frame.to_ndarray().reshape(-1).astype("<i2", copy=False)
    return samples


def _is_truncated(decoded_s: float, declared_s: float) -> bool:
    shortfall = declared_s - decoded_s
    return decoded_s < declared_s * _TRUNCATION_RATIO and shortfall > _TRUNCATION_SLACK_S


def _declared_seconds(
    path: Path, container: av.container.InputContainer, stream: av.audio.stream.AudioStream
) -> float | None:
    """The duration the file's own header promises, or None when it promises nothing.

    Only headers that record the length independently of the data are used. FFmpeg otherwise
    guesses a length from the bitrate and file size, which is wrong for variable-bitrate audio
    and would reject good files; and it clamps a WAV's declared size to what is on disk, so
    WAV headers are read here directly.
    """
    fmt = container.format.name
    if fmt == "wav":
        return _wav_declared_seconds(path)
    from_stream_header = fmt == "flac" or fmt.startswith("mov,mp4")
    if fmt == "mp3":
        from_stream_header = _has_mp3_vbr_tag(path)
    if from_stream_header and stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if fmt.startswith("matroska") and container.duration is not None:
        return float(container.duration / av.time_base)
    return None


def _wav_declared_seconds(path: Path) -> float | None:
    with path.open("rb") as file:
        riff = file.read(12)
        if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
            return None
        byte_rate = 0
        while header := file.read(8):
            if len(header) < 8:
                return None
            chunk_id, size = header[:4], struct.unpack("<I", header[4:])[0]
            if chunk_id == b"fmt ":
                fmt_chunk = file.read(size + size % 2)
                if len(fmt_chunk) < 12:
                    return None
                byte_rate = struct.unpack("<I", fmt_chunk[8:12])[0]
            elif chunk_id == b"data":
                if byte_rate == 0 or size in _WAV_UNKNOWN_SIZES:
                    return None
                return float(size / byte_rate)
            else:
                file.seek(size + size % 2, 1)
    return None


def _has_mp3_vbr_tag(path: Path) -> bool:
    """Whether the first MP3 frame carries a Xing/Info/VBRI header whose length can be held
    against the file: the file is shorter than the bytes the header counts (truncated).

    A header on a file that has all its bytes is not trusted for the length at all: editors
    that join or trim MP3s often leave the frame count stale, and the length stored is then
    what decodes.
    """
    with path.open("rb") as file:
        start = 0
        head = file.read(10)
        if head[:3] == b"ID3" and len(head) == 10:
            size = 0
            for byte in head[6:10]:
                size = (size << 7) | (byte & 0x7F)
            start = 10 + size + (10 if head[5] & 0x10 else 0)
        file.seek(start)
        first_frame = file.read(_MP3_TAG_SEARCH_BYTES)
    audio_bytes = path.stat().st_size - start
    for tag in _MP3_VBR_TAGS:
        at = first_frame.find(tag)
        if at < 0:
            continue
        declared = _mp3_tag_bytes(first_frame, at, tag)
        return declared is None or audio_bytes < declared
    return False


def _mp3_tag_bytes(frame: bytes, at: int, tag: bytes) -> int | None:
    """The byte count a Xing/Info or VBRI header records, if it records one."""
    if tag == b"VBRI":
        field = frame[at + 10 : at + 14]
    else:
        flags = int.from_bytes(frame[at + 4 : at + 8], "big")
        if not flags & 0x2:
            return None
        offset = at + 8 + (4 if flags & 0x1 else 0)
        field = frame[offset : offset + 4]
    return int.from_bytes(field, "big") if len(field) == 4 else None


@dataclass(frozen=True)
class Window:
    """A stretch of decoded audio: 16 kHz-style mono float32 samples starting at `start_ms`."""

    start_ms: int
    samples: np.ndarray

    @property
    def end_ms(self) -> int:
        return self.start_ms + len(self.samples) * 1000 // WINDOW_SAMPLE_RATE


WINDOW_SAMPLE_RATE = 16_000
_PAUSE_FRAME_MS = 100


def decode_windows(
    path: Path, first_ms: int, window_ms: int, search_ms: int = 10_000
) -> Iterator[Window]:
    """Decode `path` as a stream of mono float32 windows at 16 kHz, never holding more than
    about one window of samples, so a 10-hour recording costs no more memory than a short one.

    The first window is `first_ms` long so a recogniser can show the first words within
    seconds; the others are `window_ms`. Each window ends at the quietest moment near its
    target length (within `search_ms`, at most a quarter of the window), so a cut rarely falls
    inside a word; the remainder starts the next window.
    """
    if path.stat().st_size == 0:
        raise AudioUnreadable("The file is empty.")
    per_ms = WINDOW_SAMPLE_RATE // 1000
    with _open(path) as container:
        stream = _audio_stream(container)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=WINDOW_SAMPLE_RATE)
        pending: list[np.ndarray] = []
        pending_samples = 0
        start_ms = 0
        target_ms = first_ms

        def frames() -> Iterator[np.ndarray]:
            try:
                for frame in _decode(container, stream):
                    frame.pts = None
                    for out in resampler.resample(frame):
                        yield out.to_ndarray().reshape(-1)
                for out in resampler.resample(None):
                    yield out.to_ndarray().reshape(-1)
            except (av.FFmpegError, ValueError) as exc:
                raise AudioUnreadable(f"The audio could not be resampled: {exc}") from exc

        for samples in frames():
            pending.append(samples.astype(np.float32, copy=False))
            pending_samples += len(samples)
            search = min(search_ms, target_ms // 4) * per_ms
            if pending_samples < target_ms * per_ms + search // 2:
                continue
            buffered = np.concatenate(pending)
            cut = _quiet_cut(buffered, target_ms * per_ms, search)
            yield Window(start_ms, buffered[:cut].copy())
            start_ms += cut // per_ms
            rest = buffered[cut:]
            pending, pending_samples = [rest], len(rest)
            target_ms = window_ms
        if pending_samples:
            yield Window(start_ms, np.concatenate(pending))
        elif start_ms == 0:
            raise AudioUnreadable("The file contains no decodable audio.")


def _quiet_cut(samples: np.ndarray, target: int, search: int) -> int:
    """The sample index near `target` (within `search` before it or half of it after) where the
    100 ms frame is quietest; a whole number of milliseconds, so window starts stay exact."""
    frame = WINDOW_SAMPLE_RATE * _PAUSE_FRAME_MS // 1000
    search = search // 16 * 16
    low = max(frame, target - search)
    high = min(len(samples) - frame, target + search // 2)
    if high <= low:
        return min(len(samples), target)
    region = samples[low:high]
    usable = len(region) // frame * frame
    energy = np.square(region[:usable].reshape(-1, frame)).mean(axis=1)
    quietest = int(np.argmin(energy))
    return low + quietest * frame + frame // 2


def declared_duration_ms(path: Path) -> int | None:
    """The length the container's header states, for progress only; None when it states none."""
    with _open(path) as container:
        if container.duration is None:
            return None
        return int(container.duration * 1000 // av.time_base)
