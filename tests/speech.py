"""Real spoken English for tests and benchmarks, synthesised offline with flite.

Fixtures are generated on the fly so the repository holds no binary audio. Long recordings are
assembled from a handful of sentences spoken once each and repeated, which keeps a 20-minute
file to a few seconds of work while still giving the recogniser genuine speech to chew on.
"""

from __future__ import annotations

import itertools
import subprocess
import tempfile
import wave
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

SAMPLE_RATE = 16_000
PAUSE_SECONDS = 0.8

DEFAULT_SENTENCES: tuple[str, ...] = (
    "the weather today is sunny and warm",
    "please bring the red umbrella to the office",
    "my brother plays the guitar every evening",
    "the train to the city leaves at seven in the morning",
    "she bought fresh bread and cheese at the market",
    "the children are reading books in the library",
    "we planted tomatoes and carrots in the garden",
    "the doctor said i should drink more water",
    "our meeting with the new client starts at noon",
    "the cat is sleeping on the kitchen table",
    "he forgot his keys in the car again",
    "the mountain road was closed because of snow",
    "i would like a cup of coffee with milk",
    "the museum opens on sunday afternoon",
    "they painted the house blue last summer",
    "the airport was very busy during the holidays",
    "please send me the report before friday",
    "the river flows slowly past the old bridge",
    "my grandmother makes the best apple pie",
    "the students finished their exams yesterday",
)

_spoken: dict[str, bytes] = {}


def speak(text: str, path: Path) -> Path:
    """Speak `text` into a 16 kHz mono WAV at `path` with flite's `slt` voice."""
    subprocess.run(
        ["flite", "-voice", "slt", "-t", text, "-o", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def _frames_of(text: str) -> bytes:
    """The PCM frames for one sentence, synthesised once per process."""
    if text not in _spoken:
        with tempfile.TemporaryDirectory() as tmp:
            wav_path = speak(text, Path(tmp) / "sentence.wav")
            with wave.open(str(wav_path), "rb") as wav:
                if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (
                    SAMPLE_RATE,
                    1,
                    2,
                ):
                    raise RuntimeError(f"flite produced unexpected audio for {text!r}")
                _spoken[text] = wav.readframes(wav.getnframes())
    return _spoken[text]


def long_recording(
    path: Path,
    minutes: float,
    sentences: Sequence[str] = DEFAULT_SENTENCES,
    voice: Callable[[str], bytes] | None = None,
) -> tuple[Path, list[str]]:
    """Write a WAV of `sentences` spoken in turn, with pauses, until `minutes` is reached.

    Returns the path and the sentences in the order they are spoken, so callers can compare a
    transcript with what was actually said. `voice` turns a sentence into 16 kHz mono 16-bit
    PCM (flite's `slt` unless given).
    """
    if not sentences:
        raise ValueError("long_recording needs at least one sentence")
    return path, _write(path, itertools.cycle(sentences), voice, int(minutes * 60 * SAMPLE_RATE))


def spoken_once(path: Path, sentences: Sequence[str]) -> Path:
    """Write a WAV of `sentences` spoken once each, in order, with the same pauses."""
    _write(path, iter(sentences), None, None)
    return path


def _write(
    path: Path,
    sentences: Iterator[str],
    voice: Callable[[str], bytes] | None,
    target_frames: int | None,
) -> list[str]:
    """Speak `sentences` into `path` until they run out or `target_frames` is reached."""
    voice = voice or _frames_of
    pause = b"\x00\x00" * int(PAUSE_SECONDS * SAMPLE_RATE)
    spoken: list[str] = []
    written = 0
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        for text in sentences:
            if target_frames is not None and written >= target_frames:
                break
            frames = voice(text) + pause
            wav.writeframesraw(frames)
            written += len(frames) // 2
            spoken.append(text)
    return spoken
