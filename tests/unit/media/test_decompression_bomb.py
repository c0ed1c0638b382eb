"""A decompression bomb: a few MB of FLAC that decode to hours of audio.

The probe must refuse it as soon as decoding passes MAX_AUDIO_DURATION_MS, and must never hold
the decoded audio: two hours of 16 kHz float32 would be 460 MB, so a probe that kept it would
show at once in the peak memory of the process that ran it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np

HOURS = 3
LIMIT_MS = 2 * 3600 * 1000
PROBE = """
import sys
from pathlib import Path

from service.errors import RecordingTooLong
from service.media.audio import probe


def peak_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


before = peak_kib()
try:
    probe(Path(sys.argv[1]), max_duration_ms=int(sys.argv[2]))
    outcome = "accepted"
except RecordingTooLong:
    outcome = "too_long"
print(outcome, peak_kib() - before)
"""


def silent_flac(path: Path, hours: float, rate: int = 8_000) -> Path:
    """Digital silence at 8 kHz, encoded a minute at a time (never hours of samples at once)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("flac", rate=rate, layout="mono")
        minute = np.zeros((1, rate * 60), dtype=np.int16)
        for index in range(int(hours * 60)):
            frame = av.AudioFrame.from_ndarray(minute, format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = index * rate * 60
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def test_hours_of_flac_silence_are_refused_without_holding_the_audio(tmp_path: Path) -> None:
    bomb = silent_flac(tmp_path / "bomb.flac", HOURS)
    assert bomb.stat().st_size < 4 * 1024**2, "a few MB that decode to hours"
    probed = subprocess.run(
        [sys.executable, "-c", PROBE, str(bomb), str(LIMIT_MS)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    outcome, grew_kib = probed.stdout.split()
    assert outcome == "too_long"
    assert int(grew_kib) < 64 * 1024, f"the probe's peak memory grew by {int(grew_kib) >> 10} MB"
