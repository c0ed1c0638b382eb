"""The client's stream handling, against an in-memory transport speaking SSE."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from httpx_sse import ServerSentEvent

from service.client.http import ClientError, TapelineClient, parse_message

RUN = "0b6f3c1e-8f7a-4d55-9c1e-2a4f0e6b7c01"


def frame(data: dict[str, object], event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


class Dropping(httpx.SyncByteStream):
    """Sends some frames, then fails like a connection cut mid-stream."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames

    def __iter__(self) -> Iterator[bytes]:
        yield from self.frames
        raise httpx.ReadError("connection reset")


def test_parse_message() -> None:
    assert parse_message(ServerSentEvent(retry=3000)) is None
    init = parse_message(
        ServerSentEvent(
            data=json.dumps(
                {
                    "event": "init",
                    "runId": RUN,
                    "status": "processing",
                    "stage": "analyzing",
                    "progress": 40,
                    "estimatedTimeRemaining": 12.5,
                }
            )
        )
    )
    assert init is not None and not init.final
    assert (init.stage, init.progress, init.estimated_remaining_s) == ("analyzing", 40, 12.5)
    error = parse_message(
        ServerSentEvent(data=json.dumps({"event": "error", "error": {"code": "x", "message": "y"}}))
    )
    assert error is not None and error.final and error.error == {"code": "x", "message": "y"}


def test_follow_resumes_after_a_drop_with_last_event_id() -> None:
    seen_ids: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer tl_t"
        seen_ids.append(request.headers.get("last-event-id"))
        sse = {"content-type": "text/event-stream"}
        if len(seen_ids) == 1:
            frames = [
                b"retry: 3000\n\n",
                frame({"event": "init", "runId": RUN, "progress": 0}, 7),
                frame({"event": "update", "runId": RUN, "stage": "analyzing", "progress": 10}, 8),
                frame({"event": "update", "runId": RUN, "progress": 30}),
            ]
            return httpx.Response(200, headers=sse, stream=Dropping(frames))
        body = frame({"event": "done", "runId": RUN, "transcriptUrl": "/t"}, 9)
        return httpx.Response(200, headers=sse, content=body)

    client = TapelineClient(
        "http://x", "tl_t", transport=httpx.MockTransport(handler), reconnect_delay_s=0
    )
    reconnects: list[int] = []
    messages = list(client.follow(RUN, on_reconnect=reconnects.append))
    assert [m.event for m in messages] == ["init", "update", "update", "done"]
    assert [m.progress for m in messages[:3]] == [0, 10, 30]
    assert messages[-1].transcript_url == "/t"
    assert seen_ids == [None, "8"] and reconnects == [1]


def test_follow_gives_up_after_repeated_drops() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=b"")

    client = TapelineClient(
        "http://x", None, transport=httpx.MockTransport(handler), reconnect_delay_s=0
    )
    with pytest.raises(ClientError) as caught:
        list(client.follow(RUN))
    assert caught.value.code == "stream_lost"


def test_server_errors_carry_code_and_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            body = {
                "error": {"code": "not_found", "message": "No run with that id exists for you."}
            }
            return httpx.Response(404, json=body)
        return httpx.Response(502, text="<html>bad gateway</html>")

    client = TapelineClient("http://x", None, transport=httpx.MockTransport(handler))
    with pytest.raises(ClientError) as caught:
        list(client.follow(RUN))
    assert (caught.value.code, caught.value.status) == ("not_found", 404)
    with pytest.raises(ClientError) as caught:
        client.runs()
    assert caught.value.code == "http_error" and "502" in caught.value.message
