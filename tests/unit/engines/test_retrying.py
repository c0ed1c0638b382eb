"""The one retry policy: classification of SDK exceptions, backoff, Retry-After, deadline."""

from __future__ import annotations

import asyncio
import json
import time

import httpx2
import openai
import pytest
from google.genai import errors as genai_errors

from service.engines.retrying import Deadline, RetryPolicy, classify_provider_error, redact
from service.errors import EngineRefused, TapelineError, UpstreamRateLimited, UpstreamUnavailable

REQUEST = httpx2.Request("POST", "http://provider.test/v1/audio/transcriptions")


def _openai_status(status: int, body: object, **headers: str) -> openai.APIStatusError:
    content = body if isinstance(body, str) else json.dumps(body)
    response = httpx2.Response(status, text=content, headers=headers, request=REQUEST)
    return openai.APIStatusError(f"Error code: {status}", response=response, body=body)


def _code(exc: BaseException) -> str:
    return classify_provider_error(exc).code


def test_network_failures_are_transient() -> None:
    assert _code(httpx2.ReadTimeout("slow")) == "upstream_timeout"
    assert _code(TimeoutError()) == "upstream_timeout"
    assert _code(openai.APITimeoutError(request=REQUEST)) == "upstream_timeout"
    assert _code(openai.APIConnectionError(request=REQUEST)) == "upstream_unavailable"
    assert _code(httpx2.ReadError("reset")) == "upstream_unavailable"
    assert _code(json.JSONDecodeError("cut", '{"te', 4)) == "upstream_bad_response"


def test_statuses_map_to_codes_that_say_what_to_do() -> None:
    assert _code(_openai_status(502, "<html>502 Bad Gateway</html>")) == "upstream_bad_response"
    assert _code(_openai_status(503, {"error": {"message": "busy"}})) == "upstream_unavailable"
    assert _code(_openai_status(401, {"error": {"message": "bad key"}})) == "engine_auth_failed"
    assert _code(_openai_status(413, {"error": {"message": "big"}})) == "audio_too_long"
    refused = classify_provider_error(_openai_status(400, {"error": {"message": "not audio"}}))
    assert isinstance(refused, EngineRefused) and "not audio" in refused.message
    assert not refused.transient


def test_a_429_carries_retry_after_from_the_header_or_googles_retry_info() -> None:
    limited = classify_provider_error(_openai_status(429, {"error": {}}, **{"retry-after": "7"}))
    assert isinstance(limited, UpstreamRateLimited) and limited.details["retry_after_s"] == 7.0
    body = {
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "message": "quota",
            "details": [{"retryDelay": "12s"}],
        }
    }
    google = genai_errors.ClientError(429, body)
    assert classify_provider_error(google).details["retry_after_s"] == 12.0


def test_gemini_api_key_invalid_is_an_auth_failure_not_a_refused_audio() -> None:
    body = {
        "error": {
            "code": 400,
            "status": "INVALID_ARGUMENT",
            "message": "API key not valid.",
            "details": [{"reason": "API_KEY_INVALID"}],
        }
    }
    assert _code(genai_errors.ClientError(400, body)) == "engine_auth_failed"


def test_secrets_are_redacted_from_messages() -> None:
    error = classify_provider_error(
        _openai_status(400, {"error": {"message": "key sk-secret-1 is odd"}}), ["sk-secret-1"]
    )
    assert "sk-secret-1" not in error.message and "[redacted]" in error.message
    assert redact("a b a", ["a"]) == "[redacted] b [redacted]"


async def test_transient_errors_are_retried_and_permanent_ones_are_not() -> None:
    policy = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.02)
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise UpstreamUnavailable()
        return "ok"

    assert await policy.call("x", flaky, deadline=Deadline(5), timeout_s=1) == "ok"
    assert calls == 3

    async def refused() -> str:
        nonlocal calls
        calls += 1
        raise EngineRefused()

    calls = 0
    with pytest.raises(EngineRefused):
        await policy.call("x", refused, deadline=Deadline(5), timeout_s=1)
    assert calls == 1


async def test_retry_after_is_honoured_but_never_past_the_deadline() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay_s=0.01, max_delay_s=0.02)
    times: list[float] = []

    async def limited(after: float) -> str:
        times.append(time.monotonic())
        if len(times) == 1:
            raise UpstreamRateLimited(retry_after_s=after)
        return "ok"

    assert await policy.call("x", lambda: limited(0.3), deadline=Deadline(5), timeout_s=1) == "ok"
    assert times[1] - times[0] >= 0.3
    times.clear()
    started = time.monotonic()
    with pytest.raises(UpstreamRateLimited):
        await policy.call("x", lambda: limited(60), deadline=Deadline(1), timeout_s=1)
    assert time.monotonic() - started < 0.5 and len(times) == 1


async def test_each_attempt_is_cut_off_at_its_timeout_and_the_whole_at_the_deadline() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.01, max_delay_s=0.01)
    attempts = 0

    async def hang() -> str:
        nonlocal attempts
        attempts += 1
        await asyncio.Event().wait()
        return "never"

    started = time.monotonic()
    with pytest.raises(TapelineError) as failed:
        await policy.call("x", hang, deadline=Deadline(0.7), timeout_s=0.2)
    assert failed.value.code == "upstream_timeout"
    assert 0.6 < time.monotonic() - started < 1.2
    assert 3 <= attempts <= 4


def test_a_key_straddling_the_message_cut_is_redacted_whole() -> None:
    """Issue 15, finding 11: the message was cut to 300 characters before redaction, so a key
    across the cut survived in part."""
    key = "sk-live-" + "k" * 40
    message = "x" * 280 + " " + key + " tail"
    error = classify_provider_error(_openai_status(400, {"error": {"message": message}}), [key])
    assert key[:12] not in error.message and "[redacted]" in error.message
