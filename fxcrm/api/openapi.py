"""The OpenAPI schema says what the API answers: every error is RFC 9457 problem details.

Every operation documents the client errors any route may give (bad input, authentication, roles,
missing or conflicting resources); a route that can also answer 413, 429, 502 or 503 declares it
with `responses=problems(...)`. Schemathesis (tests/api/test_schemathesis.py) holds the API to it.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from fxcrm.api.errors import PROBLEM_JSON

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; some problems add members such as `code` or `errors`.",
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "required": ["type", "title", "status"],
    "additionalProperties": True,
}

# What any operation may answer (415 only with a request body; 429: logins and rate limits).
COMMON = (400, 401, 403, 404, 409, 410, 422, 429)
DESCRIPTIONS = {
    400: "Bad request (such as a missing Idempotency-Key)",
    401: "Not authenticated",
    403: "The caller's role may not do this",
    404: "Not found, or not visible to the caller",
    409: "Conflicts with the current state",
    410: "Gone",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many attempts",
    502: "An upstream system refused or failed",
    503: "Temporarily unavailable; retry",
}
# `openapi_extra={REQUIRES_IDEMPOTENCY_KEY: True}` marks the header required in the schema (the
# route answers 400 without it, rather than FastAPI's 422).
REQUIRES_IDEMPOTENCY_KEY = "x-idempotency-key-required"


def problem_response(status: int) -> dict[str, Any]:
    return {
        "description": DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
        "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}},
    }


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that answers more than the common problems."""
    return {status: problem_response(status) for status in statuses}


def _document(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    statuses = list(COMMON) + ([415] if "requestBody" in operation else [])
    for status in statuses:
        responses[str(status)] = problem_response(status)
    for status, response in responses.items():
        if status.startswith(("4", "5")):
            response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
    if operation.pop(REQUIRES_IDEMPOTENCY_KEY, False):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "header" and parameter["name"].lower() == "idempotency-key":
                parameter["required"] = True


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            for path, operations in schema.get("paths", {}).items():
                if path == "/health":
                    continue
                for operation in operations.values():
                    _document(operation)
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["Problem"] = PROBLEM_SCHEMA
            # FastAPI's own 422 body; every 422 here is problem details.
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
