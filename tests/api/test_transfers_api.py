"""POST /portal/me/transfers: bad input is a 422 with a code and stores nothing; the
Idempotency-Key makes a retry safe; GET shows only the caller's transfers."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import update

from fxcrm.models import TradingAccount
from tests.e2e.money import fund_mirror, fund_wallet, payments_of, verified_with_account
from tests.e2e.portal import bearer, register, staff_token
from tests.e2e.stack import Stack
from tests.e2e.transfers import post_transfer, wait_transfer, wallet


def body(amount: str = "10.00", **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"amount": amount, "currency": "USD", "source": "wallet"}
    values["target"] = "wallet"
    values["target_currency"] = "EUR"
    values.update(overrides)
    return values


async def _refused(
    stack: Stack, token: str, payload: dict[str, Any], code: str, status: int = 422
) -> None:
    response = await post_transfer(stack.http, token, payload)
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem.get("code", "validation" if "errors" in problem else None) == code, problem


@pytest.fixture
async def trader(stack: Stack) -> tuple[str, str, str]:
    trader_id, token, account_id = await verified_with_account(stack)
    await fund_wallet(stack.sessions, trader_id, "100.00")
    return trader_id, token, account_id


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        ("0", "amount_not_positive"),
        ("-5.00", "amount_not_positive"),
        ("abc", "malformed_amount"),
        ("NaN", "malformed_amount"),
        ("1.234", "too_many_decimals"),
        (5, "validation"),  # a JSON number: amounts are decimal strings
    ],
)
async def test_bad_amounts(
    stack: Stack, trader: tuple[str, str, str], amount: Any, code: str
) -> None:
    trader_id, token, _ = trader
    await _refused(stack, token, body(amount), code)
    assert await payments_of(stack.sessions, trader_id) == 0


async def test_bad_sources_and_targets(stack: Stack, trader: tuple[str, str, str]) -> None:
    trader_id, token, account_id = trader
    mine = {"account_id": account_id}
    _, _, other_account = await verified_with_account(stack)
    cases = [
        (body(currency="XYZ"), "unsupported_currency"),
        (body(currency="GBP"), "unsupported_currency"),  # not offered by the brand
        (body(target_currency="JPY"), "unsupported_currency"),
        (body(target_currency="USD"), "same_source_and_target"),
        (body(target_currency=None), "same_source_and_target"),
        (body(source=mine, target=mine, target_currency=None), "same_source_and_target"),
        (body(target={"account_id": other_account}, target_currency=None), "unknown_account"),
        (body(source={"account_id": other_account}), "unknown_account"),
        (body(target={"account_id": "nope"}, target_currency=None), "unknown_account"),
        (body(source=mine, currency="EUR"), "currency_mismatch"),
        (body(target=mine), "currency_mismatch"),  # the account is in USD, not EUR
        (body("100.01"), "insufficient_funds"),
        (body(source=mine, target="wallet", target_currency=None), "insufficient_funds"),
        (body(source="nowhere"), "validation"),
        (body(extra="x"), "validation"),
    ]
    for payload, code in cases:
        await _refused(stack, token, payload, code)
    assert await payments_of(stack.sessions, trader_id) == 0


async def test_closed_account_and_kyc_level(stack: Stack, trader: tuple[str, str, str]) -> None:
    trader_id, token, account_id = trader
    async with stack.sessions() as session, session.begin():
        await session.execute(
            update(TradingAccount).where(TradingAccount.id == account_id).values(status="opening")
        )
    target = {"account_id": account_id}
    await _refused(stack, token, body(target=target, target_currency=None), "account_not_open")
    newcomer_id, newcomer = await register(stack.http)  # KYC not approved yet
    await fund_wallet(stack.sessions, newcomer_id, "50.00")
    await _refused(stack, newcomer, body(), "kyc_level_too_low", status=403)
    assert await payments_of(stack.sessions, trader_id) == 0
    assert await payments_of(stack.sessions, newcomer_id) == 0


async def test_missing_key_auth_and_roles(stack: Stack, trader: tuple[str, str, str]) -> None:
    trader_id, token, _ = trader
    missing = await post_transfer(stack.http, token, body(), key="")
    assert missing.status_code == 400
    assert missing.json()["code"] == "idempotency_key_required"
    anonymous = await stack.http.post("/portal/me/transfers", json=body())
    assert anonymous.status_code == 401
    finance = await staff_token(stack.http, "finance")
    staff = await post_transfer(stack.http, finance, body())
    assert staff.status_code == 403
    assert await payments_of(stack.sessions, trader_id) == 0


async def test_replay_returns_the_same_transfer_and_conflict_is_refused(
    stack: Stack, trader: tuple[str, str, str]
) -> None:
    trader_id, token, _ = trader
    key = uuid.uuid4().hex
    first = await post_transfer(stack.http, token, body("40.00"), key=key)
    assert first.status_code == 201, first.text
    view = first.json()
    assert view["status"] == "pending" and view["workflow_id"] == f"transfer-{view['payment_id']}"
    assert (view["currency"], view["target"]["currency"]) == ("USD", "EUR")
    assert Decimal(view["fx_rate"]) > 0 and Decimal(view["target_amount"]) > 0

    again = await post_transfer(stack.http, token, body("40.00"), key=key)
    assert again.status_code == 200
    assert again.json()["payment_id"] == view["payment_id"]
    other = await post_transfer(stack.http, token, body("41.00"), key=key)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_conflict"
    assert await payments_of(stack.sessions, trader_id) == 1

    done = await wait_transfer(stack, token, view["payment_id"])
    assert done["status"] == "completed", done
    assert await wallet(stack, trader_id) == Decimal("60.00")
    assert await wallet(stack, trader_id, "EUR") == Decimal(done["target_amount"])
    # A replay after completion still answers with the transfer, and moves nothing again.
    late = await post_transfer(stack.http, token, body("40.00"), key=key)
    assert late.status_code == 200 and late.json()["status"] == "completed"
    assert await wallet(stack, trader_id) == Decimal("60.00")

    listed = await stack.http.get("/portal/me/transfers", headers=bearer(token))
    assert [t["payment_id"] for t in listed.json()] == [view["payment_id"]]
    _, stranger, _ = await verified_with_account(stack)
    hidden = await stack.http.get(
        f"/portal/me/transfers/{view['payment_id']}", headers=bearer(stranger)
    )
    assert hidden.status_code == 404


async def test_account_source_is_checked_against_its_ledger_mirror(
    stack: Stack, trader: tuple[str, str, str]
) -> None:
    trader_id, token, account_id = trader
    await fund_mirror(stack.sessions, account_id, "30.00")
    source = {"account_id": account_id}
    await _refused(
        stack, token, body("30.01", source=source, target_currency=None), "insufficient_funds"
    )
    assert await payments_of(stack.sessions, trader_id) == 0
