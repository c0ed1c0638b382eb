"""Postgres as production reaches it: a transaction-pooling PgBouncer in front, and a server
with few connections left. Each test starts a private cluster; the shared server is not touched
except to read how many connections it has."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from service.config import Settings, load_settings
from service.context import open_context
from service.database import NotEnoughConnections, create_engine, normalize_url
from tests.postgres import Cluster, pgbouncer, private_cluster

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with private_cluster(max_connections=12) as cluster:
        cluster.create_database("app")
        yield cluster


async def _queries_on_many_connections(url: str, *, pooled: bool) -> None:
    """Twenty clients sharing two server connections, each running the same statements."""
    engine = create_engine(normalize_url(url), pool_size=10, pooled=pooled)

    async def client(n: int) -> None:
        for _ in range(5):
            async with engine.begin() as conn:
                assert (
                    await conn.execute(text("SELECT CAST(:n AS int) + 1"), {"n": n})
                ).scalar() == n + 1
            async with engine.connect() as conn:
                await conn.execute(text("SELECT now()"))
                await conn.rollback()

    try:
        await asyncio.gather(*(client(n) for n in range(20)))
    finally:
        await engine.dispose()


def test_behind_a_transaction_pooler_no_prepared_statement_outlives_its_transaction(
    cluster: Cluster,
) -> None:
    with pgbouncer(cluster, "app", pool_size=2) as port:
        asyncio.run(_queries_on_many_connections(cluster.url("app", port), pooled=True))
        with pytest.raises(DBAPIError, match="prepared statement"):
            asyncio.run(_queries_on_many_connections(cluster.url("app", port), pooled=False))


def test_too_small_a_server_fails_start_up_naming_the_pool_and_how_to_lower_it(
    database_url: URL, data_dir: Path
) -> None:
    settings = load_settings(
        database_url=database_url.render_as_string(hide_password=False),
        tapeline_data_dir=data_dir,
        database_pool_size=100_000,
    )
    with pytest.raises(NotEnoughConnections) as caught:
        asyncio.run(_open(settings))
    message = str(caught.value)
    assert "a pool of 100000" in message and "DATABASE_POOL_SIZE" in message
    assert "MAX_CONCURRENT_JOBS" in message and "max_connections=" in message


def test_a_server_refusing_connections_fails_start_up_at_once(
    cluster: Cluster, data_dir: Path
) -> None:
    async def hold_every_connection() -> None:
        held = []
        while True:
            try:
                held.append(await asyncpg.connect(cluster.url("app")))
            except asyncpg.TooManyConnectionsError:
                break
        try:
            settings = load_settings(database_url=cluster.url("app"), tapeline_data_dir=data_dir)
            with pytest.raises(NotEnoughConnections, match=r"too many clients.*DATABASE_POOL_SIZE"):
                async with asyncio.timeout(15):
                    await _open(settings)
        finally:
            await asyncio.gather(*(c.close() for c in held))

    asyncio.run(hold_every_connection())


async def _open(settings: Settings) -> None:
    async with open_context(settings, engines={}):
        pass
