"""Every failure Tapeline can report, each a type with a stable code.

The code is what reaches the API (`{"error": {"code", "message"}}`), the SSE events and the
`transcript_run.error_code` column; the docstring is the default message a person reads.
`transient` failures are retried (inside an engine, then by the job queue); the others fail now.
"""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool
from typing import Any, ClassVar


class TapelineError(Exception):
    """Something went wrong inside Tapeline. Try again; if it keeps happening, check the logs."""

    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500
    transient: ClassVar[bool] = False

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        self.details = details
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


# --- request errors -------------------------------------------------------------------------


class InvalidRequest(TapelineError):
    """The request is not valid."""

    code = "invalid_request"
    http_status = 400


class Unauthorized(TapelineError):
    """A valid token is required: send `Authorization: Bearer <token>` or `?access_token=`."""

    code = "unauthorized"
    http_status = 401


class Forbidden(TapelineError):
    """This needs the admin token."""

    code = "forbidden"
    http_status = 403


class TooManyRequests(TapelineError):
    """Too many failed authentications from this address; wait before trying again."""

    code = "too_many_requests"
    http_status = 429

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.details.get("retry_after_s", 60))}


class TooManyStreams(TapelineError):
    """You hold as many event streams open as this server allows one owner."""

    code = "too_many_streams"
    http_status = 429


class NotFound(TapelineError):
    """Nothing with that id exists for you."""

    code = "not_found"
    http_status = 404


class Conflict(TapelineError):
    """That is not possible in the run's current state."""

    code = "conflict"
    http_status = 409


class UploadTooLarge(TapelineError):
    """The file is larger than this server accepts (MAX_UPLOAD_BYTES)."""

    code = "upload_too_large"
    http_status = 413


class BodyTooLarge(TapelineError):
    """The request body is larger than this endpoint reads."""

    code = "body_too_large"
    http_status = 413


class QuotaExceeded(TapelineError):
    """This would take you past what the server keeps for one owner."""

    code = "quota_exceeded"
    http_status = 403


class UnsupportedMediaType(TapelineError):
    """Send the audio as multipart/form-data in a field named `file`."""

    code = "unsupported_media_type"
    http_status = 415


# --- audio and engine errors ----------------------------------------------------------------


class AudioUnreadable(TapelineError):
    """The file could not be read as audio: it is empty, truncated or not an audio format.
    Upload a complete wav, mp3, m4a, ogg, opus, flac or webm file."""

    code = "audio_unreadable"
    http_status = 422


class EngineNotConfigured(TapelineError):
    """That transcription engine is not available on this server."""

    code = "engine_not_configured"
    http_status = 422


class ModelNotAllowed(TapelineError):
    """The operator has not allowed that model for this engine; leave `model` out to use the
    engine's configured one, or ask the operator to add it to the engine's allow-list
    (WHISPER_MODELS_ALLOWED, GEMINI_MODELS_ALLOWED, OPENAI_MODELS_ALLOWED)."""

    code = "model_not_allowed"
    http_status = 422


class EngineRefused(TapelineError):
    """The transcription engine refused this audio. Check the file and the run's options."""

    code = "engine_refused"
    http_status = 422


class UpstreamTimeout(TapelineError):
    """The transcription engine did not answer in time."""

    code = "upstream_timeout"
    http_status = 504
    transient = True


class UpstreamUnavailable(TapelineError):
    """The transcription engine is unavailable right now."""

    code = "upstream_unavailable"
    http_status = 503
    transient = True


class JobTimeout(TapelineError):
    """Transcription took longer than this server allows (JOB_TIMEOUT_MS) and was stopped."""

    code = "job_timeout"
    http_status = 504
    transient = True


class WorkerLost(TapelineError):
    """The worker processing this run stopped responding; the run was handed to another worker."""

    code = "worker_lost"
    transient = True


class RunCancelled(TapelineError):
    """The run was cancelled."""

    code = "cancelled"
    http_status = 409


class DatabaseUnavailable(TapelineError):
    """The connection to the database was lost (a restart or a network fault) while this run
    was being processed."""

    code = "database_unavailable"
    http_status = 503
    transient = True


_CONNECTION_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")
"""Connection exceptions, the server shutting down or starting, too many connections."""


def classify(exc: BaseException) -> TapelineError:
    """Turn any exception into a TapelineError, keeping our own types as they are.

    Only what can go away by itself is transient: a timeout, a dropped network or database
    connection. Anything else raised by our code or a library would fail the same way on the
    same input again, so it is an `internal_error` that fails the run at once (the caller
    logs the traceback) with a message that promises nothing.
    """
    if isinstance(exc, TapelineError):
        return exc
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout()
    if is_connection_loss(exc):
        return DatabaseUnavailable(
            f"The connection to the database was lost ({type(exc).__name__})."
        )
    if isinstance(exc, ConnectionError):
        return UpstreamUnavailable(f"A network connection failed ({type(exc).__name__}).")
    if isinstance(exc, BrokenProcessPool):
        return WorkerLost("A transcription process stopped (killed for memory, perhaps).")
    return TapelineError(
        f"Transcription stopped on an unexpected error ({type(exc).__name__}). "
        "The server log has the details."
    )


def is_connection_loss(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) is the database connection dropping or refusing.

    asyncpg's `InternalClientError` ("another operation is in progress") counts: it is what a
    pooled connection whose server went away mid-operation raises on its next use.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "connection_invalidated", False):
            return True
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_CONNECTION_SQLSTATES):
            return True
        if current is not exc and isinstance(current, ConnectionError):
            return True
        if type(current).__name__ == "InternalClientError":
            return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return False


class RecordingTooLong(TapelineError):
    """The recording is longer than this server accepts (MAX_AUDIO_DURATION_MS). Split it into
    shorter files."""

    code = "too_long"
    http_status = 413


class MemoryLimitExceeded(TapelineError):
    """Processing this recording needed more memory than the server gives one process
    (CPU_WORKER_MEMORY_MB). Split it into shorter files."""

    code = "memory_limit_exceeded"
    http_status = 413


class CpuProcessDied(TapelineError):
    """The process working on this recording died twice (killed from outside, or crashed).
    Other work was not affected; try again later, or split the recording."""

    code = "cpu_process_died"
    http_status = 500


class AudioMissing(TapelineError):
    """The run's audio file is no longer in storage (it was deleted). Upload it again."""

    code = "audio_missing"
    http_status = 410


# --- uploads, storage and retention ---------------------------------------------------------


class Deleted(TapelineError):
    """That existed once but was deleted (by its owner or by the retention policy)."""

    code = "deleted"
    http_status = 404


class UploadExpired(TapelineError):
    """The upload was not finished in time (UPLOAD_EXPIRY_HOURS) and was discarded. Start again."""

    code = "upload_expired"
    http_status = 410


class ChecksumMismatch(TapelineError):
    """The chunk's Upload-Checksum does not match the bytes received; the chunk was discarded.
    Send it again from the offset the server reports."""

    code = "checksum_mismatch"
    http_status = 460


class OffsetMismatch(TapelineError):
    """Upload-Offset is not where the upload stands. Ask with HEAD and resume from there."""

    code = "offset_mismatch"
    http_status = 409


class UploadLocked(TapelineError):
    """Another request is writing to this upload right now. Try again shortly."""

    code = "upload_locked"
    http_status = 423


class TusVersionUnsupported(TapelineError):
    """This server speaks tus 1.0.0 (send `Tus-Resumable: 1.0.0`)."""

    code = "tus_version_unsupported"
    http_status = 412


class InsufficientStorage(TapelineError):
    """The server is low on disk space (MIN_FREE_DISK_MB) and refuses uploads for now.
    Try again later or ask the operator to free space."""

    code = "insufficient_storage"
    http_status = 507


class StorageWriteFailed(TapelineError):
    """The transcript could not be stored and read back."""

    code = "storage_write_failed"
    http_status = 503
    transient = True


# --- cloud engines --------------------------------------------------------------------------


class UpstreamRateLimited(TapelineError):
    """The transcription provider is rate-limiting this server's key."""

    code = "upstream_rate_limited"
    http_status = 429
    transient = True


class UpstreamBadResponse(TapelineError):
    """The transcription provider (or a proxy in front of it) sent an answer that is not what
    its API promises, such as an HTML error page or cut-off JSON."""

    code = "upstream_bad_response"
    http_status = 502
    transient = True


class EngineAuthFailed(TapelineError):
    """The transcription provider rejected this server's API key. The operator must check
    GEMINI_API_KEY or OPENAI_API_KEY (and that the key may use the configured model)."""

    code = "engine_auth_failed"
    http_status = 502


class ContentRefused(TapelineError):
    """The transcription provider refused to transcribe this recording's content (a safety or
    policy filter). Try another engine."""

    code = "content_refused"
    http_status = 422


class AudioTooLong(TapelineError):
    """The recording is longer or larger than the transcription provider accepts, even cut
    into chunks. Split it into shorter files, or use another engine."""

    code = "audio_too_long"
    http_status = 413


# --- the offline engine's models ------------------------------------------------------------


class ModelUnavailable(TapelineError):
    """The Whisper model this run needs is not on this machine and could not be downloaded.
    Pre-fetch it with `tapeline models pull NAME` on a machine with network access, or point
    WHISPER_MODEL at a directory holding a CTranslate2 Whisper model."""

    code = "model_unavailable"
    http_status = 503


# --- webhooks and audio by URL --------------------------------------------------------------


class FetchFailed(TapelineError):
    """The audio URL could not be fetched. Check that it is reachable from this server and
    answers 200 with the file."""

    code = "fetch_failed"
    http_status = 422

    def to_dict(self) -> dict[str, Any]:
        """With `status`, the HTTP status the URL answered, when it answered at all."""
        status = self.details.get("status")
        return {**super().to_dict(), **({"status": status} if status is not None else {})}


class FetchUnavailable(FetchFailed):
    """The audio URL's server failed (5xx) or could not be reached. A worker fetching it tries
    again (WORKER_RETRY_DELAYS)."""

    transient = True


class FetchTooLarge(TapelineError):
    """The file at the audio URL is larger than this server accepts (MAX_UPLOAD_BYTES)."""

    code = "too_large"
    http_status = 413


class WebhookFailed(TapelineError):
    """The webhook receiver did not answer 2xx in time. Tapeline tries again on its schedule
    (WEBHOOK_RETRY_DELAYS)."""

    code = "webhook_failed"
    http_status = 502
    transient = True


class WebhookGone(TapelineError):
    """The webhook receiver answered 410 Gone: nothing more is sent to that URL."""

    code = "webhook_gone"
    http_status = 410


class WebhookRefused(TapelineError):
    """The webhook URL resolves to a private, loopback or link-local address, which this
    server does not send to (WEBHOOK_ALLOW_PRIVATE)."""

    code = "webhook_refused"
    http_status = 422


# --- the OpenAI-compatible endpoint ---------------------------------------------------------


class ModelNotFound(TapelineError):
    """No such model here: ask GET /v1/models for the names this server transcribes with."""

    code = "model_not_found"
    http_status = 400


class ShuttingDown(TapelineError):
    """This server is shutting down, so it stopped waiting for the run. The run goes on: read
    it at /api/runs/{runId}, or send the request again to another server."""

    code = "shutting_down"
    http_status = 503


# --- listening and housekeeping -------------------------------------------------------------


class RangeNotSatisfiable(TapelineError):
    """The requested byte range starts past the end of the audio."""

    code = "range_not_satisfiable"
    http_status = 416
