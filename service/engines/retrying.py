"""One policy for every call to a cloud provider: a deadline, a timeout per step, classified
errors, and retries with backoff that never run past the deadline.

A provider fails in a few ways that look alike to a user and differ to a program: a timeout or
a proxy's HTML page goes away if you wait, a bad key never does. Both SDKs raise their own
exception types for these (and some raw `httpx2` or `json` ones, see tests/fakes), so
`classify_provider_error` turns each into a Tapeline error with a stable code, and
`call_with_retries` retries the transient ones with tenacity, honouring Retry-After.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import httpx2
import openai
import pydantic
from google.genai import errors as genai_errors
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from service.errors import (
    AudioTooLong,
    EngineAuthFailed,
    EngineRefused,
    TapelineError,
    UpstreamBadResponse,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

MIN_ATTEMPT_S = 0.05
"""An attempt with less time than this left before the deadline is not worth starting."""
MAX_PROVIDER_MESSAGE = 300


class Deadline:
    """A point on the monotonic clock that no step of an engine call may pass."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def within(self, seconds: float) -> Deadline:
        """A deadline `seconds` from now, or this one if it comes first."""
        inner = Deadline(seconds)
        inner.at = min(inner.at, self.at)
        return inner

    def cap(self, seconds: float) -> float:
        """`seconds`, or less if the deadline comes first."""
        return min(seconds, self.remaining())


class RetryPolicy:
    """How many attempts, how long to wait between them, and how long each may take."""

    def __init__(
        self,
        *,
        max_attempts: int = 4,
        base_delay_s: float = 1.0,
        max_delay_s: float = 60.0,
        secrets: Iterable[str] = (),
    ) -> None:
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.secrets = tuple(s for s in secrets if s)

    async def call(
        self,
        step: str,
        attempt: Callable[[], Awaitable[T]],
        *,
        deadline: Deadline,
        timeout_s: float,
    ) -> T:
        """Run `attempt` until it succeeds, a permanent error, `max_attempts`, or the deadline.

        Each attempt is cut off after `timeout_s` (or at the deadline): the SDKs' own timeouts
        are per read, so a body trickling in byte by byte would otherwise never end.
        """
        exponential = wait_exponential_jitter(
            initial=self.base_delay_s, max=self.max_delay_s, jitter=self.base_delay_s
        )

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            retry_after = getattr(error, "details", {}).get("retry_after_s")
            if isinstance(retry_after, int | float):
                return float(retry_after)
            return float(exponential(state))

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= self.max_attempts:
                return True
            return deadline.remaining() - state.upcoming_sleep < MIN_ATTEMPT_S

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            code = error.code if isinstance(error, TapelineError) else type(error).__name__
            log.warning(
                "%s failed (%s), attempt %d; retrying in %.1f s",
                step,
                code,
                state.attempt_number,
                state.upcoming_sleep,
            )

        retrying = AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(lambda e: isinstance(e, TapelineError) and e.transient),
            before_sleep=before_sleep,
            reraise=True,
        )
        async for try_ in retrying:
            with try_:
                return await self.once(attempt, deadline=deadline, timeout_s=timeout_s)
        raise AssertionError("tenacity returned without a result")  # pragma: no cover

    async def once(
        self, attempt: Callable[[], Awaitable[T]], *, deadline: Deadline, timeout_s: float
    ) -> T:
        """One attempt under its timeout, any failure classified."""
        limit = deadline.cap(timeout_s)
        if limit < MIN_ATTEMPT_S:
            raise UpstreamTimeout("The job's deadline passed before the provider answered.")
        try:
            async with asyncio.timeout(limit):
                return await attempt()
        except TapelineError:
            raise
        except Exception as exc:
            raise classify_provider_error(exc, self.secrets) from None


def classify_provider_error(exc: BaseException, secrets: Iterable[str] = ()) -> TapelineError:
    """A provider SDK's exception as the Tapeline error a user and the retry policy act on."""
    secrets = tuple(secrets)
    error = _classify(exc, secrets)
    error.message = redact(error.message, secrets)
    return error


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced, so a provider echoing a key cannot leak it."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def _classify(exc: BaseException, secrets: Iterable[str]) -> TapelineError:
    """The error for `exc`; a provider's own message is redacted before it is cut short, so a
    key straddling the cut cannot survive in part."""
    if isinstance(exc, TapelineError):
        return exc
    if isinstance(exc, TimeoutError | openai.APITimeoutError | httpx2.TimeoutException):
        return UpstreamTimeout()
    if isinstance(exc, openai.APIStatusError):
        said = redact(_openai_message(exc), secrets)
        return _from_status(exc.status_code, exc.response.headers, said, exc.body)
    if isinstance(exc, openai.APIConnectionError | httpx2.TransportError):
        return UpstreamUnavailable(
            "The connection to the transcription provider failed (reset or refused)."
        )
    if isinstance(exc, genai_errors.APIError):
        headers: Mapping[str, str] = getattr(exc.response, "headers", None) or {}
        message = str(exc.message or exc.status or "")
        body = message if message.lstrip().startswith("<") else exc.details
        return _from_status(exc.code, headers, redact(message, secrets), body)
    if isinstance(
        exc,
        json.JSONDecodeError
        | genai_errors.UnknownApiResponseError
        | pydantic.ValidationError
        | openai.APIResponseValidationError,
    ):
        return UpstreamBadResponse()
    if isinstance(exc, httpx2.HTTPError):
        return UpstreamUnavailable()
    error = TapelineError(f"Unexpected error from the provider's SDK: {type(exc).__name__}.")
    error.transient = True  # type: ignore[misc]
    return error


def _from_status(status: int, headers: Mapping[str, str], message: str, body: Any) -> TapelineError:
    said = _short(message)
    if status == 429:
        error = UpstreamRateLimited()
        retry_after = _retry_after(headers, body)
        if retry_after is not None:
            error.details["retry_after_s"] = retry_after
        return error
    if status in (401, 403) or "API_KEY_INVALID" in json.dumps(body, default=str):
        return EngineAuthFailed()
    if status == 413:
        return AudioTooLong()
    if status in (408, 409) or status >= 500:
        if not _looks_like_json(body):
            return UpstreamBadResponse(
                f"The transcription provider or a proxy answered {status} with a non-JSON page."
            )
        return UpstreamUnavailable(f"The transcription provider is unavailable ({status}).")
    if 400 <= status < 500:
        return EngineRefused(
            f"The transcription provider refused the request ({status}): {said} "
            "Check that the file is a complete recording and the run's language and model."
        )
    return UpstreamBadResponse(f"The transcription provider answered an unexpected {status}.")


def _openai_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return exc.message


def _looks_like_json(body: Any) -> bool:
    if isinstance(body, dict | list):
        return True
    if isinstance(body, str | bytes):
        try:
            json.loads(body)
        except ValueError:
            return False
        return True
    return body is None


def _retry_after(headers: Mapping[str, str], body: Any) -> float | None:
    """Seconds to wait from Retry-After, or from Google's RetryInfo ("7s") in the details."""
    raw = headers.get("retry-after") if headers else None
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            pass
    for detail in _details(body):
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                continue
    return None


def _details(body: Any) -> list[Any]:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("details"), list):
            return list(inner["details"])
    return []


def _short(message: str) -> str:
    text = " ".join(message.split())
    return text if len(text) <= MAX_PROVIDER_MESSAGE else text[: MAX_PROVIDER_MESSAGE - 1] + "…"
