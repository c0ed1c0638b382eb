from __future__ import annotations

import pytest

from service.config import ConfigError
from service.database import asyncpg_dsn, normalize_url


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db:5432/app", "postgresql+asyncpg://u:p@db:5432/app"),
        ("postgres://u@db/app", "postgresql+asyncpg://u@db/app"),
        ("postgresql+asyncpg://u@db/app", "postgresql+asyncpg://u@db/app"),
        ("postgresql+psycopg://u@db/app", "postgresql+asyncpg://u@db/app"),
    ],
)
def test_pasted_urls_become_asyncpg_urls(given: str, expected: str) -> None:
    assert normalize_url(given).render_as_string(hide_password=False) == expected


def test_a_unix_socket_host_survives_both_forms() -> None:
    url = normalize_url("postgresql://tapeline@/app?host=/var/run/postgresql")
    assert url.query["host"] == "/var/run/postgresql"
    assert asyncpg_dsn(url).startswith("postgresql://tapeline@/app?host=")


@pytest.mark.parametrize("given", ["mysql://u@db/app", "not a url"])
def test_other_databases_are_refused_naming_the_variable(given: str) -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        normalize_url(given)
