"""What the benchmarks that drive a real `tapeline serve` share: a database of their own, the
server process, a token."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx

from service.database import asyncpg_dsn, normalize_url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def own_database() -> Iterator[dict[str, str]]:
    """A fresh database on DATABASE_URL's server for this run (nothing when it is unset)."""
    configured = os.environ.get("DATABASE_URL")
    if not configured:
        yield {}
        return
    server = normalize_url(configured)
    name = f"tapeline_bench_{os.getpid()}"

    async def run(statement: str) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(server))
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        yield {"DATABASE_URL": url}
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def serve(
    env: dict[str, str], log: Path, *options: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`tapeline serve` with `options` on a free port, until the block ends."""
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service", "serve", *options, "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("server did not start")
            time.sleep(0.2)
        yield base, proc
    finally:
        proc.terminate()
        proc.wait(30)


def token_for(env: dict[str, str], owner: str) -> str:
    """A new API token of `owner`, made by `tapeline token create`."""
    created = subprocess.run(
        [sys.executable, "-m", "service", "token", "create", owner],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return created.stdout.strip().splitlines()[-1]
