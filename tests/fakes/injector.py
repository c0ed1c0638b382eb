"""The outermost ASGI layer: record every request, then answer it well or badly.

Faults live here rather than in the routes so each route only has to describe the happy path;
the same hang, reset or truncation then applies to any endpoint of either provider.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.fakes.asgi import (
    capture,
    read_body,
    replay,
    reset_connection,
    send_response,
    trickle,
    wait_until_gone,
)
from tests.fakes.base import FakeService
from tests.fakes.faults import STATUS_KINDS, Fault, FaultKind
from tests.fakes.recorder import RecordedRequest, UploadedFile, redact

RECORD_KEY = "fakes.record"


def record_of(request: Request) -> RecordedRequest:
    """The record the injector made of this request (parsed JSON, form fields, file sizes)."""
    record = request.scope[RECORD_KEY]
    assert isinstance(record, RecordedRequest)
    return record


async def _nothing_more() -> Message:
    return {"type": "http.disconnect"}


async def _parse_form(scope: Scope, body: bytes) -> tuple[dict[str, list[str]], dict[str, Any]]:
    fields: dict[str, list[str]] = {}
    files: dict[str, UploadedFile] = {}
    request = Request(dict(scope), replay(body, _nothing_more))
    async with request.form(max_part_size=64 * 1024 * 1024) as form:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                size = len(await value.read())
                files[name] = UploadedFile(name, value.filename, value.content_type, size)
            else:
                fields.setdefault(name, []).append(value)
    return fields, files


async def describe(scope: Scope, body: bytes) -> RecordedRequest:
    headers = redact(scope["headers"])
    content_type = headers.get("content-type", "")
    parsed: Any = None
    fields: dict[str, list[str]] = {}
    files: dict[str, Any] = {}
    if content_type.startswith("multipart/form-data"):
        fields, files = await _parse_form(scope, body)
    elif body.lstrip()[:1] in (b"{", b"["):
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
    return RecordedRequest(
        method=scope["method"],
        path=scope["path"],
        query=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        body_size=len(body),
        json=parsed,
        form=fields,
        files=files,
    )


class FaultInjector:
    def __init__(
        self, app: ASGIApp, services: Sequence[FakeService], stopping: threading.Event
    ) -> None:
        self.app = app
        self.services = list(services)
        self.stopping = stopping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = None
        if scope["type"] == "http":
            service = next((s for s in self.services if s.owns(scope["path"])), None)
        if service is None:
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        record = await describe(scope, body)
        fault = service.plan.take(record.method, record.target)
        if fault is not None:
            record = replace(record, fault=fault.kind)
        service.recorder.add(record)
        scope[RECORD_KEY] = record
        latency = service.latency_for(record)
        if latency > 0:
            await asyncio.sleep(latency)
        inner_receive = replay(body, receive)
        if fault is None:
            await self.app(scope, inner_receive, send)
        else:
            await self._misbehave(service, fault, scope, inner_receive, send)

    async def _misbehave(
        self, service: FakeService, fault: Fault, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if fault.kind in STATUS_KINDS:
            await send_response(send, service.error_response(fault))
        elif fault.kind is FaultKind.HANG:
            await wait_until_gone(receive, self.stopping, math.inf)
            if self.stopping.is_set():
                # A client without a timeout must not keep the server (and the test) alive.
                await reset_connection(send)
        elif fault.kind is FaultKind.RESET:
            await reset_connection(send)
        elif fault.kind is FaultKind.TRICKLE:
            response = await capture(self.app, scope, receive)
            await trickle(
                send,
                receive,
                response,
                interval=fault.interval,
                chunk_size=max(1, fault.chunk_size),
                stopping=self.stopping,
            )
        elif fault.kind is FaultKind.TRUNCATED_JSON:
            response = await capture(self.app, scope, receive)
            await send_response(send, response.with_body(response.body[: len(response.body) // 2]))
        else:  # pragma: no cover - every kind is handled above
            raise AssertionError(f"unhandled fault {fault.kind}")
