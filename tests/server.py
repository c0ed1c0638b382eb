"""Real `tapeline` processes for tests: start, wait until they answer, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tapeline(*args: str) -> list[str]:
    return [sys.executable, "-m", "service", *args]


@contextmanager
def process(
    args: Sequence[str], env: dict[str, str], log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process with its output in `log_path`; SIGTERM (then SIGKILL) on exit."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(list(args), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def api_server(
    env: dict[str, str], log_path: Path, *extra: str, timeout: float = 60
) -> Iterator[str]:
    """`tapeline serve` on a free port; yields its base URL once /healthz answers."""
    with serving(env, log_path, *extra, timeout=timeout) as (base, _):
        yield base


@contextmanager
def serving(
    env: dict[str, str], log_path: Path, *extra: str, timeout: float = 60
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`api_server`, yielding the process too (benchmarks watch its memory)."""
    port = free_port()
    args = tapeline("serve", "--port", str(port), *extra)
    with process(args, env, log_path) as proc:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield base, proc


def env_with(base: dict[str, str], **values: str) -> dict[str, str]:
    merged = dict(base)
    merged.update(values)
    merged.setdefault("PATH", os.environ.get("PATH", ""))
    return merged
