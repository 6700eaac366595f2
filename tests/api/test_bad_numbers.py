"""Numbers too big for the database or the ledger are a 422 problem, never an OverflowError or a
decimal.InvalidOperation (issue 9, items 3 to 5)."""

from __future__ import annotations

from typing import Any

import pytest
from schemathesis.python import asgi
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from fxcrm.api.errors import PROBLEM_JSON, Problem
from fxcrm.api.params import MAX_INT64
from fxcrm.api.routes.reconciliation import _minor
from fxcrm.seed import DEMO_BRAND
from tests.api.schema_app import InProcessApi
from tests.e2e.portal import registration

TOO_BIG = 2**63
# (who, path with {n} where the number goes): every integer a route reads from the path or query.
BOUNDED = [
    ("trader", "/portal/me/payments?offset={n}"),
    ("admin", "/backoffice/payments?offset={n}"),
    ("admin", "/backoffice/traders?offset={n}"),
    ("admin", "/backoffice/withdrawals?offset={n}"),
    ("admin", "/backoffice/ib?offset={n}"),
    ("admin", "/backoffice/ib/settlements?period=2026-01&offset={n}"),
    ("admin", "/backoffice/ib/some-ib/commissions?after={n}"),
    ("admin", "/audit/events?after_seq={n}"),
    ("ib", "/partner/commissions?after={n}"),
    ("ib", "/partner/clients/some-trader/commissions?after={n}"),
    ("admin", "/backoffice/accounts/mt5-demo/{n}"),
]


def _get(api: InProcessApi, who: str, path: str) -> Any:
    with asgi.get_client(api.app) as http:
        return http.get(path, headers={"Authorization": f"Bearer {api.tokens[who]}"})


def _post(api: InProcessApi, who: str, path: str, body: dict[str, Any], **headers: str) -> Any:
    with asgi.get_client(api.app) as http:
        return http.post(
            path, json=body, headers={"Authorization": f"Bearer {api.tokens[who]}", **headers}
        )


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert "InvalidOperation" not in response.text and "Overflow" not in response.text
    return body


@pytest.mark.parametrize(("who", "path"), BOUNDED)
def test_integers_past_int64_are_a_422(inprocess_api: InProcessApi, who: str, path: str) -> None:
    for n in (TOO_BIG, 2**64, 10**30):
        _problem(_get(inprocess_api, who, path.format(n=n)), 422)
    # The largest allowed number is an ordinary request: a page past the end, or unknown.
    answer = _get(inprocess_api, who, path.format(n=MAX_INT64))
    assert answer.status_code in (200, 404), answer.text


def test_account_change_with_a_huge_login_is_refused_before_any_workflow(
    inprocess_api: InProcessApi,
) -> None:
    started = len(inprocess_api.temporal.started)
    answer = _post(
        inprocess_api,
        "admin",
        "/backoffice/accounts/mt5-demo/18446744073709551616/changes",
        {"leverage": 100, "reason": "too big a login"},
    )
    assert _problem(answer, 422)["errors"][0]["loc"] == ["path", "login"]
    assert len(inprocess_api.temporal.started) == started


def test_every_integer_parameter_has_a_bound(inprocess_api: InProcessApi) -> None:
    schema = inprocess_api.app.openapi()
    unbounded = [
        f"{method.upper()} {path} {parameter['name']}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        for parameter in operation.get("parameters", [])
        for variant in [parameter["schema"], *parameter["schema"].get("anyOf", [])]
        if variant.get("type") == "integer" and variant.get("maximum", TOO_BIG) > MAX_INT64
    ]
    assert unbounded == []


def _unbounded(schema: dict[str, Any], node: dict[str, Any], seen: set[str]) -> list[str]:
    """Integer fields without a maximum in a request body's schema, following references."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return []
        seen.add(name)
        return _unbounded(schema, schema["components"]["schemas"][name], seen)
    found = [name for name, field in node.get("properties", {}).items() if _too_big(field)]
    children = [
        *node.get("properties", {}).values(),
        *node.get("anyOf", []),
        *node.get("allOf", []),
        *([node["items"]] if "items" in node else []),
    ]
    return found + [f for child in children for f in _unbounded(schema, child, seen)]


def _too_big(field: dict[str, Any]) -> bool:
    variants = [field, *field.get("anyOf", [])]
    return any(
        v.get("type") == "integer" and v.get("maximum", TOO_BIG) > MAX_INT64 for v in variants
    )


def test_every_integer_in_a_request_body_has_a_bound(inprocess_api: InProcessApi) -> None:
    schema = inprocess_api.app.openapi()
    unbounded = {
        f"{method.upper()} {path}": fields
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        for content in operation.get("requestBody", {}).get("content", {}).values()
        if (fields := _unbounded(schema, content["schema"], set()))
    }
    assert unbounded == {}


def test_questionnaire_counts_are_bounded(inprocess_api: InProcessApi) -> None:
    questionnaire = {
        "trading_experience_years": 5,
        "leveraged_trades_last_year": 50,
        "understands_leverage_risk": True,
        "relevant_professional_experience": True,
        "portfolio_over_500k_eur": False,
    }
    with asgi.get_client(inprocess_api.app) as http:
        for field, value in [
            ("trading_experience_years", -1),
            ("trading_experience_years", 10**30),
            ("leveraged_trades_last_year", TOO_BIG),
        ]:
            body = registration(account_type="pro", questionnaire={**questionnaire, field: value})
            answer = http.post(f"/portal/{DEMO_BRAND}/register", json=body)
            assert _problem(answer, 422)["errors"][0]["loc"][-1] == field


HUGE = ["1e26", "1" + "0" * 39, "1e999999999"]


@pytest.mark.parametrize("amount", HUGE)
def test_huge_payment_amounts_are_a_422(inprocess_api: InProcessApi, amount: str) -> None:
    requests = [
        ("/portal/me/deposits", {"currency": "USD", "method": "card", "target": "wallet"}),
        (
            "/portal/me/withdrawals",
            {
                "currency": "USD",
                "method": "bank_wire",
                "source": "wallet",
                "destination": {"iban": "DE89370400440532013000", "account_holder": "Anna"},
            },
        ),
        ("/portal/me/transfers", {"currency": "USD", "source": "wallet", "target": "wallet"}),
    ]
    for index, (path, body) in enumerate(requests):
        answer = _post(
            inprocess_api,
            "trader",
            path,
            {"amount": amount, **body},
            **{"Idempotency-Key": f"huge-{amount[:8]}-{index}"},
        )
        assert _problem(answer, 422)["code"] == "amount_too_large"


@pytest.mark.parametrize("amount", HUGE)
def test_huge_refund_amount_is_a_clean_422(amount: str) -> None:
    with pytest.raises(Problem) as refused:
        _minor(amount, "USD")
    assert refused.value.status == 422
    assert "too large" in refused.value.detail
    assert "InvalidOperation" not in refused.value.detail


def test_an_internal_account_change_failure_does_not_leak_its_text(
    inprocess_api: InProcessApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def overflowing(*args: Any, **kwargs: Any) -> Any:
        raise WorkflowFailureError(
            cause=ApplicationError("Python int too large to convert", type="OverflowError")
        )

    monkeypatch.setattr(inprocess_api.temporal, "execute_workflow", overflowing)
    answer = _post(
        inprocess_api,
        "admin",
        "/backoffice/accounts/mt5-demo/12345/changes",
        {"leverage": 100, "reason": "an internal failure"},
    )
    body = _problem(answer, 502)
    assert "too large" not in answer.text
    assert body["detail"].startswith("see workflow account-change-")
