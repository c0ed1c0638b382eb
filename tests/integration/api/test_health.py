"""/healthz and /readyz of real servers: a ready one, and one whose database is not migrated."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import URL

from service.database import asyncpg_dsn
from service.schema import head_revision, upgrade
from tests.server import api_server, env_with


async def test_a_migrated_server_is_ready(subprocess_env: dict[str, str], tmp_path: Path) -> None:
    with api_server(subprocess_env, tmp_path / "api.log", "--no-worker") as base:
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 200
    model = {"name": subprocess_env["WHISPER_MODEL"], "present": True}
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "current", "listener": "ok"},
        "model": model,
    }


async def test_a_schema_at_another_revision_is_alive_but_not_ready(
    subprocess_env: dict[str, str], database_url: URL, tmp_path: Path
) -> None:
    """What a rolling deploy sees when another release migrated the database ahead of it."""
    bare = f"tapeline_revision_{os.getpid()}"
    admin = asyncpg_dsn(database_url.set(database="postgres"))
    url = database_url.set(database=bare)

    async def recreate(create: bool) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{bare}" WITH (FORCE)')
            if create:
                await conn.execute(f'CREATE DATABASE "{bare}"')
        finally:
            await conn.close()

    async def set_revision(revision: str) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await conn.execute("UPDATE alembic_version SET version_num = $1", revision)
        finally:
            await conn.close()

    await recreate(True)
    try:
        await asyncio.to_thread(upgrade, url)
        env = env_with(subprocess_env, DATABASE_URL=url.render_as_string(hide_password=False))
        with api_server(env, tmp_path / "api.log", "--no-worker", "--no-migrate") as base:
            await set_revision("9999_newer")
            assert httpx.get(f"{base}/healthz").status_code == 200
            behind = httpx.get(f"{base}/readyz")
            await set_revision(head_revision())
            caught_up = httpx.get(f"{base}/readyz")
    finally:
        await recreate(False)
    assert behind.status_code == 503
    model = {"name": subprocess_env["WHISPER_MODEL"], "present": True}
    assert behind.json() == {
        "status": "not ready",
        "checks": {"database": "ok", "migrations": "at 9999_newer", "listener": "ok"},
        "model": model,
    }
    assert caught_up.status_code == 200
