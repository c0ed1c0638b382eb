"""Fake Gemini and OpenAI servers that the real SDKs talk to unchanged, with fault injection.

Engines are tested against these instead of mocks, so what they catch is what the SDKs really
raise. One uvicorn, in a thread, serves both::

    with running_fakes() as fakes:
        gemini = genai.Client(
            api_key="k", http_options=types.HttpOptions(base_url=fakes.gemini_url)
        ).aio
        oai = openai.AsyncOpenAI(api_key="k", base_url=fakes.openai_url, max_retries=0)
        fakes.gemini.fail(FaultKind.HANG, path_contains=":generateContent")
        fakes.openai.fail("rate_limited", times=2, retry_after=7)
        fakes.openai.fail("unavailable", times=1, after=2)   # the third request fails
        fakes.openai.delay(2.0)   # or a function of the request, for varied latency

Configure answers with `fakes.gemini.respond_with(...)`, `fakes.gemini.file_lifecycle(...)`,
`fakes.openai.transcribe_to(...)`, `fakes.openai.chat_reply(...)`; inspect traffic with
`.requests`, `.requests_to(...)`, `fakes.gemini.uploaded/.deleted`,
`fakes.openai.transcriptions`; `fakes.reset()` between tests. Integration tests get them
as the `fake_server` (one per module) and `fakes` (reset per test) fixtures of
tests/integration/conftest.py.

What each SDK raises, per fault (google-genai 3.4 and openai 3.54 as installed; pinned by
tests/integration/test_fakes.py). Both SDKs use **httpx2**, not httpx: its exceptions are
not subclasses of httpx's, so `except httpx.HTTPError` catches none of them.

=================  ==========================================  ====================================
fault              google-genai (``client.aio``)               openai (``AsyncOpenAI``)
=================  ==========================================  ====================================
BAD_GATEWAY        ``errors.ServerError`` code 502, status     ``InternalServerError``
(502 HTML)         "Bad Gateway", ``message`` = the HTML       (``APIStatusError``) 502,
                                                               ``body`` = the HTML (str), message
                                                               just "Error code: 502"
UNAVAILABLE (503)  ``errors.ServerError`` 503 UNAVAILABLE      ``InternalServerError`` 503
RATE_LIMITED       ``errors.ClientError`` 429                  ``RateLimitError`` 429;
(429)              RESOURCE_EXHAUSTED; Retry-After in          ``e.response.headers["retry-after"]``
                   ``e.response.headers``, RetryInfo in
                   ``e.details``
UNAUTHORIZED       ``errors.ClientError`` **400**              ``AuthenticationError`` 401
                   INVALID_ARGUMENT, reason API_KEY_INVALID
                   (what Gemini sends); ``status=401`` gives
                   ClientError 401 UNAUTHENTICATED
BAD_AUDIO (400)    ``errors.ClientError`` 400 INVALID_ARGUMENT ``BadRequestError`` 400
HANG               ``httpx2.ReadTimeout`` (raw, not wrapped)   ``APITimeoutError`` (cause
                                                               ``httpx2.ReadTimeout``)
TRICKLE slower     ``httpx2.ReadTimeout``                      ``APITimeoutError``
than the timeout
TRICKLE faster     no error: the call just takes longer; only  same
than the timeout   an overall ``asyncio.timeout`` stops it
                   (``TimeoutError``)
RESET              ``httpx2.ReadError`` (raw)                  ``APIConnectionError`` (exactly;
                                                               cause ``httpx2.ReadError``)
TRUNCATED_JSON     ``json.JSONDecodeError`` from               ``json.JSONDecodeError`` (raw)
                   generate_content and files.get, but
                   ``errors.UnknownApiResponseError``
                   (a ValueError) from files.upload
file PROCESSING    ``errors.ClientError`` 400                  -
used in generate   FAILED_PRECONDITION
deleted/unknown    ``errors.ClientError`` 403                  -
file               PERMISSION_DENIED
file too big       -                                           ``APIStatusError`` 413 (no subclass)
=================  ==========================================  ====================================

Class relations that matter when classifying: ``openai.APITimeoutError`` is a subclass of
``openai.APIConnectionError``; ``openai.InternalServerError``/``RateLimitError``/... are
``APIStatusError``; google-genai's ``ClientError``/``ServerError`` are ``errors.APIError``
(attributes ``code``, ``status``, ``message``, ``details``, ``response``), and its network
errors are ``httpx2.TransportError`` (``ReadTimeout`` is an ``httpx2.TimeoutException``).

SDK behaviour worth knowing (also pinned by the tests):

* google-genai does not retry by default (no ``retry_options``), except during an upload: a
  chunk answer without ``X-Goog-Upload-Status`` (a proxy's 502, a 503...) is sent again, 3
  attempts in all, sleeping 1, 2, then 4 s (even after the last one) before raising.
* google-genai 3.x calls the Developer API's **v1** by default, not v1beta.
* ``HttpOptions.timeout`` is in milliseconds; openai's ``timeout`` is in seconds. Both are
  per-read (httpx) timeouts, not a deadline for the call.
* openai ``max_retries`` (default 2) retries 408/409/429/5xx, timeouts and connection errors,
  sleeping ``retry-after`` when it is at most 120 s (a longer one means no retry at all); the
  tests pass ``max_retries=0`` unless testing retries.
"""

from tests.fakes.faults import Fault, FaultKind
from tests.fakes.gemini import FakeFile, GeminiFake, transcript_json
from tests.fakes.openai import OpenAIFake, Transcription, TranscriptionCall
from tests.fakes.openai import Segment as OpenAISegment
from tests.fakes.recorder import RecordedRequest, UploadedFile
from tests.fakes.server import Fakes, running_fakes

__all__ = [
    "FakeFile",
    "Fakes",
    "Fault",
    "FaultKind",
    "GeminiFake",
    "OpenAIFake",
    "OpenAISegment",
    "RecordedRequest",
    "Transcription",
    "TranscriptionCall",
    "UploadedFile",
    "running_fakes",
    "transcript_json",
]
