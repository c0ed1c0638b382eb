"""A first `tapeline serve` as a person meets it: short lines on a terminal (a pty), JSON when
piped, and on a fresh install the owner token with its sign-in link, printed once."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.server import env_with, free_port, process, tapeline

pytestmark = pytest.mark.timeout(120)
READY = "Tapeline is ready at"


@contextmanager
def on_a_terminal(env: dict[str, str], *args: str) -> Iterator[tuple[str, list[str]]]:
    """`tapeline serve` with a pty as stdin, stdout and stderr; yields its URL and the lines it
    printed up to the start-up summary and the owner token, if any."""
    port = free_port()
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        tapeline("serve", "--port", str(port), *args),
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        close_fds=True,
    )
    os.close(terminal)
    output = b""
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and b"  workers" not in output:
            if select.select([controller], [], [], 0.5)[0]:
                output += os.read(controller, 65536)
        time.sleep(0.5)  # the owner token follows the summary
        while select.select([controller], [], [], 0.2)[0]:
            output += os.read(controller, 65536)
        yield f"http://127.0.0.1:{port}", output.decode().replace("\r\n", "\n").splitlines()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        os.close(controller)


async def token_count(db: AsyncEngine) -> int:
    async with db.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM api_token"))).scalar_one())


async def test_piped_start_writes_json_and_creates_no_token(
    db: AsyncEngine, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    env = env_with(subprocess_env, LOG_FORMAT="auto")
    log = tmp_path / "serve.log"
    port = free_port()
    with process(tapeline("serve", "--port", str(port)), env, log):
        deadline = time.monotonic() + 60
        while READY not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert any(line["message"].startswith(READY) for line in lines)
    assert not any(line["logger"].startswith(("alembic", "pgserver")) for line in lines)
    assert "tl_" not in log.read_text() and await token_count(db) == 0


async def test_terminal_start_shows_short_lines_and_the_owner_token_once(
    db: AsyncEngine, subprocess_env: dict[str, str]
) -> None:
    env = env_with(subprocess_env, LOG_FORMAT="auto", TERM="dumb")
    with on_a_terminal(env) as (base, lines):
        summary = [line for line in lines if re.match(r"^\d\d:\d\d:\d\d ", line)]
        assert summary[0].endswith(f"{READY} {base}/"), lines
        assert [line.split()[1] for line in summary[1:5]] == [
            "data",
            "database",
            "engine",
            "workers",
        ]
        assert not any(line.lstrip().startswith("{") for line in lines), lines
        assert not any("Warning" in line or "initdb" in line for line in lines), lines
        links = [m for line in lines if (m := re.search(r"(http://\S+)#token=(tl_\S+)", line))]
        assert len(links) == 1 and links[0].group(1) == f"{base}/"
        token = links[0].group(2)
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{base}/api/runs", headers=headers).status_code == 200
        # the owner token is an admin: it sees the workers
        assert httpx.get(f"{base}/api/admin/worker", headers=headers).status_code == 200
    assert await token_count(db) == 1
    with on_a_terminal(env) as (_, again):
        assert any(READY in line for line in again)
        assert not any("tl_" in line for line in again), again
    assert await token_count(db) == 1


async def test_print_owner_token_when_asked_without_a_terminal(
    db: AsyncEngine, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    port = free_port()
    with process(
        tapeline("serve", "--port", str(port), "--print-owner-token"), subprocess_env, log
    ):
        deadline = time.monotonic() + 60
        while "#token=" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
    assert f"http://127.0.0.1:{port}/#token=tl_" in log.read_text()
    assert await token_count(db) == 1
