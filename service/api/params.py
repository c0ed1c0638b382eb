"""Reading request input into typed values, with 4xx errors instead of exceptions."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request

from service.errors import InvalidRequest, NotFound


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


def is_json(request: Request) -> bool:
    """Whether the body is JSON (audio by URL) rather than a multipart upload."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


async def json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidRequest("The request body must be JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def optional_str(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 100:
        raise InvalidRequest(f"`{field}` must be a short string.")
    return value


def limit(request: Request, default: int = 50, maximum: int = 200) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise InvalidRequest(f"`limit` must be a whole number from 1 to {maximum}.")
    return int(raw)


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
