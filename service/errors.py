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
