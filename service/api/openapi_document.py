"""The OpenAPI 3.1 document served at /openapi.json, built from plain dicts, one block per area.

Each area (`HEALTH`, `AUDIO`, `RUNS`, `STREAMS`, `ADMIN`, `OPERATIONS`, `LISTEN`, `WEBHOOKS`,
`OPENAI`, `UPLOADS`) is a mapping of paths; `document()` merges them with the shared schemas. A
new area is one more mapping in `AREAS`. The SSE streams are `text/event-stream`; the JSON each
message's `data` carries is described by the `RunStreamMessage` and `GlobalStreamMessage`
schemas (`x-message-schema`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from service import __version__

Json = dict[str, Any]

ERROR_REASONS = {
    400: "The request is not valid (`invalid_request`).",
    401: "No valid token (`unauthorized`).",
    403: "This needs the admin token (`forbidden`).",
    404: "Nothing with that id exists for you (`not_found`).",
    405: "That method is not allowed here (`method_not_allowed`).",
    409: "Not possible in the run's current state (`conflict`).",
    410: "Gone: the upload expired or was terminated.",
    412: "The client's `Tus-Resumable` version is not supported.",
    413: "Larger than MAX_UPLOAD_BYTES (`upload_too_large`), or longer than "
    "MAX_AUDIO_DURATION_MS (`too_long`).",
    415: "Wrong content type (`unsupported_media_type`).",
    416: "The range starts past the end of the audio (`range_not_satisfiable`).",
    422: "Unreadable audio or unavailable engine (`audio_unreadable`, `engine_not_configured`), "
    "or an audio URL that could not be fetched (`fetch_failed`, with the `status` it answered).",
    423: "Another request is writing this upload right now (`upload_locked`).",
    460: "The chunk's checksum does not match (tus checksum extension).",
    503: "Not ready, or the engine is unavailable.",
    507: "The server's data disk is below MIN_FREE_DISK_MB (`insufficient_storage`).",
}


def ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Json) -> Json:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(required: Iterable[str], **properties: Json) -> Json:
    return {"type": "object", "required": list(required), "properties": properties}


def json_body(schema: Json, description: str) -> Json:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def errors(*codes: int) -> Json:
    return {str(code): json_body(ref("Error"), ERROR_REASONS[code]) for code in codes}


def operation(
    summary: str,
    tag: str,
    responses: Json,
    *,
    parameters: Iterable[Json] = (),
    body: Json | None = None,
    secured: bool = True,
    description: str | None = None,
) -> Json:
    op: Json = {"summary": summary, "tags": [tag], "responses": responses}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = list(parameters)
    if body is not None:
        op["requestBody"] = body
    if not secured:
        op["security"] = []
    return op


def path_id(name: str, what: str) -> Json:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"The {what}'s id.",
        "schema": {"type": "string", "format": "uuid"},
    }


def query(name: str, schema: Json, description: str) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def header(name: str, schema: Json, description: str, *, required: bool = False) -> Json:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "schema": schema,
        "description": description,
    }


STATUS = {"type": "string", "enum": ["queued", "processing", "succeeded", "failed", "cancelled"]}
STAGE = {
    "type": "string",
    "enum": ["queued", "fetching", "uploading", "preparing", "analyzing", "finalizing", "done"],
}
PROMPT = {
    "type": "string",
    "maxLength": 1000,
    "description": "Context for the local engine's model: the subject, the spelling of names.",
}
HOTWORDS = {
    "type": "string",
    "maxLength": 1000,
    "description": "Terms the local engine's model should favour (key terms).",
}
WORD = obj(
    ["start_ms", "end_ms", "text"],
    start_ms={"type": "integer", "minimum": 0},
    end_ms={"type": "integer", "minimum": 0},
    text={"type": "string"},
    probability={"type": "number", "minimum": 0, "maximum": 1},
)
TIMESTAMP = {"type": "string", "format": "date-time"}
UUID = {"type": "string", "format": "uuid"}
CURSOR = query("cursor", {"type": "string"}, "`nextCursor` of the previous page.")
LIMIT = query("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "Page size (50).")

SCHEMAS: Json = {
    "Error": obj(
        ["error"],
        error=obj(
            ["code", "message"],
            code={"type": "string", "description": "Stable code, e.g. `audio_unreadable`."},
            message={"type": "string", "description": "What a person reads."},
        ),
    ),
    "RunError": nullable(
        obj(["code", "message"], code={"type": "string"}, message={"type": "string"})
    ),
    "Health": obj(["status"], status={"type": "string", "enum": ["ok"]}),
    "Readiness": obj(
        ["status", "checks"],
        status={"type": "string", "enum": ["ready", "not ready"]},
        checks={
            "type": "object",
            "description": "`database`, `migrations` and `listener`, each `ok`/`current` "
            "when healthy, else what is wrong.",
            "additionalProperties": {"type": "string"},
        },
        model=obj(
            ["name", "present"],
            name={"type": "string", "description": "WHISPER_MODEL."},
            present={
                "type": "boolean",
                "description": "Whether it is on this machine; if not, the first local run "
                "downloads it (readiness does not depend on it).",
            },
        ),
    ),
    "Audio": obj(
        ["id", "owner", "filename", "sizeBytes", "durationMs", "sha256", "createdAt"],
        id=UUID,
        owner={"type": "string"},
        filename={"type": "string"},
        contentType=nullable({"type": "string"}),
        sizeBytes={"type": "integer", "minimum": 0},
        durationMs={"type": "integer", "minimum": 0},
        sampleRate=nullable({"type": "integer"}),
        channels=nullable({"type": "integer"}),
        sha256={"type": "string"},
        createdAt=TIMESTAMP,
    ),
    "AudioPage": obj(
        ["items", "nextCursor"],
        items={"type": "array", "items": ref("Audio")},
        nextCursor=nullable({"type": "string"}),
    ),
    "Segment": obj(
        ["start_ms", "end_ms", "text"],
        start_ms={"type": "integer", "minimum": 0},
        end_ms={"type": "integer", "minimum": 0},
        text={"type": "string"},
        speaker={"type": "string"},
        words={"type": "array", "items": WORD, "description": "When the engine gives them."},
    ),
    "Transcript": obj(
        ["text", "segments"],
        text={"type": "string"},
        language=nullable({"type": "string"}),
        language_probability={"type": "number", "description": "For a detected language."},
        segments={"type": "array", "items": ref("Segment")},
    ),
    "Run": obj(
        ["id", "audioId", "owner", "engine", "status", "stage", "progress", "attempts", "error"],
        id=UUID,
        audioId={"description": "Null while a worker fetches `sourceUrl`.", **nullable(UUID)},
        sourceUrl={"type": "string", "description": "The audio URL the run was submitted with."},
        webhook=obj(
            ["url", "events"],
            url={"type": "string"},
            events={"type": "array", "items": {"type": "string"}},
        ),
        owner={"type": "string"},
        engine={"type": "string"},
        model=nullable({"type": "string"}),
        language=nullable({"type": "string"}),
        prompt=nullable(PROMPT),
        hotwords=nullable(HOTWORDS),
        status=STATUS,
        stage=STAGE,
        progress={"type": "integer", "minimum": 0, "maximum": 100},
        attempts={"type": "integer", "minimum": 0},
        error=ref("RunError"),
        createdAt=TIMESTAMP,
        startedAt=nullable(TIMESTAMP),
        finishedAt=nullable(TIMESTAMP),
        noSpeech={
            "type": "boolean",
            "description": "On a succeeded run: true when nothing was heard (a silent recording "
            "succeeds with an empty transcript).",
        },
        transcript={
            "description": "Present on single-run reads; null until the run succeeded.",
            **nullable(ref("Transcript")),
        },
    ),
    "RunPage": obj(
        ["items", "nextCursor"],
        items={"type": "array", "items": ref("Run")},
        nextCursor=nullable({"type": "string"}),
    ),
    "RunRequest": {
        "description": "`audioId`, or `audioUrl` for audio fetched from a URL.",
        **obj(
            [],
            audioId=UUID,
            audioUrl=ref("AudioUrl"),
            engine={"type": "string", "description": "TAPELINE_ENGINE when absent."},
            language={"type": "string"},
            model={"type": "string"},
            prompt=PROMPT,
            hotwords=HOTWORDS,
            webhookUrl=ref("WebhookUrl"),
            webhookEvents=ref("WebhookEvents"),
        ),
    },
    "TranscribeForm": obj(
        ["file"],
        file={"type": "string", "contentMediaType": "application/octet-stream"},
        engine={"type": "string"},
        language={"type": "string"},
        model={"type": "string"},
        prompt=PROMPT,
        hotwords=HOTWORDS,
        webhookUrl=ref("WebhookUrl"),
        webhookEvents={"type": "string", "description": "Comma-separated event names."},
    ),
    "TranscribeUrl": obj(
        ["url"],
        url=ref("AudioUrl"),
        engine={"type": "string"},
        language={"type": "string"},
        model={"type": "string"},
        webhookUrl=ref("WebhookUrl"),
        webhookEvents=ref("WebhookEvents"),
    ),
    "AudioUrl": {
        "type": "string",
        "format": "uri",
        "description": "An http(s) URL Tapeline fetches (FETCH_TIMEOUT_MS, MAX_UPLOAD_BYTES, "
        "FETCH_MAX_REDIRECTS; private addresses only with FETCH_ALLOW_PRIVATE). Files up to "
        "TRANSCRIBE_SYNC_MAX_BYTES are fetched in the request; larger ones by a worker, in "
        "the run's `fetching` stage.",
    },
    "WebhookUrl": {
        "type": "string",
        "format": "uri",
        "description": "Where the run's Standard Webhooks go (the token's default when absent).",
    },
    "WebhookEvents": {
        "type": "array",
        "items": {
            "type": "string",
            "enum": ["run.started", "run.succeeded", "run.failed", "run.cancelled"],
        },
        "description": "run.succeeded, run.failed and run.cancelled when absent.",
    },
    "WebhookDelivery": {
        "description": "One event sent to one URL (its id is the `webhook-id` header), with "
        "every attempt.",
        **obj(
            ["id", "event", "url", "status", "attempts"],
            id={"type": "string"},
            event={"type": "string"},
            url={"type": "string"},
            status=nullable(
                {"type": "string", "enum": ["pending", "succeeded", "failed", "cancelled"]}
            ),
            nextAttemptAt=nullable(TIMESTAMP),
            createdAt=TIMESTAMP,
            attempts={
                "type": "array",
                "items": obj(
                    ["id", "attempt", "durationMs"],
                    id={"type": "integer"},
                    attempt={"type": "integer", "minimum": 1},
                    statusCode=nullable({"type": "integer"}),
                    durationMs={"type": "integer"},
                    error=nullable({"type": "string"}),
                    createdAt=TIMESTAMP,
                ),
            },
        ),
    },
    "WebhookDeliveryPage": obj(["items"], items={"type": "array", "items": ref("WebhookDelivery")}),
    "Progress": obj(
        ["runId", "audioId", "status", "stage", "progress", "timeElapsed", "jobs", "error"],
        runId=UUID,
        audioId=nullable(UUID),
        status=STATUS,
        stage=STAGE,
        progress={"type": "integer", "minimum": 0, "maximum": 100},
        timeElapsed={"type": "integer", "description": "Milliseconds since the run was created."},
        estimatedTimeRemaining=nullable({"type": "number", "description": "Seconds."}),
        audio=obj(
            ["id", "filename"],
            id=nullable(UUID),
            filename=nullable({"type": "string"}),
            durationMs={"type": "integer"},
            sizeBytes={"type": "integer"},
        ),
        jobs={
            "type": "array",
            "items": obj(
                ["id", "jobType", "status", "attempts"],
                id={"type": "integer"},
                jobType={"type": "string"},
                status=STATUS,
                attempts={"type": "integer"},
                lastError=nullable({"type": "string"}),
                runAfter=TIMESTAMP,
            ),
        },
        error=ref("RunError"),
        waiting={
            "type": "string",
            "description": "Set while the run's job waits for a worker that serves it, e.g. "
            "`waiting for a worker that serves local/large-v3`.",
        },
    ),
    "RunStreamMessage": {
        "description": "The JSON of one unnamed SSE message on a per-run stream. `init` is "
        "the /progress shape; `update` a transition or a progress tick; `done` carries "
        "`transcriptUrl`; `error` carries `error` (`failed` or `cancelled`). `partial` is a "
        "finished stretch of the recording (`chunkIndex`, `startMs`, `endMs`, `segments` with "
        "absolute times), sent as each one finishes, possibly out of order; on connect, the "
        "ones finished so far follow `init`. The text so far is the union of the partials "
        "since the run last `started` (a retry starts over); `done` always comes after them.",
        **obj(
            ["event", "runId"],
            event={"type": "string", "enum": ["init", "update", "partial", "done", "error"]},
            runId=UUID,
            audioId=UUID,
            transition={
                "type": "string",
                "description": "What happened: queued, started, stage, progress, "
                "retry_scheduled, requeued, succeeded, failed, cancelled, ...",
            },
            status=STATUS,
            stage=STAGE,
            progress={"type": "integer"},
            attempts={"type": "integer"},
            error=ref("RunError"),
            transcriptUrl={"type": "string"},
            chunkIndex={"type": "integer", "minimum": 0},
            startMs={"type": "integer", "minimum": 0},
            endMs={"type": "integer", "minimum": 0},
            segments={"type": "array", "items": ref("Segment")},
        ),
    },
    "GlobalStreamMessage": {
        "description": "The JSON of one unnamed SSE message on the global stream: first a "
        "`snapshot` of active runs, then `update`, `done` and `error` messages of every run.",
        **obj(
            ["event"],
            event={"type": "string", "enum": ["snapshot", "update", "done", "error"]},
            runs={"type": "array", "items": {"type": "object"}},
            runId=UUID,
            status=STATUS,
            stage=STAGE,
            progress={"type": "integer"},
            error=ref("RunError"),
            transcriptUrl={"type": "string"},
        ),
    },
    "WorkerState": obj(
        ["worker", "streams", "process", "workers", "queue"],
        worker=nullable({"type": "object"}),
        streams=obj(
            ["subscribers", "listening", "delivered"],
            subscribers={"type": "integer"},
            listening={"type": "boolean"},
            delivered={"type": "integer"},
            tasks={"type": "integer"},
        ),
        process=obj(["pid"], pid={"type": "integer"}, rssBytes={"type": "integer"}),
        workers={
            "type": "array",
            "items": obj(
                ["id", "state", "heartbeatAt"],
                id={"type": "string"},
                hostname={"type": "string"},
                pid={"type": "integer"},
                state={"type": "string"},
                concurrency={"type": "integer"},
                currentJobs={"type": "array", "items": {"type": "integer"}},
                startedAt=TIMESTAMP,
                heartbeatAt=TIMESTAMP,
                serves=nullable(
                    {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "What it claims (`local/base`, `gemini`); null: all.",
                    }
                ),
            ),
        },
        queue={"type": "object", "additionalProperties": {"type": "integer"}},
        waiting={
            "type": "array",
            "description": "Queued jobs no live worker serves, by what they need.",
            "items": obj(
                ["needs", "jobs", "message"],
                needs={"type": "string"},
                jobs={"type": "integer"},
                message={"type": "string"},
            ),
        },
    ),
    "Upload": {
        "description": "Tapeline's view of a resumable (tus) upload.",
        **obj(
            ["id", "offset"],
            id={"type": "string"},
            offset={"type": "integer", "minimum": 0},
            length=nullable({"type": "integer", "minimum": 0}),
            complete={"type": "boolean"},
            audioId=nullable(UUID),
            metadata={"type": "object", "additionalProperties": {"type": "string"}},
            createdAt=TIMESTAMP,
            expiresAt=nullable(TIMESTAMP),
        ),
    },
}


def sse(description: str, message_schema: str) -> Json:
    return {
        "description": description,
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "string",
                    "description": "Server-sent events. Each message: `id:` (persisted "
                    "transitions only) and `data:` one JSON object; comment heartbeats keep "
                    "the connection open. Resume with `Last-Event-ID`.",
                },
                "x-message-schema": ref(message_schema),
            }
        },
    }


LAST_EVENT_ID = (
    header("Last-Event-ID", {"type": "string", "pattern": "^[0-9]*$"}, "Resume after this id."),
    query("lastEventId", {"type": "string", "pattern": "^[0-9]*$"}, "Same, for EventSource."),
)

HEALTH: Json = {
    "/healthz": {
        "get": operation(
            "The process answers",
            "operations",
            {"200": json_body(ref("Health"), "Alive.")},
            secured=False,
        )
    },
    "/readyz": {
        "get": operation(
            "Database reachable, migrations current, event listener alive",
            "operations",
            {
                "200": json_body(ref("Readiness"), "Ready for traffic."),
                "503": json_body(ref("Readiness"), "Not ready; `checks` says why."),
            },
            secured=False,
        )
    },
}

AUDIO: Json = {
    "/api/audio": {
        "post": operation(
            "Upload audio",
            "audio",
            {
                "201": json_body(ref("Audio"), "Stored and probed."),
                **errors(400, 401, 413, 415, 422),
            },
            body={
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": obj(
                            ["file"],
                            file={"type": "string", "contentMediaType": "application/octet-stream"},
                        )
                    },
                    "application/json": {"schema": obj(["url"], url=ref("AudioUrl"))},
                },
            },
        ),
        "get": operation(
            "Your audio, newest first",
            "audio",
            {"200": json_body(ref("AudioPage"), "A page."), **errors(400, 401)},
            parameters=[LIMIT, CURSOR],
        ),
    },
    "/api/audio/{audioId}": {
        "get": operation(
            "One audio file",
            "audio",
            {"200": json_body(ref("Audio"), "The audio."), **errors(401, 404)},
            parameters=[path_id("audioId", "audio")],
        ),
        "delete": operation(
            "Delete an audio file with its runs, their jobs, events and transcripts",
            "audio",
            {"204": {"description": "Deleted."}, **errors(401, 404)},
            parameters=[path_id("audioId", "audio")],
        ),
        "patch": operation(
            "Rename an audio file",
            "audio",
            {"200": json_body(ref("Audio"), "Renamed."), **errors(400, 401, 404)},
            parameters=[path_id("audioId", "audio")],
            body={"required": True, "content": {"application/json": {"schema": ref("Rename")}}},
        ),
    },
}

RUN_ID = path_id("runId", "run")
SUBMITTED = {
    "200": json_body(ref("Run"), "Short audio, transcribed in the request."),
    "202": json_body(ref("Run"), "Queued."),
}

RUNS: Json = {
    "/api/transcribe": {
        "post": operation(
            "Upload and run in one call",
            "runs",
            {**SUBMITTED, **errors(400, 401, 404, 413, 415, 422)},
            body={
                "required": True,
                "content": {
                    "multipart/form-data": {"schema": ref("TranscribeForm")},
                    "application/json": {"schema": ref("TranscribeUrl")},
                },
            },
        )
    },
    "/api/runs": {
        "post": operation(
            "Queue a run for uploaded audio",
            "runs",
            {**SUBMITTED, **errors(400, 401, 404, 422)},
            body={"required": True, "content": {"application/json": {"schema": ref("RunRequest")}}},
        ),
        "get": operation(
            "Your runs, newest first; with `q`, your finished runs whose transcript has the words",
            "runs",
            {
                "200": json_body(
                    {"anyOf": [ref("RunPage"), ref("RunSearchPage")]},
                    "A page; with `q`, the best matches first (`RunSearchPage`).",
                ),
                **errors(400, 401),
            },
            parameters=[
                query("status", STATUS, "Only runs in this status."),
                LIMIT,
                CURSOR,
                query(
                    "q",
                    {"type": "string", "maxLength": 200},
                    "Full-text search: every word must be in the transcript (CJK words as "
                    "adjacent characters); answers at most `limit` (20, up to 100) runs.",
                ),
            ],
        ),
    },
    "/api/runs/{runId}": {
        "get": operation(
            "One run with its transcript",
            "runs",
            {"200": json_body(ref("Run"), "The run."), **errors(401, 404)},
            parameters=[RUN_ID],
        )
    },
    "/api/runs/{runId}/transcript": {
        "get": operation(
            "The transcript as txt, srt, vtt or json (with partial=1, what is finished so far)",
            "runs",
            {
                "200": {
                    "description": "The transcript in the asked format.",
                    "headers": {
                        "Transcript-Complete": {
                            "description": "`true` for a succeeded run's transcript, `false` "
                            "for the partial one of a run not finished.",
                            "schema": {"type": "string", "enum": ["true", "false"]},
                        }
                    },
                    "content": {
                        "application/json": {"schema": ref("Transcript")},
                        "text/plain": {"schema": {"type": "string"}},
                        "application/x-subrip": {"schema": {"type": "string"}},
                        "text/vtt": {"schema": {"type": "string"}},
                    },
                },
                **errors(400, 401, 404, 409),
            },
            parameters=[
                RUN_ID,
                query("format", {"type": "string", "enum": ["txt", "srt", "vtt", "json"]}, "json."),
                query(
                    "partial",
                    {"type": "string", "enum": ["1", "0", "true", "false"]},
                    "1: for a run not finished, the chunks transcribed so far (its latest "
                    "attempt's) instead of a 409.",
                ),
            ],
        )
    },
    "/api/runs/{runId}/progress": {
        "get": operation(
            "Where the run stands (the polling fallback)",
            "runs",
            {"200": json_body(ref("Progress"), "Progress."), **errors(401, 404)},
            parameters=[RUN_ID],
        )
    },
    "/api/runs/{runId}/cancel": {
        "post": operation(
            "Cancel an active run",
            "runs",
            {"200": json_body(ref("Run"), "Cancelled."), **errors(401, 404, 409)},
            parameters=[RUN_ID],
        )
    },
    "/api/runs/{runId}/retry": {
        "post": operation(
            "Retry a failed or cancelled run",
            "runs",
            {"202": json_body(ref("Run"), "Queued again."), **errors(401, 404, 409)},
            parameters=[RUN_ID],
        )
    },
}

STREAMS: Json = {
    "/api/runs/{runId}/events": {
        "get": operation(
            "Live status of one run (SSE)",
            "streams",
            {
                "200": sse(
                    "`init` (or the replay after Last-Event-ID), `update`s, then `done` "
                    "or `error`; the stream ends after the final message.",
                    "RunStreamMessage",
                ),
                **errors(400, 401, 404),
            },
            parameters=[RUN_ID, *LAST_EVENT_ID],
        )
    },
    "/api/runs/events": {
        "get": operation(
            "Live status of all your runs (SSE)",
            "streams",
            {
                "200": sse(
                    "`snapshot` (or the replay after Last-Event-ID), then every "
                    "change, without end.",
                    "GlobalStreamMessage",
                ),
                **errors(400, 401),
            },
            parameters=list(LAST_EVENT_ID),
        )
    },
}

ADMIN_STATE = {"200": json_body(ref("WorkerState"), "Workers and queue."), **errors(401, 403)}
ADMIN: Json = {
    "/api/admin/worker": {
        "get": operation("This process's worker, all workers, queue depth", "admin", ADMIN_STATE),
        "post": operation(
            "Start this process's worker",
            "admin",
            {"202": json_body(ref("WorkerState"), "Started."), **errors(401, 403)},
        ),
        "delete": operation("Stop this process's worker gracefully", "admin", ADMIN_STATE),
    }
}

OPERATIONS: Json = {
    "/": {
        "get": operation(
            "The web page (sign in, upload, live runs, transcripts, workers)",
            "operations",
            {
                "200": {
                    "description": "HTML; its scripts and styles are under /web/.",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                }
            },
            secured=False,
        )
    },
    "/metrics": {
        "get": operation(
            "Prometheus metrics of this process",
            "operations",
            {
                "200": {
                    "description": "Prometheus text exposition format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
            secured=False,
        )
    },
    "/openapi.json": {
        "get": operation(
            "This document",
            "operations",
            {"200": json_body({"type": "object"}, "OpenAPI 3.1.")},
            secured=False,
        )
    },
}

TUS_RESUMABLE = header(
    "Tus-Resumable", {"type": "string", "enum": ["1.0.0"]}, "tus protocol version.", required=True
)
UPLOAD_ID = {
    "name": "uploadId",
    "in": "path",
    "required": True,
    "description": "The upload's id (the last segment of `Location`).",
    "schema": {"type": "string"},
}
INT_HEADER = {"schema": {"type": "integer", "minimum": 0}}
TUS_HEADERS: Json = {
    "Tus-Resumable": {"schema": {"type": "string"}, "description": "1.0.0"},
}
OFFSET_HEADERS: Json = {
    **TUS_HEADERS,
    "Upload-Offset": {**INT_HEADER, "description": "Bytes received so far."},
}

TUS_OPTIONS = operation(
    "tus capabilities",
    "uploads",
    {
        "204": {
            "description": "Versions, extensions and the size limit.",
            "headers": {
                **TUS_HEADERS,
                "Tus-Version": {"schema": {"type": "string"}, "description": "1.0.0"},
                "Tus-Extension": {
                    "schema": {"type": "string"},
                    "description": "e.g. creation,creation-with-upload,termination,"
                    "expiration,checksum",
                },
                "Tus-Max-Size": {**INT_HEADER, "description": "MAX_UPLOAD_BYTES."},
            },
        }
    },
    secured=False,
)

UPLOADS: Json = {
    "/api/uploads": {
        "options": TUS_OPTIONS,
        "post": operation(
            "Create a resumable upload (tus creation)",
            "uploads",
            {
                "201": {
                    "description": "Created; `Location` is the upload's URL.",
                    "headers": {
                        **OFFSET_HEADERS,
                        "Location": {"schema": {"type": "string"}, "required": True},
                    },
                },
                **errors(400, 401, 412, 413, 415, 422, 460, 507),
            },
            parameters=[
                TUS_RESUMABLE,
                header("Upload-Length", {"type": "integer", "minimum": 0}, "Total bytes."),
                header("Upload-Defer-Length", {"type": "string", "enum": ["1"]}, "Length later."),
                header(
                    "Upload-Metadata",
                    {"type": "string"},
                    "Comma-separated `key base64value` pairs: filename, filetype, engine, "
                    "language, model, prompt, hotwords, autoTranscribe.",
                ),
            ],
            body={
                "required": False,
                "content": {"application/offset+octet-stream": {"schema": {"type": "string"}}},
                "description": "creation-with-upload: the first bytes.",
            },
        ),
    },
    "/api/uploads/{uploadId}": {
        "options": TUS_OPTIONS,
        "head": operation(
            "Where a resumable upload stands (tus)",
            "uploads",
            {
                "200": {
                    "description": "The offset to resume from; `Cache-Control: no-store`.",
                    "headers": {
                        **OFFSET_HEADERS,
                        "Upload-Length": {**INT_HEADER, "description": "Total, once known."},
                    },
                },
                "404": {"description": "No such upload."},
                "410": {"description": "The upload expired or was terminated."},
                "412": {"description": "`Tus-Resumable` is missing or not 1.0.0."},
            },
            parameters=[UPLOAD_ID, TUS_RESUMABLE],
        ),
        "patch": operation(
            "Append bytes at Upload-Offset (tus core)",
            "uploads",
            {
                "204": {"description": "Appended.", "headers": OFFSET_HEADERS},
                **errors(400, 401, 404, 409, 410, 412, 413, 415, 422, 423, 460, 507),
            },
            parameters=[
                UPLOAD_ID,
                TUS_RESUMABLE,
                header(
                    "Upload-Offset",
                    {"type": "integer", "minimum": 0},
                    "Must equal the server's offset, else 409.",
                    required=True,
                ),
                header("Upload-Checksum", {"type": "string"}, "`sha1 <base64>` (checksum)."),
            ],
            body={
                "required": True,
                "content": {"application/offset+octet-stream": {"schema": {"type": "string"}}},
            },
        ),
        "delete": operation(
            "Terminate an upload (tus termination)",
            "uploads",
            {
                "204": {"description": "Terminated.", "headers": TUS_HEADERS},
                **errors(401, 404, 410, 412),
            },
            parameters=[UPLOAD_ID, TUS_RESUMABLE],
        ),
        "get": operation(
            "A resumable upload as JSON",
            "uploads",
            {"200": json_body(ref("Upload"), "The upload."), **errors(401, 404, 410)},
            parameters=[UPLOAD_ID],
        ),
    },
}

WEBHOOK_ID = {
    "name": "deliveryId",
    "in": "path",
    "required": True,
    "description": "A delivery's id (`msg_…`), or the id of one of its attempts.",
    "schema": {"type": "string"},
}

WEBHOOKS: Json = {
    "/api/runs/{runId}/webhooks": {
        "get": operation(
            "The run's webhook deliveries, with every attempt",
            "webhooks",
            {"200": json_body(ref("WebhookDeliveryPage"), "Deliveries."), **errors(401, 404)},
            parameters=[RUN_ID],
        )
    },
    "/api/runs/{runId}/webhooks/{deliveryId}/redeliver": {
        "post": operation(
            "Send a delivery again (same webhook-id and body, one attempt)",
            "webhooks",
            {
                "202": json_body(ref("WebhookDelivery"), "Queued."),
                **errors(401, 404, 409),
            },
            parameters=[RUN_ID, WEBHOOK_ID],
        )
    },
}

OPENAI_ERROR_REASONS = {
    400: "A field, the file or the model is not usable (`param` names it; OpenAI's 400).",
    401: "No valid token as the API key (`invalid_api_key`).",
    409: "The run was cancelled (`cancelled`).",
    413: "Larger than MAX_UPLOAD_BYTES (`upload_too_large`), or than the engine takes.",
    429: "The provider kept rate-limiting the run (`upstream_rate_limited`).",
    500: "The run failed inside Tapeline (`internal_error`).",
    502: "The provider's answers were unusable or its key was refused.",
    503: "The run could not finish here (a transient failure after its retries).",
    504: "The run took longer than JOB_TIMEOUT_MS (`job_timeout`).",
    507: "The server's data disk is below MIN_FREE_DISK_MB (`insufficient_storage`).",
}


def openai_errors(*codes: int) -> Json:
    return {str(c): json_body(ref("OpenAIError"), OPENAI_ERROR_REASONS[c]) for c in codes}


OPENAI_MODEL = obj(
    ["id", "object", "created", "owned_by"],
    id={"type": "string", "description": "`whisper-1`, an engine's name, or OPENAI_COMPAT_MODELS'"},
    object={"type": "string", "enum": ["model"]},
    created={"type": "integer", "description": "When this process started (Unix seconds)."},
    owned_by={"type": "string"},
)
OPENAI_USAGE = obj(
    ["type", "seconds"],
    type={"type": "string", "enum": ["duration"]},
    seconds={"type": "number"},
)
SCHEMAS.update(
    {
        "OpenAIError": obj(
            ["error"],
            error=obj(
                ["message", "type", "param", "code"],
                message={"type": "string"},
                type={"type": "string", "description": "`invalid_request_error`, `server_error`…"},
                param=nullable({"type": "string"}),
                code=nullable({"type": "string", "description": "Tapeline's stable code."}),
            ),
        ),
        "OpenAIModel": OPENAI_MODEL,
        "OpenAIModelList": obj(
            ["object", "data"],
            object={"type": "string", "enum": ["list"]},
            data={"type": "array", "items": OPENAI_MODEL},
        ),
        "OpenAITranscriptionForm": obj(
            ["file", "model"],
            file={"type": "string", "contentMediaType": "application/octet-stream"},
            model={"type": "string", "description": "A name GET /v1/models lists."},
            language={"type": "string", "description": "ISO-639-1, e.g. `en`."},
            prompt={"type": "string", "description": "Guides spelling and style."},
            temperature={"type": "number", "minimum": 0, "maximum": 1},
            response_format={
                "type": "string",
                "enum": ["json", "text", "srt", "vtt", "verbose_json"],
            },
            **{
                "timestamp_granularities[]": {
                    "type": "array",
                    "items": {"type": "string", "enum": ["segment", "word"]},
                    "description": "With `verbose_json` only.",
                }
            },
            stream={"type": "boolean"},
        ),
        "OpenAITranscription": {
            "description": "`json` (`text`, `usage`) or `verbose_json` (also `task`, "
            "`language`, `duration`, `segments` and, when asked, `words`). Keep-alive spaces "
            "may come before it.",
            **obj(
                ["text"],
                text={"type": "string"},
                usage=OPENAI_USAGE,
                task={"type": "string"},
                language={"type": "string"},
                duration={"type": "number"},
                segments={"type": "array", "items": {"type": "object"}},
                words={
                    "type": "array",
                    "items": obj(
                        ["word", "start", "end"],
                        word={"type": "string"},
                        start={"type": "number"},
                        end={"type": "number"},
                    ),
                },
            ),
        },
    }
)

OPENAI: Json = {
    "/v1/audio/transcriptions": {
        "post": operation(
            "OpenAI-compatible transcription: a real run, answered when it is done",
            "openai",
            {
                "200": {
                    "description": "The transcript in `response_format`, or with `stream` "
                    "`transcript.text.delta` events then `transcript.text.done` (SSE). While "
                    "the run is on its way, whitespace (or SSE comments) keeps the connection "
                    "alive every SSE_HEARTBEAT_MS; a failure after that is an OpenAI error "
                    "object in the body.",
                    "content": {
                        "application/json": {
                            "schema": {"anyOf": [ref("OpenAITranscription"), ref("OpenAIError")]}
                        },
                        "text/plain": {"schema": {"type": "string"}},
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                **openai_errors(400, 401, 409, 413, 429, 500, 502, 503, 504, 507),
            },
            body={
                "required": True,
                "content": {"multipart/form-data": {"schema": ref("OpenAITranscriptionForm")}},
            },
            description="The API token is the API key (`Authorization: Bearer`). Errors are "
            'OpenAI\'s `{"error": {"message", "type", "param", "code"}}`.',
        )
    },
    "/v1/models": {
        "get": operation(
            "The model names /v1/audio/transcriptions accepts here",
            "openai",
            {"200": json_body(ref("OpenAIModelList"), "The models."), **openai_errors(401)},
        )
    },
    "/v1/models/{model}": {
        "get": operation(
            "One model",
            "openai",
            {
                "200": json_body(ref("OpenAIModel"), "The model."),
                **openai_errors(401),
                "404": json_body(
                    {"anyOf": [ref("OpenAIError"), ref("Error")]},
                    "No such model; an empty name is no route at all (Tapeline's 404).",
                ),
            },
            parameters=[
                {
                    "name": "model",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "A name GET /v1/models lists.",
                }
            ],
        )
    },
}

# --- listening and searching -------------------------------------------------------------------

SCHEMAS.update(
    {
        "Rename": obj(["filename"], filename={"type": "string", "minLength": 1, "maxLength": 255}),
        "SearchMatch": obj(
            ["startMs", "endMs", "snippet", "highlights"],
            startMs={"type": "integer", "minimum": 0},
            endMs={"type": "integer", "minimum": 0},
            snippet={"type": "string", "description": "The matching segment's text (or a part)."},
            highlights={
                "type": "array",
                "description": "[start, end) character offsets of the matched words in `snippet`.",
                "items": {"type": "array", "items": {"type": "integer"}, "minItems": 2},
            },
        ),
        "RunSearchResult": {
            "allOf": [
                ref("Run"),
                obj(
                    ["filename", "matches"],
                    filename={"type": "string"},
                    matches={"type": "array", "items": ref("SearchMatch")},
                ),
            ]
        },
        "RunSearchPage": obj(
            ["items", "nextCursor"],
            items={"type": "array", "items": ref("RunSearchResult")},
            nextCursor={"type": "null"},
        ),
    }
)

LISTEN: Json = {
    "/api/audio/{audioId}/content": {
        "get": operation(
            "The recording itself, for a player (HTTP Range)",
            "audio",
            {
                "200": {
                    "description": "The whole file, with `Accept-Ranges: bytes`.",
                    "content": {"audio/*": {"schema": {"type": "string"}}},
                },
                "206": {
                    "description": "The asked byte range, with `Content-Range`.",
                    "content": {"audio/*": {"schema": {"type": "string"}}},
                },
                "307": {"description": "On S3 storage: a presigned URL valid for 5 minutes."},
                **errors(401, 404, 410, 416),
            },
            parameters=[
                path_id("audioId", "audio"),
                header("Range", {"type": "string"}, "`bytes=0-1023`, `bytes=1024-`, `bytes=-500`."),
            ],
            description="An `<audio>` element cannot send headers: pass `?access_token=`.",
        )
    },
}

AREAS: tuple[Mapping[str, Json], ...] = (
    HEALTH,
    AUDIO,
    RUNS,
    STREAMS,
    ADMIN,
    OPERATIONS,
    LISTEN,
    WEBHOOKS,
    OPENAI,
    UPLOADS,
)

# --- limits: what every operation may also answer when a limit is reached ----------------------

LIMIT_REASONS = {
    "401": "METRICS_TOKEN is set and was not sent as a bearer token (`unauthorized`).",
    "403": "Past your quota of stored bytes or open uploads (`quota_exceeded`).",
    "413": "The body is larger than accepted (`upload_too_large`, `body_too_large`).",
    "422": "Unreadable audio, an unavailable engine, or a model not on the engine's allow-list "
    "(`audio_unreadable`, `engine_not_configured`, `model_not_allowed`).",
    "429": "Too many failed authentications from this address (`too_many_requests`, with "
    "Retry-After), or, on a stream, as many streams open as one owner may hold "
    "(`too_many_streams`).",
}
QUOTA_OPERATIONS = {("/api/audio", "post"), ("/api/transcribe", "post"), ("/api/uploads", "post")}
QUERY_TOKEN_PATHS = {"/api/runs/events", "/api/runs/{runId}/events", "/api/audio/{audioId}/content"}


def _answer(path: str, method: str, reason: str) -> Json:
    """An error answer in the shape of its area (OpenAI's under /v1); HEAD's carry no body."""
    if method == "head":
        return {"description": reason}
    return json_body(ref("OpenAIError") if path.startswith("/v1/") else ref("Error"), reason)


def _limited(paths: Json) -> Json:
    """`paths` with the limits' answers added: 429 on every authenticated operation, 413 on
    every JSON body, 403 where a quota applies, 401 on /metrics; `?access_token=` only on
    the streams and the audio content."""
    limited: Json = {}
    for path, operations in paths.items():
        limited[path] = {}
        for method, spec in operations.items():
            spec = {**spec, "responses": dict(spec["responses"])}
            responses = spec["responses"]

            codes = []
            if spec.get("security") != []:
                codes.append("429")
                if "401" not in responses:
                    responses["401"] = _answer(path, method, ERROR_REASONS[401])
                if path in QUERY_TOKEN_PATHS:
                    spec["security"] = [{"bearer": []}, {"accessToken": []}]
            if "application/json" in spec.get("requestBody", {}).get("content", {}):
                codes.append("413")
            if (path, method) in QUOTA_OPERATIONS:
                codes.append("403")
            if "422" in responses:
                codes.append("422")
            if path == "/metrics":
                codes.append("401")
            for code in codes:
                responses[code] = _answer(path, method, LIMIT_REASONS[code])
            limited[path][method] = spec
    return limited


@cache
def document() -> Json:
    """The whole document; every area's paths, the shared schemas and the two ways to auth."""
    paths: Json = {}
    for area in AREAS:
        paths.update(area)
    paths = _limited(paths)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tapeline",
            "version": __version__,
            "description": "Long audio in, transcripts out, as background jobs queued in "
            "PostgreSQL, with live status over SSE. Errors are always "
            '`{"error": {"code", "message"}}` with stable codes.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "accessToken": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "access_token",
                    "description": "Only on the event streams and audio content, which a "
                    "browser's EventSource or audio element fetches without headers.",
                },
            },
        },
    }
