"""A fake of the Gemini Developer API: resumable Files upload, files.get/delete/list, and
models.generateContent, enough for the real google-genai SDK pointed at it by `base_url`.

Everything lives under `/gemini` (`fakes.gemini_url`); `{v}` is v1 (google-genai 3.x's
default), v1beta or v1alpha. Wire protocol, as google-genai 3.x speaks it:

* upload start: `POST /upload/{v}/files` with `X-Goog-Upload-Protocol: resumable`,
  `X-Goog-Upload-Command: start`, `X-Goog-Upload-Header-Content-Length/-Type` and a JSON body
  `{"file": {...}}`; answered 200 with an `X-Goog-Upload-URL` header (the SDK keeps its path
  and query, and swaps in the scheme and host of its own base URL).
* upload chunks (8 MiB each): `POST <upload url>` with `X-Goog-Upload-Command: upload` (the
  last one `upload, finalize`) and `X-Goog-Upload-Offset`; every answer must carry
  `X-Goog-Upload-Status` (`active`, then `final` with `{"file": {...}}`), or the SDK sends
  the chunk again, 3 attempts in all, sleeping 1, 2 and 4 s, before raising.
* `GET/DELETE /{v}/files/{id}`, `GET /{v}/files`, `POST /{v}/models/{model}:generateContent`.

Errors use Google's JSON shape `{"error": {"code", "message", "status", "details"}}`, with the
messages the real API uses for the cases engines meet (unknown or deleted file: 403
PERMISSION_DENIED; file not ACTIVE: 400 FAILED_PRECONDITION; bad key: 400 API_KEY_INVALID).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from tests.fakes.asgi import RawResponse
from tests.fakes.base import FakeService
from tests.fakes.faults import Fault, FaultKind
from tests.fakes.injector import record_of
from tests.fakes.recorder import RecordedRequest

VERSIONS = frozenset({"v1", "v1beta", "v1alpha"})
"""google-genai 3.x speaks v1 by default (v1beta with GOOGLE_GENAI_API_VERSION=beta)."""
PREFIX = "/gemini"
PUBLIC_FILES_URL = "https://generativelanguage.googleapis.com/v1beta/files/"
CHUNK_GRANULARITY = 8 * 1024 * 1024

Segment = tuple[int, int, str, str | None]
"""start_ms, end_ms, text, speaker."""

DEFAULT_SEGMENTS: tuple[Segment, ...] = (
    (0, 1800, "Hello from the fake Gemini.", "A"),
    (1800, 3500, "This is the second line.", "B"),
)

ResponseText = str | None | Callable[[dict[str, Any]], str | None]


def transcript_json(segments: Sequence[Segment] = DEFAULT_SEGMENTS, language: str = "en") -> str:
    """The JSON text a transcription prompt asks Gemini for (the engines' response schema)."""
    return json.dumps(
        {
            "segments": [
                {"start_ms": start, "end_ms": end, "text": text, "speaker": speaker}
                for start, end, text, speaker in segments
            ],
            "language": language,
        }
    )


def google_error(
    code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def _error(code: int, status: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse(google_error(code, status, message), status_code=code, headers=headers)


def field_of(message: dict[str, Any], name: str) -> Any:
    """A field by its lowerCamel name or its snake_case one: Google's JSON parser takes both,
    and google-genai sends a mix (`{"fileData": {"file_uri": ...}}`, `{"file": {"mime_type"}}`).
    """
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
    return message.get(name, message.get(snake))


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class FakeFile:
    """An uploaded file and where it is in its PROCESSING → ACTIVE/FAILED lifecycle."""

    id: str
    display_name: str | None
    mime_type: str
    data: bytes
    state: str
    processing_polls_left: int | None
    """Gets still answered PROCESSING; None: stuck in PROCESSING forever."""
    final_state: str
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    deleted: bool = False
    gets: int = 0

    @property
    def name(self) -> str:
        return f"files/{self.id}"

    @property
    def uri(self) -> str:
        return PUBLIC_FILES_URL + self.id

    @property
    def size_bytes(self) -> int:
        return len(self.data)

    def poll(self) -> None:
        """One files.get: count down the PROCESSING polls, then settle."""
        self.gets += 1
        if self.state != "PROCESSING" or self.processing_polls_left is None:
            return
        if self.processing_polls_left == 0:
            self.state = self.final_state
        else:
            self.processing_polls_left -= 1

    def to_json(self) -> dict[str, Any]:
        digest = hashlib.sha256(self.data).hexdigest().encode()
        payload: dict[str, Any] = {
            "name": self.name,
            "mimeType": self.mime_type,
            "sizeBytes": str(self.size_bytes),
            "createTime": _timestamp(self.created),
            "updateTime": _timestamp(self.created),
            "expirationTime": _timestamp(self.created + timedelta(hours=48)),
            "sha256Hash": base64.b64encode(digest).decode(),
            "uri": self.uri,
            "state": self.state,
            "source": "UPLOADED",
        }
        if self.display_name:
            payload["displayName"] = self.display_name
        if self.state == "FAILED":
            payload["error"] = {"code": 3, "message": "The file could not be processed."}
        return payload


@dataclass
class UploadSession:
    id: str
    declared_size: int
    mime_type: str
    display_name: str | None
    file_id: str
    received: bytearray = field(default_factory=bytearray)
    chunks: int = 0


class GeminiFake(FakeService):
    """Gemini Files + generateContent. Configure with `respond_with`, `file_lifecycle`, `fail`."""

    name = "gemini"
    prefixes = (f"{PREFIX}/",)

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._set_defaults()

    def _set_defaults(self) -> None:
        self.response_text: ResponseText = transcript_json()
        self.finish_reason = "STOP"
        self.processing_polls: int | None = 0
        self.final_state = "ACTIVE"
        self.files: dict[str, FakeFile] = {}
        self.sessions: dict[str, UploadSession] = {}

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._set_defaults()

    # -- configuration -------------------------------------------------------------------

    def respond_with(
        self, text: str | dict[str, Any] | ResponseText, *, finish_reason: str = "STOP"
    ) -> None:
        """What generateContent answers: text (a dict is sent as its JSON), None for a
        candidate without content (as when blocked), or a function of the request body."""
        self.response_text = json.dumps(text) if isinstance(text, dict) else text
        self.finish_reason = finish_reason

    def file_lifecycle(
        self, *, processing_polls: int | None = 0, final_state: str = "ACTIVE"
    ) -> None:
        """New uploads stay PROCESSING for `processing_polls` files.get (None: forever), then
        become `final_state` ("ACTIVE" or "FAILED"). With 0 the upload answer is final."""
        self.processing_polls = processing_polls
        self.final_state = final_state

    # -- inspection ------------------------------------------------------------------------

    @property
    def uploaded(self) -> list[FakeFile]:
        """Files whose upload finished, oldest first (deleted ones included)."""
        with self._lock:
            return list(self.files.values())

    @property
    def deleted(self) -> list[str]:
        """Names (`files/...`) of the files deleted so far."""
        with self._lock:
            return [f.name for f in self.files.values() if f.deleted]

    @property
    def live_files(self) -> list[FakeFile]:
        with self._lock:
            return self._live()

    def _live(self) -> list[FakeFile]:
        return [f for f in self.files.values() if not f.deleted]

    @property
    def generate_requests(self) -> list[RecordedRequest]:
        return self.requests_to(":generateContent")

    # -- faults ------------------------------------------------------------------------------

    def provider_error(self, fault: Fault) -> RawResponse:
        kind = fault.kind
        if kind is FaultKind.UNAVAILABLE:
            code = fault.status or 503
            body = google_error(
                code, "UNAVAILABLE", "The model is overloaded. Please try again later."
            )
            return RawResponse.json(code, body)
        if kind is FaultKind.RATE_LIMITED:
            code = fault.status or 429
            delay = f"{fault.retry_after:g}"
            body = google_error(
                code,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota, please check your plan and billing details.",
                [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{delay}s"}],
            )
            return RawResponse.json(code, body, retry_after=delay)
        if kind is FaultKind.UNAUTHORIZED:
            if fault.status == 401:
                message = "Request had invalid authentication credentials."
                return RawResponse.json(401, google_error(401, "UNAUTHENTICATED", message))
            code = fault.status or 400
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ]
            message = "API key not valid. Please pass a valid API key."
            return RawResponse.json(code, google_error(code, "INVALID_ARGUMENT", message, details))
        if kind is FaultKind.BAD_AUDIO:
            code = fault.status or 400
            message = "Request contains an invalid argument."
            return RawResponse.json(code, google_error(code, "INVALID_ARGUMENT", message))
        raise AssertionError(f"not a status fault: {kind}")

    # -- routes ------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = []
        for v in sorted(VERSIONS):
            routes += [
                Route(f"/upload/{v}/files", self._upload, methods=["POST"]),
                Route(f"/{v}/files", self._list, methods=["GET"]),
                Route(f"/{v}/files/{{file_id}}", self._get, methods=["GET"]),
                Route(f"/{v}/files/{{file_id}}", self._delete, methods=["DELETE"]),
                Route(f"/{v}/models/{{model_call}}", self._model_call, methods=["POST"]),
            ]
        return [Mount(PREFIX, routes=routes)]

    async def _upload(self, request: Request) -> Response:
        upload_id = request.query_params.get("upload_id")
        if upload_id is None:
            return self._start_upload(request)
        return await self._upload_chunk(request, upload_id)

    def _start_upload(self, request: Request) -> Response:
        headers = request.headers
        if headers.get("x-goog-upload-protocol") != "resumable" or (
            headers.get("x-goog-upload-command") != "start"
        ):
            return _error(400, "INVALID_ARGUMENT", "Only resumable uploads are supported.")
        meta = (record_of(request).json or {}).get("file") or {}
        size = headers.get("x-goog-upload-header-content-length")
        mime_type = headers.get("x-goog-upload-header-content-type") or field_of(meta, "mimeType")
        if size is None or not mime_type:
            return _error(400, "INVALID_ARGUMENT", "Upload size and mime type are required.")
        file_id = str(meta.get("name") or "").removeprefix("files/") or secrets.token_hex(6)
        with self._lock:
            if file_id in self.files:
                return _error(409, "ALREADY_EXISTS", f"File {file_id} already exists.")
            session = UploadSession(
                id=secrets.token_urlsafe(16),
                declared_size=int(size),
                mime_type=mime_type,
                display_name=field_of(meta, "displayName"),
                file_id=file_id,
            )
            self.sessions[session.id] = session
        version = request.url.path.removeprefix(f"{PREFIX}/upload/").split("/")[0]
        base = str(request.base_url).rstrip("/") + PREFIX
        url = f"{base}/upload/{version}/files?upload_id={session.id}&upload_protocol=resumable"
        return Response(
            status_code=200,
            headers={
                "X-Goog-Upload-URL": url,
                "X-Goog-Upload-Status": "active",
                "X-Goog-Upload-Chunk-Granularity": str(CHUNK_GRANULARITY),
            },
        )

    async def _upload_chunk(self, request: Request, upload_id: str) -> Response:
        final = {"X-Goog-Upload-Status": "final"}
        commands = {c.strip() for c in request.headers.get("x-goog-upload-command", "").split(",")}
        body = await request.body()
        with self._lock:
            session = self.sessions.get(upload_id)
            if session is None:
                return _error(404, "NOT_FOUND", "Unknown upload session.", **final)
            offset = int(request.headers.get("x-goog-upload-offset", "-1"))
            if offset != len(session.received):
                message = f"Offset {offset} does not match {len(session.received)} bytes received."
                return _error(400, "INVALID_ARGUMENT", message, **final)
            if "upload" in commands:
                session.received += body
                session.chunks += 1
            if "finalize" not in commands:
                received = str(len(session.received))
                return Response(
                    headers={
                        "X-Goog-Upload-Status": "active",
                        "X-Goog-Upload-Size-Received": received,
                    }
                )
            del self.sessions[upload_id]
            if len(session.received) != session.declared_size:
                message = (
                    f"Declared {session.declared_size} bytes, received {len(session.received)}."
                )
                return _error(400, "INVALID_ARGUMENT", message, **final)
            polls = self.processing_polls
            file = FakeFile(
                id=session.file_id,
                display_name=session.display_name,
                mime_type=session.mime_type,
                data=bytes(session.received),
                state="PROCESSING" if polls != 0 else self.final_state,
                processing_polls_left=polls,
                final_state=self.final_state,
            )
            self.files[file.id] = file
            return JSONResponse({"file": file.to_json()}, headers=final)

    def _find(self, file_id: str) -> FakeFile | None:
        file = self.files.get(file_id)
        return None if file is None or file.deleted else file

    @staticmethod
    def _no_such_file(file_id: str) -> JSONResponse:
        message = f"You do not have permission to access the File {file_id} or it may not exist."
        return _error(403, "PERMISSION_DENIED", message)

    async def _list(self, request: Request) -> Response:
        with self._lock:
            files = [f.to_json() for f in self._live()]
        return JSONResponse({"files": files} if files else {})

    async def _get(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        with self._lock:
            file = self._find(file_id)
            if file is None:
                return self._no_such_file(file_id)
            file.poll()
            return JSONResponse(file.to_json())

    async def _delete(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        with self._lock:
            file = self._find(file_id)
            if file is None:
                return self._no_such_file(file_id)
            file.deleted = True
        return JSONResponse({})

    async def _model_call(self, request: Request) -> Response:
        model, _, method = request.path_params["model_call"].partition(":")
        if method != "generateContent":
            return _error(404, "NOT_FOUND", f"Method {method or '(none)'} is not faked.")
        body = record_of(request).json
        if not isinstance(body, dict):
            return _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        refusal = self._check_files(body)
        if refusal is not None:
            return refusal
        produce = self.response_text
        text = produce(body) if callable(produce) else produce
        candidate: dict[str, Any] = {"index": 0, "finishReason": self.finish_reason}
        if text is not None:
            candidate["content"] = {"parts": [{"text": text}], "role": "model"}
        usage = {"promptTokenCount": 100, "candidatesTokenCount": 50, "totalTokenCount": 150}
        return JSONResponse(
            {
                "candidates": [candidate],
                "usageMetadata": usage,
                "modelVersion": model,
                "responseId": secrets.token_urlsafe(12),
            }
        )

    def _check_files(self, body: dict[str, Any]) -> Response | None:
        """Refuse file parts as Gemini does: unknown/deleted (403) or not yet ACTIVE (400)."""
        for content in body.get("contents") or []:
            for part in content.get("parts") or []:
                uri = field_of(field_of(part, "fileData") or {}, "fileUri")
                if not uri:
                    continue
                file_id = uri.rsplit("files/", 1)[-1]
                with self._lock:
                    file = self._find(file_id)
                    state = file.state if file else None
                if file is None:
                    return self._no_such_file(file_id)
                if state != "ACTIVE":
                    message = (
                        f"The File {file_id} is not in an ACTIVE state and usage is not allowed."
                    )
                    return _error(400, "FAILED_PRECONDITION", message)
        return None
