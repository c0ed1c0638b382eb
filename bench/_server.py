"""What the benchmarks that drive a real `tapeline serve` share: a database of their own and a
token; the server process is the tests' own (`tests.server.serving`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from service.database import asyncpg_dsn, normalize_url


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
