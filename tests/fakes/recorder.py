"""Every request the fakes received, so tests can assert on traffic instead of guessing.

A record keeps what an assertion needs ("the remote file was deleted", "three upload chunks",
"the prompt carried the previous chunk's text") and never the credentials: API key headers are
kept (their presence matters) but their values are redacted.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.faults import FaultKind

SECRET_HEADERS = frozenset({"authorization", "x-goog-api-key", "api-key", "openai-api-key"})
REDACTED = "<redacted>"


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request (the bytes themselves are not kept)."""

    field: str
    filename: str | None
    content_type: str | None
    size: int


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    """Lower-cased names; secret values replaced by `REDACTED`."""
    body_size: int
    json: Any = None
    """The parsed JSON body, when the request had one."""
    form: dict[str, list[str]] = field(default_factory=dict)
    """Text fields of a multipart body (repeated fields keep every value, in order)."""
    files: dict[str, UploadedFile] = field(default_factory=dict)
    fault: FaultKind | None = None
    """The fault this request received, if any."""

    @property
    def target(self) -> str:
        """`path?query`, what fault filters match against."""
        return f"{self.path}?{self.query}" if self.query else self.path

    def field(self, name: str) -> str | None:
        """The first value of a multipart text field."""
        values = self.form.get(name)
        return values[0] if values else None


def redact(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    result: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        result[name] = REDACTED if name in SECRET_HEADERS else value
    return result


class Recorder:
    """An append-only, thread-safe log of requests (the server thread writes, tests read)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []

    def add(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def all(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
