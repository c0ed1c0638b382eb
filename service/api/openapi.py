"""/openapi.json: the OpenAPI 3.1 document (service/api/openapi_document.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from service.api.openapi_document import document


async def openapi_json(request: Request) -> JSONResponse:
    return JSONResponse(document())
