"""Withdrawals end to end: real API, worker, Temporal dev server, PSP and MT5 simulators."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fxcrm.adapters.platforms.base import BalanceOpKind
from fxcrm.adapters.platforms.registry import PlatformRegistry
from fxcrm.adapters.psp.base import CreatePayment, PaymentMethod, PaymentStatus
from fxcrm.adapters.psp.simulator_client import SimPspClient
from fxcrm.core.db import transaction
from fxcrm.domain.money import Money
from fxcrm.domain.withdrawals import instrument_fingerprint
from fxcrm.ledger import check_invariants
from fxcrm.models import Payment
from fxcrm.models.base import new_id
from fxcrm.worker import platform_factory
from tests.e2e.money import active_trader, fund_mirror, fund_wallet
from tests.e2e.portal import bearer, staff_token
from tests.e2e.stack import Stack, eventually
from tests.e2e.withdrawal_helpers import (
    allowed_trader,
    brand_of,
    key,
    ledger_account,
    staff_user,
    status_of,
    transfers_of,
    wallet,
    withdrawal_body,
)

CARD = "4242424242424242"


async def _invariants_ok(stack: Stack) -> None:
    async with stack.sessions() as session:
        report = await check_invariants(session)
    assert report.ok, report


async def _decide(stack: Stack, token: str, payment_id: str, decision: str = "approve") -> Any:
    return await stack.http.post(
        f"/backoffice/withdrawals/{payment_id}/decisions",
        json={"decision": decision, "reason": "checked the client's file"},
        headers=bearer(token),
    )


async def test_four_eyes_withdrawal_is_paid_and_the_hold_posted(stack: Stack) -> None:
    trader_id, token, brand_id = await allowed_trader(stack)
    await fund_wallet(stack.sessions, trader_id, "8000.00")
    created = await stack.http.post(
        "/portal/me/withdrawals",
        json=withdrawal_body(amount="6000.00"),
        headers={**bearer(token), **key()},
    )
    assert created.status_code == 201, created.text
    payment_id = created.json()["id"]
    view = await status_of(stack, token, payment_id, "awaiting_approval")
    assert view["approvals_required"] == 2
    held = await wallet(stack, trader_id, brand_id)
    assert held.available.amount == Decimal("2000.00") and held.posted.amount == Decimal("8000")

    finance = await staff_token(stack.http, "finance")
    second_finance = await staff_user(stack, brand_id, "finance")
    first = await _decide(stack, finance, payment_id)
    assert first.status_code == 202, first.text
    assert (await _decide(stack, finance, payment_id)).status_code == 409  # same approver twice
    await eventually(lambda: _queue_shows_approvals(stack, finance, payment_id, 1))
    second = await _decide(stack, second_finance, payment_id)
    assert second.status_code == 202, second.text

    view = await status_of(stack, token, payment_id, "paid")
    assert view["completed_at"] is not None
    transfers = await transfers_of(stack, payment_id)
    assert transfers[f"withdrawal:{payment_id}:hold"].state == "posted"
    assert transfers[f"withdrawal:{payment_id}:post"].amount == 600_000
    money = await wallet(stack, trader_id, brand_id)
    assert money.posted.amount == money.available.amount == Decimal("2000.00")
    await _invariants_ok(stack)

    auditor = await staff_token(stack.http, "auditor")
    events = (
        await stack.http.get(
            "/audit/events", params={"entity_id": payment_id, "limit": 100}, headers=bearer(auditor)
        )
    ).json()
    actions = {e["action"] for e in events}
    assert {"withdrawal.requested", "withdrawal.awaiting_approval", "withdrawal.paid"} <= actions
    assert "withdrawal.decision.approve" in actions


async def _queue_shows_approvals(stack: Stack, token: str, payment_id: str, n: int) -> bool:
    queue = (await stack.http.get("/backoffice/withdrawals", headers=bearer(token))).json()
    return any(i["id"] == payment_id and i["approvals_so_far"] == n for i in queue)


async def test_withdrawal_from_the_mt5_account_keeps_platform_and_mirror_equal(
    stack: Stack,
) -> None:
    trader_id, token, account = await active_trader(stack)
    platforms = PlatformRegistry(platform_factory(stack.sessions, stack.settings))
    try:
        gateway = await platforms.get(account["server_id"])
        login = account["login"]
        # Fund the account as a deposit would: the platform and its ledger mirror together.
        await gateway.balance_op(login, BalanceOpKind.DEPOSIT, Decimal("3000"), "test:fund")
        mirror = await fund_mirror(stack.sessions, account["account_id"], "3000.00")

        finance = await staff_token(stack.http, "finance")
        source = {"account_id": account["account_id"]}

        # Paid: 1,000 leaves the account for the card.
        paid = await stack.http.post(
            "/portal/me/withdrawals",
            json=withdrawal_body(
                amount="1000.00",
                method="card",
                destination={"card_token": "4242424242424242"},
                source=source,
            ),
            headers={**bearer(token), **key()},
        )
        assert paid.status_code == 201, paid.text
        paid_id = paid.json()["id"]
        await status_of(stack, token, paid_id, "awaiting_approval")
        assert (await gateway.get_account(login)).balance == Decimal("2000")
        assert (await _decide(stack, finance, paid_id)).status_code == 202
        await status_of(stack, token, paid_id, "paid")

        # Rejected: 500 leaves the account, then comes back to it.
        rejected = await stack.http.post(
            "/portal/me/withdrawals",
            json=withdrawal_body(
                amount="500.00",
                method="card",
                destination={"card_token": "4242424242424242"},
                source=source,
            ),
            headers={**bearer(token), **key()},
        )
        assert rejected.status_code == 201, rejected.text
        rejected_id = rejected.json()["id"]
        await status_of(stack, token, rejected_id, "awaiting_approval")
        assert (await gateway.get_account(login)).balance == Decimal("1500")
        assert (await _decide(stack, finance, rejected_id, "reject")).status_code == 202
        await status_of(stack, token, rejected_id, "rejected")

        # More than the free margin: the API sees the ledger mirror and refuses.
        too_much = await stack.http.post(
            "/portal/me/withdrawals",
            json=withdrawal_body(
                amount="2500.00",
                method="card",
                destination={"card_token": "4242424242424242"},
                source=source,
            ),
            headers={**bearer(token), **key()},
        )
        assert too_much.status_code == 422
        assert too_much.json()["code"] == "insufficient_funds"

        state = await gateway.get_account(login)
        mirrored = await ledger_account(stack, mirror)
        assert state.balance == Decimal("2000") == mirrored.posted.amount
        trader_wallet = await wallet(stack, trader_id, await brand_of(stack, trader_id))
        assert trader_wallet.posted.amount == Decimal(0)
        rejected_transfers = await transfers_of(stack, rejected_id)
        assert rejected_transfers[f"withdrawal:{rejected_id}:hold"].state == "voided"
        assert f"withdrawal:{rejected_id}:return" in rejected_transfers
        await _invariants_ok(stack)
    finally:
        await platforms.close()


async def _card_deposit(stack: Stack, trader_id: str, brand_id: str, amount: str) -> str:
    """A card deposit that succeeded at the PSP simulator, recorded and credited as the deposit
    workflow would have done (its own tests cover that); returns the PSP's reference."""
    psp = SimPspClient(stack.psp_url, stack.settings.psp_api_key, stack.settings.psp_webhook_secret)
    payment_id = new_id()
    try:
        result = await psp.create_payment(
            CreatePayment(
                payment_id=payment_id,
                amount=Money.of(amount, "USD"),
                method=PaymentMethod.CARD,
                customer_ref=trader_id,
                instrument=CARD,
            )
        )
    finally:
        await psp.close()
    assert result.status == PaymentStatus.SUCCEEDED
    minor = Money.of(amount, "USD").to_minor()
    async with transaction(stack.sessions) as session:
        session.add(
            Payment(
                id=payment_id,
                brand_id=brand_id,
                trader_id=trader_id,
                kind="deposit",
                status="completed",
                idempotency_key=payment_id,
                request_hash="0" * 64,
                workflow_id=f"deposit-{payment_id}",
                currency="USD",
                amount=minor,
                amount_received=minor,
                source_kind="psp",
                target_kind="wallet",
                method="card",
                psp="sim",
                provider_ref=result.provider_ref,
                instrument_fingerprint=instrument_fingerprint(
                    stack.settings.secret_key.encode(), "card", CARD
                ),
                risk_flags=[],
                details={},
            )
        )
    await fund_wallet(stack.sessions, trader_id, amount)
    return result.provider_ref


async def test_card_deposits_are_refunded_first_the_rest_paid_by_wire(stack: Stack) -> None:
    trader_id, token, brand_id = await allowed_trader(stack)
    deposit_ref = await _card_deposit(stack, trader_id, brand_id, "200.00")
    await fund_wallet(stack.sessions, trader_id, "300.00")  # e.g. a wire deposit

    to_card = await stack.http.post(
        "/portal/me/withdrawals",
        json=withdrawal_body(amount="50.00", method="card", destination={"card_token": CARD}),
        headers={**bearer(token), **key()},
    )
    to_wire = await stack.http.post(
        "/portal/me/withdrawals",
        json=withdrawal_body(amount="300.00"),
        headers={**bearer(token), **key()},
    )
    assert to_card.status_code == to_wire.status_code == 201, (to_card.text, to_wire.text)
    card_view = await status_of(stack, token, to_card.json()["id"], "awaiting_approval")
    wire_view = await status_of(stack, token, to_wire.json()["id"], "awaiting_approval")
    # Deposited from this card: not a new destination; the IBAN is one.
    assert "new_destination" not in card_view["risk_flags"]
    assert "new_destination" in wire_view["risk_flags"]
    assert "low_activity" in wire_view["risk_flags"]  # deposited, never traded

    finance = await staff_token(stack.http, "finance")
    assert (await _decide(stack, finance, to_card.json()["id"])).status_code == 202
    await status_of(stack, token, to_card.json()["id"], "paid")
    assert (await _decide(stack, finance, to_wire.json()["id"])).status_code == 202
    await status_of(stack, token, to_wire.json()["id"], "paid")

    sim = (await stack.http.get(f"{stack.psp_url}/_sim/payments/{deposit_ref}")).json()
    assert Decimal(sim["amount_refunded"]) == Decimal("200.00")  # 50 + 150: the whole card deposit
    async with stack.sessions() as session:
        wire = await session.get(Payment, to_wire.json()["id"])
        assert wire is not None
        assert [r["amount"] for r in wire.details["refunds"]] == [15_000]
        assert wire.details["payout_plan"]["payout"] == 15_000
        payout_ref = wire.provider_ref
    payout = (await stack.http.get(f"{stack.psp_url}/_sim/payouts/{payout_ref}")).json()
    assert Decimal(payout["amount"]) == Decimal("150.00")
    money = await wallet(stack, trader_id, brand_id)
    assert money.posted.amount == money.available.amount == Decimal("150.00")
    await _invariants_ok(stack)
