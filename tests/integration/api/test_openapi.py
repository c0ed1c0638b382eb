"""/openapi.json against a real `tapeline serve`: schemathesis fuzzes every operation.

No response may be a 5xx, and every response must match the document: status code, content
type, headers and body schema. The tus paths are fuzzed when the tus server is mounted; until
then they must answer 404, which is checked, not skipped.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.api.openapi_document import document
from service.app import ROUTES
from tests.server import api_server, env_with, tapeline

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
FRAMING_HEADERS = {"connection", "content-length", "expect", "host", "te", "trailer"}
FRAMING_HEADERS |= {"transfer-encoding", "upgrade", "keep-alive", "proxy-connection"}
TUS_PREFIX = "/api/uploads"
TUS_SERVED = any(getattr(route, "path", "").startswith(TUS_PREFIX) for route in ROUTES)


@pytest.fixture(scope="module")
def served(
    subprocess_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    env = env_with(subprocess_env, MAX_UPLOAD_BYTES="200000", AUTH_FAILURES_PER_MINUTE="0")
    token = subprocess.run(
        tapeline("token", "create", "fuzz"), env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    log = tmp_path_factory.mktemp("openapi") / "api.log"
    with api_server(env, log) as base:
        yield base, {"Authorization": f"Bearer {token}"}


def is_valid_http(headers: Mapping[str, str] | None) -> bool:
    """Negative generation also invents extra headers. Those that break HTTP itself (a name that
    is not a token, a Transfer-Encoding on a GET) are refused by uvicorn's parser with a plain-text
    400 before the app sees the request: that is the HTTP server doing its job, not an API answer
    the document could describe, so such cases are not sent."""
    return all(
        HEADER_NAME.fullmatch(name) is not None
        and name.lower() not in FRAMING_HEADERS
        and value.isprintable()
        for name, value in (headers or {}).items()
    )


def fuzzed_operations() -> list[Any]:
    """Every documented operation with valid input, and with invalid input where it takes any;
    less the never-ending global stream (read separately below) and the tus paths while no tus
    server is mounted."""
    cases = []
    for path, operations in document()["paths"].items():
        if path == "/api/runs/events" or (path.startswith(TUS_PREFIX) and not TUS_SERVED):
            continue
        for method, spec in operations.items():
            takes_input = "parameters" in spec or "requestBody" in spec or "security" not in spec
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                if mode is GenerationMode.POSITIVE or takes_input:
                    label = f"{mode} {method.upper()} {path}"
                    cases.append(pytest.param(mode, method.upper(), path, id=label))
    return cases


@pytest.fixture(scope="module")
def api_schema(served: tuple[str, dict[str, str]]) -> Any:
    base, _ = served
    return schemathesis.openapi.from_url(f"{base}/openapi.json")


# tus bodies are raw bytes under tus's own media type; send them as octet-stream is sent.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")


@pytest.mark.parametrize(("mode", "method", "path"), fuzzed_operations())
def test_every_operation_answers_as_documented(
    api_schema: Any,
    served: tuple[str, dict[str, str]],
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    _, headers = served
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
    def answers_as_documented(case: Any) -> None:
        assume(is_valid_http(case.headers))
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)

    answers_as_documented()


def test_the_global_stream_is_an_event_stream(served: tuple[str, dict[str, str]]) -> None:
    base, headers = served
    with httpx.stream("GET", f"{base}/api/runs/events", headers=headers, timeout=10) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert (
            "text/event-stream"
            in document()["paths"]["/api/runs/events"]["get"]["responses"]["200"]["content"]
        )


def test_tus_paths_are_fuzzed_once_served_and_absent_until_then(
    served: tuple[str, dict[str, str]],
) -> None:
    base, headers = served
    assert {"/api/uploads", "/api/uploads/{uploadId}"} <= set(document()["paths"])
    if TUS_SERVED:
        options = httpx.options(f"{base}{TUS_PREFIX}")
        assert options.headers.get("Tus-Version", "").startswith("1.0.0")
    else:
        response = httpx.post(f"{base}{TUS_PREFIX}", headers={**headers, "Tus-Resumable": "1.0.0"})
        assert response.status_code == 404
