"""A 1 GiB resumable (tus) upload into a real `tapeline serve`: server memory and throughput.

Prints the API process's RSS growth while it receives the file (target: under 100 MB, i.e.
memory does not grow with file size) and the upload's throughput against a plain file copy of
the same file on the same disk, measured in the same run. The upload is sent by tuspy in
PATCHes of `--chunk-mb`; the last megabyte is sent separately, so the transfer and the
completion (assembling, hashing and probing the whole file as audio) are timed apart.

    python bench/upload.py [--size-mb 1024] [--chunk-mb 64]

On the server DATABASE_URL names (else the embedded PostgreSQL) it makes a database of its own,
dropped at the end, and it uses a temporary data dir: it never touches an existing deployment.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/upload.py` puts bench/ first on sys.path, where bench/queue.py would shadow the
# stdlib `queue`; put the repository root there instead.
_BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(_BENCH_DIR.parent))

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import struct  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import httpx  # noqa: E402
import psutil  # noqa: E402
from tusclient.client import TusClient  # noqa: E402

from bench._server import own_database, token_for  # noqa: E402
from tests.server import serving  # noqa: E402

MB = 1024 * 1024
SAMPLE_RATE = 48_000
CHANNELS = 2


def write_wav(path: Path, data_bytes: int) -> None:
    """A PCM WAV of `data_bytes` of noise (16-bit stereo 48 kHz), written a block at a time."""
    data_bytes -= data_bytes % (2 * CHANNELS)
    byte_rate = SAMPLE_RATE * CHANNELS * 2
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, CHANNELS, SAMPLE_RATE, byte_rate, 4, 16)
    header += b"data" + struct.pack("<I", data_bytes)
    block = os.urandom(16 * MB)
    with path.open("wb") as f:
        f.write(header)
        left = data_bytes
        while left > 0:
            f.write(block[: min(left, len(block))])
            left -= min(left, len(block))


class PeakRss:
    """Samples a process's RSS every 20 ms in a thread; `peak` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, int(self.process.memory_info().rss))
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--chunk-mb", type=int, default=64)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(dir=args.dir, prefix="tapeline-bench-") as tmp,
        own_database() as database,
    ):
        root = Path(tmp)
        source, warmup = root / "recording.wav", root / "warmup.wav"
        write_wav(source, args.size_mb * MB)
        write_wav(warmup, 2 * MB)
        size = source.stat().st_size

        started = time.perf_counter()
        shutil.copyfile(source, root / "copy.wav")
        with (root / "copy.wav").open("rb") as f:
            os.fsync(f.fileno())
        copy_s = time.perf_counter() - started
        (root / "copy.wav").unlink()

        env = dict(os.environ, TAPELINE_DATA_DIR=str(root / "data"), PYTHONUNBUFFERED="1")
        env.update(database)
        token = token_for(env, "bench")
        with serving(env, root / "server.log", "--no-worker", timeout=120) as (base, proc):
            client = TusClient(f"{base}/api/uploads/", headers={"Authorization": f"Bearer {token}"})
            client.uploader(file_path=str(warmup), chunk_size=MB).upload()
            before = int(psutil.Process(proc.pid).memory_info().rss)
            uploader = client.uploader(file_path=str(source), chunk_size=args.chunk_mb * MB)
            with PeakRss(proc.pid) as rss:
                started = time.perf_counter()
                uploader.upload(stop_at=size - MB)
                transfer_s = time.perf_counter() - started
                started = time.perf_counter()
                uploader.upload()
                complete_s = time.perf_counter() - started
            assert uploader.url is not None
            head = httpx.head(
                uploader.url,
                headers={"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"},
            )
            audio_id = head.headers.get("Tapeline-Audio-Id")

    growth_mb = (rss.peak - before) / MB
    transfer_mbs = (size - MB) / MB / transfer_s
    copy_mbs = size / MB / copy_s
    print(f"file                     {size / MB:.0f} MiB WAV, PATCHes of {args.chunk_mb} MiB")
    print(f"plain file copy          {copy_s:6.2f} s  {copy_mbs:7.1f} MiB/s")
    print(f"tus transfer             {transfer_s:6.2f} s  {transfer_mbs:7.1f} MiB/s")
    print(f"throughput vs copy       {transfer_mbs / copy_mbs:6.2f}x")
    print(f"completion (probe, hash) {complete_s:6.2f} s  -> audio {audio_id}")
    print(f"server RSS before        {before / MB:7.1f} MiB")
    print(f"server RSS peak          {rss.peak / MB:7.1f} MiB")
    verdict = "ok" if growth_mb < 100 else "OVER the 100 MB target"
    print(f"server RSS growth        {growth_mb:7.1f} MiB ({verdict})")


if __name__ == "__main__":
    main()
