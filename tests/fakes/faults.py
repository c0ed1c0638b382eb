"""What can go wrong on the wire, as data: a fault kind, how often, and on which requests.

Tests queue faults on a fake service (`fakes.openai.fail(...)`); the server takes the first
queued fault that matches each incoming request. Keeping faults as plain data (and counting
their hits) lets a test say "the next two uploads fail, then the API behaves" and later assert
how many attempts the code under test really made.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    """The failures a real provider (or a proxy in front of it) produces."""

    BAD_GATEWAY = "bad_gateway"
    """502 with an HTML body: a load balancer's error page, not the provider's JSON."""
    UNAVAILABLE = "unavailable"
    """503 with the provider's JSON error ("model overloaded")."""
    RATE_LIMITED = "rate_limited"
    """429 with the provider's JSON error and a Retry-After header."""
    UNAUTHORIZED = "unauthorized"
    """A rejected API key: OpenAI answers 401; Gemini answers 400 API_KEY_INVALID, as it does."""
    BAD_AUDIO = "bad_audio"
    """400: the provider refuses the audio (undecodable, unsupported format)."""
    HANG = "hang"
    """Read the request, never answer; ends when the client leaves or the server stops."""
    TRICKLE = "trickle"
    """The real answer, `chunk_size` bytes every `interval` seconds (headers come at once)."""
    RESET = "reset"
    """Read the request, then reset the TCP connection (RST, no response at all)."""
    TRUNCATED_JSON = "truncated_json"
    """The real answer's status and headers, with the JSON body cut in half."""


STATUS_KINDS = frozenset(
    {
        FaultKind.BAD_GATEWAY,
        FaultKind.UNAVAILABLE,
        FaultKind.RATE_LIMITED,
        FaultKind.UNAUTHORIZED,
        FaultKind.BAD_AUDIO,
    }
)
"""Faults answered with an error status before the request takes effect (no side effects)."""

WRAPPING_KINDS = frozenset({FaultKind.TRICKLE, FaultKind.TRUNCATED_JSON})
"""Faults that damage the real answer, so the request does take effect (a file is created...)."""


@dataclass
class Fault:
    """One queued fault; `hits` counts the requests it has answered so far."""

    kind: FaultKind
    times: int | None = 1
    """How many matching requests get this fault; None: every one until cleared."""
    path_contains: str | None = None
    """Only requests whose `path?query` contains this text (e.g. ":generateContent")."""
    method: str | None = None
    """Only requests with this HTTP method (e.g. "DELETE")."""
    retry_after: float = 1.0
    """RATE_LIMITED: seconds in the Retry-After header."""
    interval: float = 0.5
    """TRICKLE: seconds between two pieces of the body."""
    chunk_size: int = 1
    """TRICKLE: bytes per piece."""
    status: int | None = None
    """Override the status of a status fault (e.g. UNAUTHORIZED with 401 for Gemini)."""
    after: int = 0
    """Let this many matching requests through untouched before the fault starts."""
    hits: int = 0

    def matches(self, method: str, target: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_contains is None or self.path_contains in target

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


class FaultPlan:
    """The faults queued on one service, taken first-come by matching requests.

    Thread-safe: tests queue faults from their own thread while the server thread takes them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, target: str) -> Fault | None:
        """The fault for this request, counted as hit; None when the request should succeed."""
        with self._lock:
            for fault in self._faults:
                if not fault.exhausted and fault.matches(method, target):
                    if fault.after > 0:
                        fault.after -= 1
                        return None
                    fault.hits += 1
                    return fault
        return None

    def pending(self) -> list[Fault]:
        with self._lock:
            return [fault for fault in self._faults if not fault.exhausted]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
