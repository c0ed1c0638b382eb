"""Where the database is: `DATABASE_URL`, or an embedded PostgreSQL kept in the data dir.

One SQL dialect everywhere. The embedded server (the `pgserver` package) lives in
`<TAPELINE_DATA_DIR>/postgres`, so every `tapeline` command pointed at the same data dir finds the
same database; pgserver reference-counts the processes using it and stops it after the last one.

Behind a transaction-pooling PgBouncer (how managed Postgres is usually reached), consecutive
transactions of one client connection run on different server connections, so nothing may live
on a server connection beyond a transaction: no cached prepared statements, no LISTEN, no
session advisory lock. `DATABASE_DIRECT_URL` names the server itself; when it is set and differs
from `DATABASE_URL`, `DATABASE_URL` is taken to be such a pooler. LISTEN and migrations always
use the direct URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import RowMapping
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from service.config import ConfigError, Settings
from service.errors import is_connection_loss
from service.queries import q

log = logging.getLogger(__name__)

Row = RowMapping
"""One row of a query, read by column name: what every persistence function returns."""

_embedded: dict[Path, Any] = {}
T = TypeVar("T")


def normalize_url(url: str) -> URL:
    """Accept what users paste (`postgres://`, `postgresql://`, `postgresql+psycopg://`) and
    return the asyncpg form SQLAlchemy needs. A Unix socket stays in `?host=/path`."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(
            f"Invalid configuration: DATABASE_URL is not a database URL ({exc})"
        ) from None
    if parsed.get_backend_name() not in ("postgres", "postgresql"):
        raise ConfigError(
            "Invalid configuration: DATABASE_URL must be a PostgreSQL URL "
            f"(postgresql://user:password@host:5432/dbname), got scheme {parsed.drivername!r}"
        )
    return parsed.set(drivername="postgresql+asyncpg")


def asyncpg_dsn(url: URL) -> str:
    """The same database as a plain libpq-style DSN, for raw asyncpg connections (LISTEN)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def embedded_url(data_dir: Path) -> URL:
    """Start (or join) the embedded PostgreSQL under `data_dir` and return its URL."""
    pgdata = (data_dir / "postgres").resolve()
    server = _embedded.get(pgdata)
    if server is None:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset (any non-login shell,
            # containers); pgserver then keeps its lock file under /tmp, which is fine here.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
            import pgserver

        if not (pgdata / "PG_VERSION").exists():
            log.info("first start: creating the embedded PostgreSQL database (a few seconds)")
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        log.debug("starting embedded PostgreSQL in %s", pgdata)
        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
        _embedded[pgdata] = server
    return normalize_url(server.get_uri())


def database_url(settings: Settings) -> URL:
    if settings.database_url:
        return normalize_url(settings.database_url)
    return embedded_url(settings.tapeline_data_dir)


def direct_url(settings: Settings) -> URL:
    """The database server itself, for LISTEN and migrations: `DATABASE_DIRECT_URL`, else
    `DATABASE_URL`."""
    if settings.database_direct_url:
        return normalize_url(settings.database_direct_url)
    return database_url(settings)


def is_pooled(settings: Settings) -> bool:
    """Whether `DATABASE_URL` goes through a transaction pooler: a direct URL was given apart."""
    if not settings.database_direct_url or not settings.database_url:
        return False
    return normalize_url(settings.database_direct_url) != normalize_url(settings.database_url)


def pool_size(settings: Settings) -> int:
    """Connections the process keeps (as many again may be opened under load)."""
    return settings.database_pool_size or settings.max_concurrent_jobs + 5


def create_engine(url: URL, *, pool_size: int = 10, pooled: bool = False) -> AsyncEngine:
    """The process's connection pool. JSON goes through the stdlib encoder both ways.

    `pooled` (behind a transaction pooler): asyncpg caches no statements, and SQLAlchemy's
    prepared statements get unique names, so none is ever looked for on another server
    connection or collides with one left there by another client.
    """
    connect_args: dict[str, Any] = {}
    if pooled:
        url = url.update_query_dict({"prepared_statement_cache_size": "0"})
        connect_args = {
            "statement_cache_size": 0,
            "prepared_statement_name_func": _statement_name,
        }
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        json_serializer=json.dumps,
        json_deserializer=json.loads,
        connect_args=connect_args,
    )


def _statement_name() -> str:
    return f"__tapeline_{uuid.uuid4().hex}__"


class NotEnoughConnections(ConfigError):
    """The database cannot give this process the connections it needs: say which, and how to
    need fewer, instead of hanging on an exhausted pool later."""


async def check_capacity(
    db: AsyncEngine, settings: Settings, *, listeners: int = 2, timeout_s: float = 10.0
) -> None:
    """Fail start-up clearly when PostgreSQL has fewer free connections than this process's
    pool and LISTEN connections need (behind a pooler only the LISTEN ones reach the server)."""
    size = pool_size(settings)
    needed = listeners if is_pooled(settings) else size + listeners
    advice = (
        f"this process keeps a pool of {size} connections (DATABASE_POOL_SIZE, default "
        f"MAX_CONCURRENT_JOBS + 5 = {settings.max_concurrent_jobs + 5}), may open {size} more "
        f"under load, and holds {listeners} LISTEN connections. Lower DATABASE_POOL_SIZE or "
        "MAX_CONCURRENT_JOBS, run fewer processes, raise max_connections, or put PgBouncer in "
        "front (DATABASE_URL to the pooler, DATABASE_DIRECT_URL to the server)."
    )
    try:
        async with asyncio.timeout(timeout_s), db.connect() as conn:
            row = (await conn.execute(q("free_connections"))).one()
    except TimeoutError:
        raise NotEnoughConnections(
            f"The database did not give a connection within {timeout_s:.0f} s: {advice}"
        ) from None
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) in _NO_SLOTS or "too many" in str(exc).lower():
            raise NotEnoughConnections(
                f"The database refuses new connections (too many clients): {advice}"
            ) from None
        raise
    free = int(row.free)
    if not is_pooled(settings) and free < needed:
        raise NotEnoughConnections(
            f"PostgreSQL has {free} free connections of max_connections={row.max} "
            f"({row.used} in use), but {needed} are needed: {advice}"
        )
    if not is_pooled(settings) and free < needed + size:
        log.warning("PostgreSQL has only %d free connections; %s", free, advice)


_NO_SLOTS = ("53300", "53400")


async def reconnecting(action: Callable[[], Awaitable[T]], *, within_s: float = 15.0) -> T:
    """`action()`, again while the database connection is being lost and regained (a restart
    drops every connection and refuses new ones for a moment), for up to `within_s`. Any other
    error, and the connection loss that outlasts `within_s`, is raised."""
    deadline = time.monotonic() + within_s
    delay = 0.1
    while True:
        try:
            return await action()
        except Exception as exc:
            if not is_connection_loss(exc) or time.monotonic() + delay > deadline:
                raise
            log.info("database connection lost (%s); trying again", type(exc).__name__)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
