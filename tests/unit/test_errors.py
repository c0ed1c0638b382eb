"""Errors are classified before anything is retried, and no message promises a retry."""

from __future__ import annotations

import ast
import re
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, OperationalError

from service import errors
from service.errors import TapelineError, classify

PROMISE = re.compile(r"will retry|retries (this|it)|retrying\b|retried automatically", re.I)
SERVICE = Path(__file__).resolve().parents[2] / "service"


@pytest.mark.parametrize(
    "exc",
    [TypeError("'NoneType' object is not iterable"), KeyError("x"), ValueError(), AssertionError()],
)
def test_a_bug_fails_at_once_as_internal_error_without_promising_a_retry(
    exc: Exception,
) -> None:
    error = classify(exc)
    assert error.code == "internal_error" and not error.transient
    assert type(exc).__name__ in error.message
    assert not PROMISE.search(error.message)


def test_only_what_can_go_away_is_transient() -> None:
    dropped = asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")
    wrapped = DBAPIError("SELECT 1", None, dropped, connection_invalidated=True)
    assert classify(wrapped).code == "database_unavailable"
    shutting_down = asyncpg.exceptions.AdminShutdownError("terminating connection")
    assert classify(OperationalError("SELECT 1", None, shutting_down)).transient
    assert classify(ConnectionResetError()).transient
    assert classify(TimeoutError()).code == "upstream_timeout"
    assert classify(BrokenProcessPool()).code == "worker_lost"
    syntax = asyncpg.exceptions.PostgresSyntaxError("syntax error")
    assert not classify(DBAPIError("SELEC 1", None, syntax)).transient


def test_no_message_anywhere_promises_a_retry() -> None:
    """Every error's default message, and every message the service raises one with, reads
    right on a run that has finished failing."""
    classes = _subclasses(TapelineError)
    for cls in classes:
        assert not PROMISE.search(cls().message), cls.__name__
    names = {cls.__name__ for cls in classes}
    messages = 0
    for path in SERVICE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and _called_name(node.func) in names:
                for arg in node.args:
                    for part in ast.walk(arg):
                        if isinstance(part, ast.Constant) and isinstance(part.value, str):
                            messages += 1
                            assert not PROMISE.search(part.value), (path.name, part.value)
    assert messages > 30, "the scan found the service's error messages"


def _called_name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _subclasses(cls: type[TapelineError]) -> list[type[TapelineError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_subclasses(sub))
    return [c for c in found if c.__module__ == errors.__name__]
