"""/v1: OpenAI's audio transcription API on Tapeline's runs, so the official SDKs (and tools
built on them) work with `base_url` pointed here and a Tapeline token as the key.

A transcription is a real run: queued, claimed by any worker, on the streams and the page. The
request waits for it, however long it takes. While it waits, bytes keep the connection alive
(proxies and the SDKs' read timeouts would otherwise drop a quiet one): whitespace the format
ignores in a plain answer, SSE comments in a stream. A plain answer's status waits for the
first of those bytes, so a run that ends before then (most short recordings) is answered with
its real status; one that fails after it can only say so in the body.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from service.auth import authenticate
from service.context import Context
from service.database import Row
from service.engines.base import Transcript
from service.errors import NotFound, RunCancelled, TapelineError
from service.live.follow import follow_run
from service.live.hub import Hub, Message
from service.media import library as audio_library
from service.media.storage import ensure_free_space
from service.media.uploads import receive_audio
from service.runs import openai_compat as compat
from service.runs import store as runs
from service.runs.results import stored_transcript
from service.runs.submission import submit_run
from service.tokens import Principal

log = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Any]]
NO_RETRY = {"x-should-retry": "false"}
"""On a run's own failure: Tapeline has retried already; the SDKs would send it all again."""


def openai_errors(endpoint: Endpoint) -> Endpoint:
    """Errors in OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`), which the
    SDKs turn into their own exception types, instead of Tapeline's."""

    @functools.wraps(endpoint)
    async def wrapped(request: Request) -> Any:
        try:
            return await endpoint(request)
        except TapelineError as error:
            return error_response(error)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            return error_response(TapelineError())

    return wrapped


def error_response(error: TapelineError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(compat.error_json(error), compat.openai_status(error), headers=headers)


@openai_errors
async def list_models(request: Request) -> JSONResponse:
    await authenticate(request)
    ctx: Context = request.app.state.ctx
    return JSONResponse(compat.models_json(compat.model_routes(ctx.settings, ctx.engines)))


@openai_errors
async def get_model(request: Request) -> JSONResponse:
    await authenticate(request)
    ctx: Context = request.app.state.ctx
    name = request.path_params["model"]
    if name not in compat.model_routes(ctx.settings, ctx.engines):
        raise NotFound(f"The model {name!r} does not exist here.", param="model")
    return JSONResponse(compat.model_json(name))


@openai_errors
async def create_transcription(request: Request) -> Response | RunAnswer:
    """Multipart `file` and OpenAI's fields; the answer waits for the run (see the module)."""
    principal = await authenticate(request)
    ctx: Context = request.app.state.ctx
    ensure_free_space(ctx.settings)
    upload = await receive_audio(request, ctx.storage.staging_path(), ctx.settings.max_upload_bytes)
    try:
        asked = compat.transcription_request(
            upload.fields, compat.model_routes(ctx.settings, ctx.engines)
        )
    except TapelineError:
        await asyncio.to_thread(upload.path.unlink, missing_ok=True)
        raise
    audio = await audio_library.accept_upload(ctx.db, ctx.storage, principal.owner, upload)
    submit = functools.partial(
        submit_run,
        ctx,
        principal,
        audio["id"],
        engine=asked.route.engine,
        model=asked.route.model,
        language=asked.language,
        prompt=asked.prompt,
    )
    answer = StreamAnswer if asked.stream else PlainAnswer
    return answer(ctx, principal, submit, asked, audio)


class RunAnswer(ABC):
    """Submit the run, follow it to its end on the hub, answer in OpenAI's shape; keep-alive
    bytes all along. A client that goes away stops the waiting, not the run."""

    def __init__(
        self,
        ctx: Context,
        principal: Principal,
        submit: Callable[[], Awaitable[Row]],
        asked: compat.TranscriptionRequest,
        audio: Row,
    ) -> None:
        self.ctx = ctx
        self.principal = principal
        self.submit = submit
        self.asked = asked
        self.duration_ms = int(audio["duration_ms"])
        self.started = False
        self._send: Send

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._send = send
        waiting = asyncio.current_task()
        assert waiting is not None
        gone = asyncio.create_task(_client_gone(receive, waiting))
        try:
            await self.answer()
        except asyncio.CancelledError:
            if not gone.done():
                raise
            waiting.uncancel()
        finally:
            gone.cancel()

    async def answer(self) -> None:
        try:
            run = await self._submitted()
            async for message in follow_run(self.ctx.db, self._hub(), self.principal, run["id"]):
                if message is None:
                    await self.keepalive()
                elif message.final:
                    break
                else:
                    await self.on_message(message)
            async with self.ctx.db.connect() as conn:
                finished = await runs.get(conn, run["id"], None)
            assert finished is not None
            if finished["status"] == "succeeded":
                transcript = await stored_transcript(self.ctx, finished)
                await self.succeed(transcript)
                return
            error = compat.run_error(finished["error_code"], finished["error_message"])
            if finished["status"] == "cancelled" and not finished["error_code"]:
                error = RunCancelled()
            await self.fail(error, NO_RETRY)
        except TapelineError as error:
            await self.fail(error)
        except Exception:
            log.exception("the OpenAI-compatible answer failed")
            await self.fail(TapelineError())

    async def _submitted(self) -> Row:
        """The submitted run. Short audio is transcribed inside `submit_run`, so it runs in a
        task of its own, with keep-alives while it works; it finishes even if the client
        leaves, like any run."""
        task = asyncio.ensure_future(self.submit())
        task.add_done_callback(_log_failure)
        keepalive_s = self.ctx.settings.sse_heartbeat_ms / 1000
        while True:
            done, _ = await asyncio.wait({task}, timeout=keepalive_s)
            if done:
                return task.result()
            await self.keepalive()

    def _hub(self) -> Hub:
        assert self.ctx.hub is not None, "the API process starts its hub in the lifespan"
        return self.ctx.hub

    async def start(
        self, status: int, media_type: str, headers: dict[str, str] | None = None
    ) -> None:
        raw = [(b"content-type", media_type.encode())]
        raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        await self._send({"type": "http.response.start", "status": status, "headers": raw})
        self.started = True

    async def write(self, body: bytes, *, more: bool = True) -> None:
        await self._send({"type": "http.response.body", "body": body, "more_body": more})

    @abstractmethod
    async def keepalive(self) -> None:
        """Bytes that keep the connection alive without changing what the client reads."""

    @abstractmethod
    async def on_message(self, message: Message) -> None:
        """A message of the run's stream before its end (partials, updates)."""

    @abstractmethod
    async def succeed(self, transcript: Transcript) -> None:
        """The finished transcript, and the end of the response."""

    @abstractmethod
    async def fail(self, error: TapelineError, headers: dict[str, str] | None = None) -> None:
        """The error in OpenAI's shape, and the end of the response."""


class PlainAnswer(RunAnswer):
    """One body in the asked `response_format`. Its status line waits for the first keep-alive,
    which then commits the answer to 200; VTT's keep-alive begins with the WEBVTT line."""

    vtt_header_sent = False

    async def keepalive(self) -> None:
        fmt = self.asked.response_format
        if not self.started:
            await self.start(200, compat.MEDIA_TYPES[fmt])
        if fmt == "vtt" and not self.vtt_header_sent:
            self.vtt_header_sent = True
            await self.write(compat.VTT_HEADER.encode())
        else:
            await self.write(compat.KEEPALIVE[fmt])

    async def on_message(self, message: Message) -> None:
        """A plain answer has nothing to say until the run ends."""
        return

    async def succeed(self, transcript: Transcript) -> None:
        body = compat.rendered(transcript, self.asked, self.duration_ms)
        if self.vtt_header_sent:
            body = body.removeprefix(compat.VTT_HEADER)
        if not self.started:
            await self.start(200, compat.MEDIA_TYPES[self.asked.response_format])
        await self.write(body.encode(), more=False)

    async def fail(self, error: TapelineError, headers: dict[str, str] | None = None) -> None:
        if not self.started:
            await self.start(compat.openai_status(error), "application/json", headers)
        await self.write(json.dumps(compat.error_json(error)).encode(), more=False)


class StreamAnswer(RunAnswer):
    """`stream=true`: OpenAI's transcription events over SSE, a `transcript.text.delta` as each
    stretch of the recording is transcribed (in the recording's order), then
    `transcript.text.done`; on failure an `error` object, which the SDKs raise."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.deltas = compat.DeltaText()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._send = send
        await self.start(200, "text/event-stream", {"cache-control": "no-cache"})
        await super().__call__(scope, receive, send)

    async def event(self, data: dict[str, Any], *, more: bool = True) -> None:
        await self.write(f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode(), more=more)

    async def keepalive(self) -> None:
        await self.write(b": keep-alive\n\n")

    async def on_message(self, message: Message) -> None:
        if message.data.get("event") != "partial":
            return
        texts = [str(s.get("text", "")) for s in message.data.get("segments", ())]
        for delta in self.deltas.add(int(message.data["chunkIndex"]), texts):
            await self.event(compat.delta_event(delta))

    async def succeed(self, transcript: Transcript) -> None:
        rest = self.deltas.rest(transcript.text)
        if rest:
            await self.event(compat.delta_event(rest))
        await self.event(compat.done_event(transcript.text), more=False)

    async def fail(self, error: TapelineError, headers: dict[str, str] | None = None) -> None:
        await self.event(compat.error_json(error), more=False)


async def _client_gone(receive: Receive, waiting: asyncio.Task[Any]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    waiting.cancel()


def _log_failure(task: asyncio.Future[Row]) -> None:
    """An inline run whose client left still fails loudly in the log, not silently."""
    if not task.cancelled() and task.exception() is not None:
        error = task.exception()
        if not isinstance(error, TapelineError):
            log.error("submitting a run for /v1/audio/transcriptions failed", exc_info=error)
