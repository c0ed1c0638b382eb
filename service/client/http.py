"""A small typed client for a running Tapeline server, used by the `tapeline` client commands.

Plain httpx for requests and httpx-sse for the per-run stream. A dropped stream is resumed with
`Last-Event-ID`, so the server replays exactly what was missed; the stream ends at `done` or
`error`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, connect_sse

FINAL_EVENTS = ("done", "error")
RECONNECT_ATTEMPTS = 10
RECONNECT_MAX_DELAY_S = 10.0  # a deploy restarts every API process: wait it out, not hammer it


class ClientError(Exception):
    """The server answered with an error, or could not be reached; `code` is Tapeline's."""

    def __init__(self, message: str, code: str = "client_error", status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """One message of the per-run stream: `event` is init, update, partial, done or error."""

    event: str
    run_id: str
    status: str | None
    stage: str | None
    progress: int
    estimated_remaining_s: float | None = None
    error: dict[str, str] | None = None
    transcript_url: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.event in FINAL_EVENTS


def parse_message(sse: ServerSentEvent) -> StreamMessage | None:
    """The message an SSE frame carries; None for frames without data (retry hints)."""
    if not sse.data:
        return None
    data = json.loads(sse.data)
    if not isinstance(data, dict) or "event" not in data:
        return None
    remaining = data.get("estimatedTimeRemaining")
    return StreamMessage(
        event=str(data["event"]),
        run_id=str(data.get("runId", "")),
        status=data.get("status"),
        stage=data.get("stage"),
        progress=int(data.get("progress") or 0),
        estimated_remaining_s=float(remaining) if remaining is not None else None,
        error=data.get("error"),
        transcript_url=data.get("transcriptUrl"),
        data=data,
    )


def _raise_for_error(response: httpx.Response) -> None:
    if response.is_success:
        return
    response.read()
    try:
        error = response.json()["error"]
        raise ClientError(str(error["message"]), str(error["code"]), response.status_code)
    except (ValueError, KeyError, TypeError):
        raise ClientError(
            f"HTTP {response.status_code}: {response.text[:200]}",
            "http_error",
            response.status_code,
        ) from None


class TapelineClient:
    """Calls one server as one token's owner."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
        reconnect_delay_s: float = 1.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
        self.reconnect_delay_s = reconnect_delay_s

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> TapelineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach {self.http.base_url}: {exc}", "unreachable") from exc
        _raise_for_error(response)
        return response

    def transcribe(
        self, path: Path, *, engine: str | None = None, language: str | None = None
    ) -> dict[str, Any]:
        """Upload a file and start its run (`POST /api/transcribe`); the run as created."""
        fields = {k: v for k, v in (("engine", engine), ("language", language)) if v}
        with path.open("rb") as f:
            response = self._request(
                "POST", "/api/transcribe", data=fields, files={"file": (path.name, f)}
            )
        run: dict[str, Any] = response.json()
        return run

    def runs(self, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        items: list[dict[str, Any]] = self._request("GET", "/api/runs", params=params).json()[
            "items"
        ]
        return items

    def search(self, words: str, limit: int = 20) -> list[dict[str, Any]]:
        """Finished runs whose transcript has every word, best first, with `matches`."""
        params = {"q": words, "limit": limit}
        items: list[dict[str, Any]] = self._request("GET", "/api/runs", params=params).json()[
            "items"
        ]
        return items

    def run(self, run_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self._request("GET", f"/api/runs/{run_id}").json()
        return body

    def retry(self, run_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self._request("POST", f"/api/runs/{run_id}/retry").json()
        return body

    def cancel(self, run_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self._request("POST", f"/api/runs/{run_id}/cancel").json()
        return body

    def transcript(self, run_id: str, fmt: str = "txt") -> str:
        return self._request("GET", f"/api/runs/{run_id}/transcript", params={"format": fmt}).text

    def follow(
        self, run_id: str, on_reconnect: Callable[[int], None] | None = None
    ) -> Iterator[StreamMessage]:
        """The run's messages until `done` or `error`, resuming after a dropped connection.

        A drop (connection error, or the stream ending before a final message) reconnects with
        the last persisted id seen, waiting twice as long after each failed attempt (up to
        RECONNECT_MAX_DELAY_S, about a minute and a half in all); after RECONNECT_ATTEMPTS
        drops in a row it gives up.
        """
        last_id: str | None = None
        drops = 0
        while True:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                with connect_sse(
                    self.http, "GET", f"/api/runs/{run_id}/events", headers=headers
                ) as source:
                    _raise_for_error(source.response)
                    for sse in source.iter_sse():
                        if sse.id:
                            last_id = sse.id
                        message = parse_message(sse)
                        if message is None:
                            continue
                        drops = 0
                        yield message
                        if message.final:
                            return
            except (httpx.TransportError, httpx.RemoteProtocolError) as exc:
                cause = f"{type(exc).__name__}: {exc}"
            else:
                cause = "stream ended before the run finished"
            drops += 1
            if drops > RECONNECT_ATTEMPTS:
                raise ClientError(f"lost the event stream of run {run_id} ({cause})", "stream_lost")
            if on_reconnect is not None:
                on_reconnect(drops)
            time.sleep(min(self.reconnect_delay_s * 2 ** (drops - 1), RECONNECT_MAX_DELAY_S))
