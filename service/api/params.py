"""Reading request input into typed values, with 4xx errors instead of exceptions."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request

from service.errors import BodyTooLarge, InvalidRequest, NotFound
from service.inputs import printable, whole_number


def path_uuid(request: Request, name: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params[name])
    except ValueError:
        raise NotFound(f"No {what} with that id exists for you.") from None


def body_uuid(value: Any, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidRequest(f"`{field}` must be an id (a UUID).") from None


MAX_JSON_BYTES = 64 * 1024


async def bounded_body(request: Request, max_bytes: int = MAX_JSON_BYTES) -> bytes:
    """The request body, refused (413) once it passes `max_bytes`, counted while it is read:
    a chunked request declares no length to check first."""
    declared = whole_number(request.headers.get("content-length"))
    if declared is not None and declared > max_bytes:
        raise BodyTooLarge(f"The request body must be at most {max_bytes} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise BodyTooLarge(f"The request body must be at most {max_bytes} bytes.")
    return bytes(body)


def is_json(request: Request) -> bool:
    """Whether the body is JSON (audio by URL) rather than a multipart upload."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


async def json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await bounded_body(request) or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise InvalidRequest("The request body must be JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def optional_str(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 100 or printable(value) != value:
        raise InvalidRequest(f"`{field}` must be a short string.")
    return value


def limit(request: Request, default: int = 50, maximum: int = 200) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    number = whole_number(raw)
    if number is None or not 1 <= number <= maximum:
        raise InvalidRequest(f"`limit` must be a whole number from 1 to {maximum}.")
    return number


def idempotency_key(request: Request) -> str | None:
    """`Idempotency-Key`: the same key from the same owner returns the same run."""
    key = request.headers.get("idempotency-key", "").strip()
    if not key:
        return None
    if len(key) > 255:
        raise InvalidRequest("Idempotency-Key must be at most 255 characters.")
    return key


def optional_flag(body: dict[str, Any], field: str) -> bool:
    """A yes/no option: JSON true/false, or "true"/"1"/"false"/"0" from a form."""
    value = body.get(field)
    if value is None or value == "" or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise InvalidRequest(f"`{field}` must be true or false.")
