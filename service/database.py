"""Where the database is: `DATABASE_URL`, or an embedded PostgreSQL kept in the data dir.

One SQL dialect everywhere. The embedded server (the `pgserver` package) lives in
`<TAPELINE_DATA_DIR>/postgres`, so every `tapeline` command pointed at the same data dir finds the
same database; pgserver reference-counts the processes using it and stops it after the last one.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

from sqlalchemy import RowMapping
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from service.config import ConfigError, Settings

log = logging.getLogger(__name__)

Row = RowMapping
"""One row of a query, read by column name: what every persistence function returns."""

_embedded: dict[Path, Any] = {}


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


def create_engine(url: URL, *, pool_size: int = 10) -> AsyncEngine:
    """The process's connection pool. JSON goes through the stdlib encoder both ways."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        json_serializer=json.dumps,
        json_deserializer=json.loads,
    )
