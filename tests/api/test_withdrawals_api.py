"""Withdrawal requests are checked before anything is stored or moved; finance decisions are
checked for role, brand, status and approver; a trader may cancel while finance decides."""

from __future__ import annotations

from decimal import Decimal

from tests.e2e.money import fund_wallet, payments_of
from tests.e2e.portal import bearer, register, staff_token
from tests.e2e.stack import Stack
from tests.e2e.withdrawal_helpers import (
    allowed_trader,
    key,
    status_of,
    transfers_of,
    wallet,
    withdrawal_body,
)


async def _post(stack: Stack, token: str, body: dict[str, object], headers: dict[str, str]):  # type: ignore[no-untyped-def]
    return await stack.http.post(
        "/portal/me/withdrawals", json=body, headers={**bearer(token), **headers}
    )


async def test_bad_requests_are_refused_and_nothing_moves(stack: Stack) -> None:
    trader_id, token, brand_id = await allowed_trader(stack)
    await fund_wallet(stack.sessions, trader_id, "500.00")
    before = await wallet(stack, trader_id, brand_id)

    missing_key = await _post(stack, token, withdrawal_body(), {})
    assert missing_key.status_code == 400
    assert missing_key.json()["code"] == "idempotency_key_required"

    cases = [
        (withdrawal_body(amount="0"), "amount_not_positive"),
        (withdrawal_body(amount="-20"), "amount_not_positive"),
        (withdrawal_body(amount="12,50"), "malformed_amount"),
        (withdrawal_body(amount="NaN"), "malformed_amount"),
        (withdrawal_body(amount="20.001"), "too_many_decimals"),
        (withdrawal_body(currency="XYZ"), "unsupported_currency"),
        (withdrawal_body(currency="JPY", amount="2000"), "unsupported_currency"),  # not this brand
        (withdrawal_body(method="paypal"), "unsupported_method"),
        (withdrawal_body(amount="5"), "below_minimum"),
        (withdrawal_body(amount="500.01"), "insufficient_funds"),
        (withdrawal_body(amount="60000"), "above_maximum"),
        (withdrawal_body(destination={"iban": "DE89370400440532013000"}), "invalid_destination"),
        (
            withdrawal_body(method="crypto", destination={"crypto_address": "TXYZ1234567890"}),
            "invalid_destination",
        ),
        (
            withdrawal_body(
                method="card",
                destination={"card_token": "4242424242424242", "iban": "DE89370400440532013000"},
            ),
            "invalid_destination",
        ),
        (
            withdrawal_body(source={"account_id": "not-mine"}),
            "unknown_account",
        ),
    ]
    for body, code in cases:
        response = await _post(stack, token, body, key())
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == code, (body, response.text)
    malformed = await _post(stack, token, {**withdrawal_body(), "amount": 12.5}, key())
    assert malformed.status_code == 422  # a JSON number is not a decimal string

    assert await payments_of(stack.sessions, trader_id) == 0
    after = await wallet(stack, trader_id, brand_id)
    assert after.model_dump() == before.model_dump()


async def test_kyc_level_below_the_brand_rule_is_refused(stack: Stack) -> None:
    trader_id, token = await register(stack.http)  # registered, KYC not approved
    response = await _post(stack, token, withdrawal_body(), key())
    assert response.status_code == 403  # the same answer as deposits and transfers give
    assert response.json()["code"] == "kyc_level_too_low"
    assert await payments_of(stack.sessions, trader_id) == 0


async def test_replay_returns_the_same_withdrawal_and_conflict_is_refused(stack: Stack) -> None:
    trader_id, token, brand_id = await allowed_trader(stack)
    await fund_wallet(stack.sessions, trader_id, "300.00")
    headers = key()
    first = await _post(stack, token, withdrawal_body(amount="100.00"), headers)
    assert first.status_code == 201, first.text
    again = await _post(stack, token, withdrawal_body(amount="100.00"), headers)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = await _post(stack, token, withdrawal_body(amount="150.00"), headers)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_conflict"
    assert await payments_of(stack.sessions, trader_id) == 1

    payment_id = first.json()["id"]
    view = await status_of(stack, token, payment_id, "awaiting_approval")
    assert view["approvals_required"] == 1
    assert "new_destination" in view["risk_flags"]  # never deposited from this IBAN
    held = await wallet(stack, trader_id, brand_id)
    assert held.available.amount == Decimal("200.00")  # held once, not twice
    assert list(await transfers_of(stack, payment_id)) == [f"withdrawal:{payment_id}:hold"]


async def test_too_many_pending_withdrawals(stack: Stack) -> None:
    trader_id, token, _ = await allowed_trader(stack)
    await fund_wallet(stack.sessions, trader_id, "1000.00")
    for _ in range(2):  # the demo brand allows two pending withdrawals
        response = await _post(stack, token, withdrawal_body(amount="50.00"), key())
        assert response.status_code == 201, response.text
    third = await _post(stack, token, withdrawal_body(amount="50.00"), key())
    assert third.status_code == 422
    assert third.json()["code"] == "too_many_pending"
    assert await payments_of(stack.sessions, trader_id) == 2


async def test_finance_queue_roles_decisions_and_cancel(stack: Stack) -> None:
    trader_id, token, brand_id = await allowed_trader(stack)
    await fund_wallet(stack.sessions, trader_id, "400.00")
    created = await _post(stack, token, withdrawal_body(amount="120.00"), key())
    assert created.status_code == 201, created.text
    payment_id = created.json()["id"]
    await status_of(stack, token, payment_id, "awaiting_approval")

    support = await staff_token(stack.http, "support")
    finance = await staff_token(stack.http, "finance")
    assert (
        await stack.http.get("/backoffice/withdrawals", headers=bearer(support))
    ).status_code == 403
    assert (
        await stack.http.get("/backoffice/withdrawals", headers=bearer(token))
    ).status_code == 403
    refused = await stack.http.post(
        f"/backoffice/withdrawals/{payment_id}/decisions",
        json={"decision": "approve", "reason": "looks fine"},
        headers=bearer(support),
    )
    assert refused.status_code == 403

    queue = await stack.http.get(
        "/backoffice/withdrawals", params={"status": "awaiting_approval"}, headers=bearer(finance)
    )
    assert queue.status_code == 200
    item = next(i for i in queue.json() if i["id"] == payment_id)
    assert item["amount"] == "120.00" and item["approvals_so_far"] == 0
    assert item["approvals_required"] == 1
    assert item["trader_name"] == "A*** S***"  # finance sees the client masked
    assert "new_destination" in item["risk_flags"]
    assert item["age_seconds"] >= 0

    # The client cancels; the hold is voided and the money is available again.
    cancelled = await stack.http.post(
        f"/portal/me/withdrawals/{payment_id}/cancel", headers=bearer(token)
    )
    assert cancelled.status_code == 202, cancelled.text
    view = await status_of(stack, token, payment_id, "rejected")
    assert view["failure_code"] == "cancelled"
    restored = await wallet(stack, trader_id, brand_id)
    assert restored.available.amount == Decimal("400.00")
    assert restored.posted.amount == Decimal("400.00")
    transfers = await transfers_of(stack, payment_id)
    assert transfers[f"withdrawal:{payment_id}:hold"].state == "voided"

    late = await stack.http.post(
        f"/backoffice/withdrawals/{payment_id}/decisions",
        json={"decision": "approve", "reason": "too late now"},
        headers=bearer(finance),
    )
    assert late.status_code == 409
    again = await stack.http.post(
        f"/portal/me/withdrawals/{payment_id}/cancel", headers=bearer(token)
    )
    assert again.status_code == 409


async def test_finance_reject_and_same_approver_twice(stack: Stack) -> None:
    trader_id, token, brand_id = await allowed_trader(stack)
    await fund_wallet(stack.sessions, trader_id, "9000.00")
    created = await _post(stack, token, withdrawal_body(amount="6000.00"), key())
    assert created.status_code == 201, created.text
    payment_id = created.json()["id"]
    view = await status_of(stack, token, payment_id, "awaiting_approval")
    assert view["approvals_required"] == 2  # four eyes at or above the brand's threshold

    finance = await staff_token(stack.http, "finance")
    url = f"/backoffice/withdrawals/{payment_id}/decisions"
    first = await stack.http.post(
        url, json={"decision": "approve", "reason": "documents fine"}, headers=bearer(finance)
    )
    assert first.status_code == 202, first.text
    assert first.json()["approvals_so_far"] == 1
    twice = await stack.http.post(
        url, json={"decision": "approve", "reason": "me again"}, headers=bearer(finance)
    )
    assert twice.status_code == 409
    assert twice.json()["code"] == "already_decided"
    bad = await stack.http.post(
        url, json={"decision": "maybe", "reason": "unsure"}, headers=bearer(finance)
    )
    assert bad.status_code == 422

    admin = await staff_token(stack.http, "admin")
    rejected = await stack.http.post(
        url, json={"decision": "reject", "reason": "source of funds unclear"}, headers=bearer(admin)
    )
    assert rejected.status_code == 202, rejected.text
    view = await status_of(stack, token, payment_id, "rejected")
    assert view["failure_code"] == "rejected_by_finance"
    money = await wallet(stack, trader_id, brand_id)
    assert money.posted.amount == money.available.amount == Decimal("9000.00")
