"""The OpenAPI document: every route described, every reference resolvable, schemas valid."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
from starlette.routing import Route

from service.api.openapi_document import AREAS, document
from service.app import ROUTES

TUS_METHODS = {"OPTIONS", "POST", "HEAD", "PATCH", "DELETE", "GET"}


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def test_every_route_is_documented() -> None:
    documented = {
        (path, method.upper())
        for path, operations in document()["paths"].items()
        for method in operations
    }
    for route in ROUTES:
        if not isinstance(route, Route):
            continue
        bare = route.path.rstrip("/") or "/"  # `/api/uploads/` is an alias tus clients use
        path = re.sub(r"\{(\w+)\}", lambda m: "{" + _camel(m.group(1)) + "}", bare)
        for method in (route.methods or set()) - {"HEAD"}:
            assert (path, method) in documented, f"{method} {route.path} is not documented"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def test_tus_endpoints_are_one_block_with_the_protocol_headers() -> None:
    uploads = AREAS[-1]
    methods = {m.upper() for ops in uploads.values() for m in ops}
    assert set(uploads) == {"/api/uploads", "/api/uploads/{uploadId}"} and methods == TUS_METHODS
    patch = uploads["/api/uploads/{uploadId}"]["patch"]
    names = {p["name"] for p in patch["parameters"] if p["in"] == "header"}
    assert {"Tus-Resumable", "Upload-Offset"} <= names
    assert "application/offset+octet-stream" in patch["requestBody"]["content"]
    assert (
        "Upload-Offset" in uploads["/api/uploads/{uploadId}"]["head"]["responses"]["200"]["headers"]
    )


def test_references_resolve_and_schemas_are_valid_json_schema() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    for schema in schemas.values():
        jsonschema_rs.meta.validate(schema)


def test_every_operation_documents_its_errors_as_the_error_shape() -> None:
    for path, operations in document()["paths"].items():
        for method, spec in operations.items():
            for status, response in spec["responses"].items():
                content = response.get("content", {})
                if status.startswith(("4", "5")) and path.startswith("/v1/"):
                    schema = content["application/json"]["schema"]
                    shapes = schema.get("anyOf", [schema])
                    assert {"$ref": "#/components/schemas/OpenAIError"} in shapes, (method, path)
                elif status.startswith(("4", "5")) and "application/json" in content:
                    assert content["application/json"]["schema"] in (
                        {"$ref": "#/components/schemas/Error"},
                        {"$ref": "#/components/schemas/Readiness"},
                    ), (method, path, status)
