"""What both fake providers share: a fault plan, a request log, and the fault vocabulary."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

from starlette.routing import BaseRoute

from tests.fakes.asgi import RawResponse
from tests.fakes.faults import Fault, FaultKind, FaultPlan
from tests.fakes.recorder import RecordedRequest, Recorder

Latency = float | Callable[[RecordedRequest], float]

PROXY_502_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
"""What a reverse proxy answers when the upstream dies: HTML, whatever the API speaks."""


class FakeService(ABC):
    """One provider's fake: routes, plus the faults and records tests drive and inspect."""

    name: ClassVar[str]
    prefixes: ClassVar[tuple[str, ...]]
    """Paths this service answers, so faults and records land on the right fake."""

    def __init__(self) -> None:
        self.plan = FaultPlan()
        self.recorder = Recorder()
        self.latency: Latency = 0.0

    def delay(self, latency: Latency) -> None:
        """Answer every request after `latency` seconds (or a function of the request deciding
        them, e.g. to make chunks finish out of order), faults included."""
        self.latency = latency

    def latency_for(self, request: RecordedRequest) -> float:
        latency = self.latency
        return float(latency(request) if callable(latency) else latency)

    def fail(
        self,
        kind: FaultKind | str,
        *,
        times: int | None = 1,
        path_contains: str | None = None,
        method: str | None = None,
        retry_after: float = 1.0,
        interval: float = 0.5,
        chunk_size: int = 1,
        status: int | None = None,
        after: int = 0,
    ) -> Fault:
        """Queue a fault for the next `times` matching requests (None: until `clear_faults`).

        Returns the fault, whose `hits` tells how many requests it answered.
        """
        fault = Fault(
            kind=FaultKind(kind),
            times=times,
            path_contains=path_contains,
            method=method,
            retry_after=retry_after,
            interval=interval,
            chunk_size=chunk_size,
            status=status,
            after=after,
        )
        return self.plan.add(fault)

    def clear_faults(self) -> None:
        self.plan.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, faulted ones included, oldest first."""
        return self.recorder.all()

    def requests_to(self, path_contains: str, method: str | None = None) -> list[RecordedRequest]:
        return [
            r
            for r in self.recorder.all()
            if path_contains in r.target and (method is None or r.method == method.upper())
        ]

    def reset(self) -> None:
        """Back to a well-behaved, empty service (between tests)."""
        self.plan.clear()
        self.recorder.clear()
        self.latency = 0.0

    def owns(self, path: str) -> bool:
        return path.startswith(self.prefixes)

    def error_response(self, fault: Fault) -> RawResponse:
        """The response for a status fault, in this provider's error format."""
        if fault.kind is FaultKind.BAD_GATEWAY:
            return RawResponse.of(fault.status or 502, PROXY_502_PAGE, "text/html")
        return self.provider_error(fault)

    @abstractmethod
    def provider_error(self, fault: Fault) -> RawResponse:
        """UNAVAILABLE, RATE_LIMITED, UNAUTHORIZED or BAD_AUDIO as the provider words them."""

    @abstractmethod
    def routes(self) -> list[BaseRoute]: ...
