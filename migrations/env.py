"""Alembic environment: runs migrations on Tapeline's async engine under an advisory lock,
so API and worker processes that all migrate on start never race each other."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from service.config import get_settings
from service.database import create_engine, direct_url

MIGRATION_LOCK = 7_262_011  # pg_advisory_lock key shared by every migrating process


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
    try:
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
        connection.commit()


async def _run_async() -> None:
    url = context.config.attributes.get("database_url") or direct_url(get_settings())
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Tapeline migrations run online only: use `tapeline migrate`.")

asyncio.run(_run_async())
