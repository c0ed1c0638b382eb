"""Logging for `serve` and `worker`: one JSON object per line (or plain text), tokens redacted.

A job's `job_id` and `run_id` (and, once known, its `engine`) are bound in a context variable
where the job starts, so every line logged while it runs carries them, in whichever task.
Tokens never reach a log: `access_token` query values (percent-encoded too), `Authorization`
values, anything shaped like a Tapeline token and the configured secrets themselves (admin
token, provider keys) are replaced before a line is written.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any

REDACTED = "[redacted]"
CONTEXT_FIELDS = ("run_id", "job_id", "engine")

_PATTERNS = (
    re.compile(r"(?i)(access(?:_|%5f|%255f)token(?:=|%3d|%253d))[^&\s\"']+"),
    re.compile(r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?(?:bearer\s+)?)[^\s\"',}\\]+"),
    re.compile(r"(?i)(\bbearer\s+)[\w.~+/=-]+"),
    re.compile(r"\b(tl_)[\w-]{8,}"),
)

_job: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "tapeline_job", default=None
)


_secrets: tuple[str, ...] = ()


def redact(text: str) -> str:
    """`text` with every configured secret and token-looking value replaced by `[redacted]`."""
    for secret in _secrets:
        text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def redact_secrets(values: Iterable[str | None]) -> None:
    """Also redact these exact values (the admin token, provider keys) wherever they appear;
    longest first, so a secret containing another is replaced whole."""
    global _secrets
    found = {v for v in values if v and len(v) >= 8}
    _secrets = tuple(sorted(found | set(_secrets), key=len, reverse=True))


def bind_job(job_id: int, run_id: uuid.UUID | None) -> contextvars.Token[dict[str, Any] | None]:
    """Bind a job to the current context (and the tasks it starts); `reset` undoes it."""
    fields: dict[str, Any] = {"job_id": job_id}
    if run_id is not None:
        fields["run_id"] = str(run_id)
    return _job.set(fields)


def reset(token: contextvars.Token[dict[str, Any] | None]) -> None:
    _job.reset(token)


def annotate(**fields: Any) -> None:
    """Add to the bound job's fields. The dict is shared with the task that bound the job, so
    what a handler learns (its engine) is seen where the outcome is recorded."""
    current = _job.get()
    if current is not None:
        current.update(fields)


def job_fields() -> dict[str, Any]:
    return dict(_job.get() or {})


class ContextFilter(logging.Filter):
    """Copies the bound job's fields onto each record, as it is created."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_job.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class RedactFilter(logging.Filter):
    """Replaces tokens in a record's message (uvicorn's access lines carry the query string)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def _access_fields(record: logging.LogRecord) -> dict[str, Any]:
    """uvicorn's access record args: client, method, path, HTTP version, status."""
    args = record.args
    if record.name != "uvicorn.access" or not isinstance(args, tuple) or len(args) != 5:
        return {}
    client, method, path, _version, status = args
    return {"client": client, "method": method, "path": redact(str(path)), "status": status}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the job's fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                data[key] = value
        data.update(_access_fields(record))
        if record.exc_info:
            data["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    """Short lines for a person at a terminal: the time, the level only when it is not plain
    information, the message, and the job's fields when there are any."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if record.levelno != logging.INFO:
            time, _, rest = line.partition(" ")
            line = f"{time} {record.levelname.lower()}: {rest}"
        extra = " ".join(
            f"{key}={getattr(record, key)}" for key in CONTEXT_FIELDS if hasattr(record, key)
        )
        return redact(f"{line} [{extra}]" if extra else line)


QUIET_LOGGERS = ("pgserver", "alembic")
"""Libraries whose information is about their own workings (initdb's and pg_ctl's command
lines and output, each migration step): debug lines for Tapeline's logs."""


class QuietLibraries(logging.Filter):
    """Demotes the information of `loggers` to debug, shown only at `LOG_LEVEL=DEBUG`."""

    def __init__(self, level: int, loggers: tuple[str, ...] = QUIET_LOGGERS) -> None:
        super().__init__()
        self.level = level
        self.loggers = loggers

    def filter(self, record: logging.LogRecord) -> bool:
        quiet = any(record.name == n or record.name.startswith(n + ".") for n in self.loggers)
        if quiet and record.levelno < logging.WARNING:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return record.levelno >= self.level


def use_json(log_format: str, stream: IO[str], stdout: IO[str] | None = None) -> bool:
    """`auto` means JSON unless a person is watching a terminal: the log stream and stdout both
    are one (`tapeline serve | tee` or `2> file` write JSON)."""
    if log_format == "auto":
        return not (stream.isatty() and (stdout or sys.stdout).isatty())
    return log_format == "json"


def configure_logging(
    log_format: str = "auto",
    level: str = "INFO",
    stream: IO[str] | None = None,
    secrets: Iterable[str | None] = (),
) -> None:
    """Route every logger (uvicorn's included) to one handler on stderr, at `level`; an earlier
    uvicorn configuration in the same process is undone (uvicorn.run sets its level again)."""
    redact_secrets(secrets)
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    as_json = use_json(log_format, stream)
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    # On a terminal, `serve` sums its start-up up itself; uvicorn's own lines would repeat it.
    quiet = QUIET_LOGGERS if as_json else (*QUIET_LOGGERS, "uvicorn.error")
    handler.addFilter(QuietLibraries(logging.getLevelName(level.upper()), quiet))
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.disabled = False
        uvicorn_logger.setLevel(logging.NOTSET)
