"""Every failure Tapeline can report, each a type with a stable code.

The code is what reaches the API (`{"error": {"code", "message"}}`), the SSE events and the
`transcript_run.error_code` column; the docstring is the default message a person reads.
`transient` failures are retried (inside an engine, then by the job queue); the others fail now.
"""

from __future__ import annotations

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


class EngineRefused(TapelineError):
    """The transcription engine refused this audio. Check the file and the run's options."""

    code = "engine_refused"
    http_status = 422


class UpstreamTimeout(TapelineError):
    """The transcription engine did not answer in time. Tapeline retries this automatically."""

    code = "upstream_timeout"
    http_status = 504
    transient = True


class UpstreamUnavailable(TapelineError):
    """The transcription engine is unavailable right now. Tapeline retries this automatically."""

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


def classify(exc: BaseException) -> TapelineError:
    """Turn any exception into a TapelineError, keeping our own types as they are.

    Anything unknown is an `internal_error` and treated as transient: a bug or a passing
    fault should not lose the user's audio before the retries are spent.
    """
    if isinstance(exc, TapelineError):
        return exc
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout()
    error = TapelineError(f"Unexpected error: {type(exc).__name__}. Tapeline will retry.")
    error.transient = True  # type: ignore[misc]
    return error


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
    """The transcript could not be stored and read back. Tapeline retries this automatically."""

    code = "storage_write_failed"
    http_status = 503
    transient = True


# --- cloud engines --------------------------------------------------------------------------


class UpstreamRateLimited(TapelineError):
    """The transcription provider is rate-limiting this server's key. Tapeline waits as long as
    the provider asks and retries automatically."""

    code = "upstream_rate_limited"
    http_status = 429
    transient = True


class UpstreamBadResponse(TapelineError):
    """The transcription provider (or a proxy in front of it) sent an answer that is not what
    its API promises, such as an HTML error page or cut-off JSON. Tapeline retries this."""

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


# --- listening and housekeeping -------------------------------------------------------------


class RangeNotSatisfiable(TapelineError):
    """The requested byte range starts past the end of the audio."""

    code = "range_not_satisfiable"
    http_status = 416
