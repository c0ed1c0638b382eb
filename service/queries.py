"""Loads `sql/queries.sql`: every statement Tapeline sends, each with a name and a line of why."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from sqlalchemy import TextClause, text

_HEADER = re.compile(r"^-- (\w+) --$", re.MULTILINE)


def parse(source: str) -> dict[str, str]:
    """Split the file at `-- name --` headers; the text up to the next header is the statement."""
    parts = _HEADER.split(source)
    statements = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.strip().splitlines() if not line.startswith("--")]
        statements[name] = "\n".join(lines).strip().rstrip(";")
    return statements


@cache
def _statements() -> dict[str, TextClause]:
    source = resources.files("service").joinpath("sql/queries.sql").read_text(encoding="utf-8")
    return {name: text(sql) for name, sql in parse(source).items()}


def q(name: str) -> TextClause:
    """The named statement, ready for `connection.execute(q("claim_jobs"), params)`."""
    return _statements()[name]
