"""The OpenAPI schema documents the problem answers and the required Idempotency-Key (issue 9)."""

from __future__ import annotations

from typing import Any

from fxcrm.api.errors import PROBLEM_JSON
from fxcrm.api.main import create_app
from fxcrm.core.config import Settings

SCHEMA = create_app(Settings(env="test")).openapi()
OPERATIONS = [
    (method, path, operation)
    for path, operations in SCHEMA["paths"].items()
    for method, operation in operations.items()
]


def _header(operation: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next(
        (p for p in operation.get("parameters", []) if p["in"] == "header" and p["name"] == name),
        None,
    )


def test_every_error_answer_is_documented_as_problem_details() -> None:
    for method, path, operation in OPERATIONS:
        if path == "/health":
            continue
        responses = operation["responses"]
        for status in ("400", "401", "403", "404", "409", "410", "422"):
            assert status in responses, (method, path, status)
        if "requestBody" in operation:
            assert "415" in responses, (method, path)
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                assert list(response["content"]) == [PROBLEM_JSON], (method, path, status)
    assert "HTTPValidationError" not in SCHEMA["components"]["schemas"]


def test_idempotency_key_is_required_where_the_route_requires_it() -> None:
    required = {"/portal/me/deposits", "/portal/me/withdrawals", "/portal/me/transfers"}
    for method, path, operation in OPERATIONS:
        header = _header(operation, "idempotency-key")
        if method == "post" and path in required:
            assert header is not None and header["required"] is True, path
        elif header is not None:  # optional elsewhere (a refund without one is a new refund)
            assert header.get("required", False) is False, path
    assert not any("x-idempotency-key-required" in op for _, _, op in OPERATIONS)


def test_routes_that_answer_more_say_so() -> None:
    paths = SCHEMA["paths"]
    assert {"413", "415"} <= set(paths["/portal/me/documents"]["post"]["responses"])
    assert "502" in paths["/backoffice/accounts/{server_id}/{login}/changes"]["post"]["responses"]
    assert "503" in paths["/portal/me/deposits"]["post"]["responses"]
