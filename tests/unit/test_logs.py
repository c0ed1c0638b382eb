"""Log lines: JSON shape, job fields from the context, tokens redacted everywhere."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import uuid
from collections.abc import Iterator

import pytest

from service import logs


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.configure_logging("json", "DEBUG", stream)
    yield stream
    root.handlers[:], level = saved
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    """Lines of our loggers and uvicorn's (not asyncio's debug chatter)."""
    parsed = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in parsed if line["logger"] != "asyncio"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "GET /api/runs/1/events?access_token=tl_abcdefghijkl&lastEventId=4",
            "GET /api/runs/1/events?access_token=[redacted]&lastEventId=4",
        ),
        ("Authorization: Bearer tl_secretsecret", "Authorization: Bearer [redacted]"),
        ("{'authorization': 'Bearer abc.def'}", "{'authorization': 'Bearer [redacted]'}"),
        ('"authorization": "tl_abc\\n"', '"authorization": "[redacted]\\n"'),
        ("sent bearer eyJhbGciOi.x", "sent bearer [redacted]"),
        ("token tl_0123456789abcdef created", "token tl_[redacted] created"),
        (
            "nothing to hide in /api/runs?status=queued",
            "nothing to hide in /api/runs?status=queued",
        ),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert logs.redact(text) == expected


def test_uvicorn_access_lines_are_json_without_the_token(captured: io.StringIO) -> None:
    access = logging.getLogger("uvicorn.access")
    access.info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "GET",
        "/api/runs/events?access_token=tl_supersecret123",
        "1.1",
        200,
    )
    (line,) = lines(captured)
    assert "supersecret" not in captured.getvalue()
    assert line["logger"] == "uvicorn.access" and line["level"] == "info"
    assert line["path"] == "/api/runs/events?access_token=[redacted]"
    assert line["status"] == 200 and line["method"] == "GET"
    assert {"time", "message"} <= set(line)


async def test_job_fields_follow_the_job_into_its_tasks(captured: io.StringIO) -> None:
    run_id = uuid.uuid4()
    log = logging.getLogger("service.test")

    async def handler() -> None:
        logs.annotate(engine="local")
        log.info("inside the handler")

    token = logs.bind_job(42, run_id)
    try:
        await asyncio.create_task(handler())
        assert logs.job_fields() == {"job_id": 42, "run_id": str(run_id), "engine": "local"}
    finally:
        logs.reset(token)
    log.info("after the job")
    inside, after = lines(captured)
    assert inside["job_id"] == 42 and inside["run_id"] == str(run_id)
    assert inside["engine"] == "local"
    assert "job_id" not in after and logs.job_fields() == {}


def test_exceptions_are_one_line_and_redacted(captured: io.StringIO) -> None:
    try:
        raise ValueError("bad header Authorization: Bearer tl_leakedleaked")
    except ValueError:
        logging.getLogger("service.test").exception("request failed")
    (line,) = lines(captured)
    assert "leaked" not in captured.getvalue()
    assert "ValueError" in str(line["exception"])


def test_text_format_and_auto() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:]
    try:
        logs.configure_logging("text", "INFO", stream)
        token = logs.bind_job(7, None)
        logging.getLogger("service.test").info("hello access_token=abc")
        logs.reset(token)
    finally:
        root.handlers[:] = saved
    assert stream.getvalue().rstrip().endswith("hello access_token=[redacted] [job_id=7]")
    assert logs.use_json("auto", io.StringIO()) is True


@pytest.mark.parametrize(
    "text",
    [
        "GET /api/runs/events?access%5Ftoken=s3cretvalue&x=1",
        "GET /api/runs/events?access_token%3Ds3cretvalue",
        "GET /api/runs/events?ACCESS%5fTOKEN=s3cretvalue",
    ],
)
def test_percent_encoded_access_tokens_are_redacted(text: str) -> None:
    """Issue 15, finding 7: `access%5Ftoken=` went through the redactor untouched."""
    assert "s3cretvalue" not in logs.redact(text)


def test_configured_secrets_are_redacted_from_every_line() -> None:
    """Issue 15, finding 11: the redactor did not know the provider keys or the admin token."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure_logging("text", "INFO", stream, secrets=["AIzaProviderKey0123456789", None])
        logging.getLogger("service.test").warning(
            "provider said: bad key AIzaProviderKey0123456789"
        )
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    assert "AIzaProviderKey" not in stream.getvalue() and "[redacted]" in stream.getvalue()


def test_library_chatter_is_debug_and_text_lines_are_short() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved, saved_level = root.handlers[:], root.level
    try:
        logs.configure_logging("text", "INFO", stream)
        logging.getLogger("pgserver").info("Running commandline: initdb ...")
        logging.getLogger("alembic.runtime.migration").info("Running upgrade")
        logging.getLogger("uvicorn.error").info("Application startup complete.")
        logging.getLogger("alembic").warning("a real problem")
        logging.getLogger("service.cli").info("Tapeline is ready")
        logs.configure_logging("text", "DEBUG", stream)
        logging.getLogger("pgserver").info("shown at debug")
    finally:
        root.handlers[:] = saved
        root.setLevel(saved_level)
    lines = stream.getvalue().splitlines()
    assert [line[9:] for line in lines] == [
        "warning: a real problem",
        "Tapeline is ready",
        "debug: shown at debug",
    ]
    assert all(re.match(r"^\d\d:\d\d:\d\d ", line) for line in lines)
