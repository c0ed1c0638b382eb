from __future__ import annotations

import pytest

from service.config import ConfigError, load_settings
from service.database import asyncpg_dsn, direct_url, is_pooled, normalize_url


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


def test_a_direct_url_apart_from_the_main_one_means_a_pooler() -> None:
    pooled = load_settings(
        database_url="postgresql://u@pooler:6432/app", database_direct_url="postgresql://u@db/app"
    )
    assert is_pooled(pooled)
    assert direct_url(pooled).host == "db"
    alone = load_settings(database_url="postgresql://u@db/app")
    assert not is_pooled(alone) and direct_url(alone).host == "db"
    same = load_settings(
        database_url="postgresql://u@db/app", database_direct_url="postgres://u@db/app"
    )
    assert not is_pooled(same)
