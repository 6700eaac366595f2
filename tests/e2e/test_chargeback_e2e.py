"""A refund and a chargeback of a card deposit through the real API, worker, Temporal and PSP
simulator: finance refunds part of it, the card holder disputes the rest (the simulator's
chargeback sends a signed webhook), and the day's reconciliation finds the deposit, the refund and
the chargeback all matched, with the PSP's fees booked."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select

from fxcrm.adapters.psp.base import CreatePayment, PaymentMethod, PaymentStatus
from fxcrm.adapters.psp.simulator_client import SimPspClient
from fxcrm.domain.ledger import client_wallet_code
from fxcrm.domain.money import Money
from fxcrm.models import Brand, LedgerTransfer, Payment, PaymentAlert
from fxcrm.models.payments import ReconciliationBreak
from fxcrm.seed import DEMO_BRAND
from fxcrm.workflows.chargeback_types import RefundResult
from fxcrm.workflows.reconciliation_types import ReconciliationResult
from tests.e2e.portal import bearer, staff_token
from tests.e2e.stack import Stack, eventually
from tests.workflows.reconciliation_seed import balance, invariants_ok, seed_deposit, seed_trader


async def card_payment_at_the_simulator(stack: Stack, payment_id: str) -> str:
    sim = SimPspClient(
        base_url=stack.psp_url,
        api_key=stack.settings.psp_api_key,
        webhook_secret=stack.settings.psp_webhook_secret,
    )
    try:
        result = await sim.create_payment(
            CreatePayment(
                payment_id=payment_id,
                amount=Money.of("100.00", "USD"),
                method=PaymentMethod.CARD,
                customer_ref="trader",
                instrument="4242424242424242",
            )
        )
    finally:
        await sim.close()
    assert result.status is PaymentStatus.SUCCEEDED
    return result.provider_ref


async def test_refund_then_chargeback_then_reconciliation(stack: Stack) -> None:
    async with stack.sessions() as session:
        brand = (await session.scalars(select(Brand.id).where(Brand.code == DEMO_BRAND))).one()
    _, trader = await seed_trader(stack.sessions, brand)
    payment_id = uuid.uuid4().hex
    ref = await card_payment_at_the_simulator(stack, payment_id)
    # The deposit as the deposit workflow leaves it: completed, the wallet credited.
    await seed_deposit(
        stack.sessions,
        brand,
        trader,
        psp="sim",
        amount=10_000,
        provider_ref=ref,
        payment_id=payment_id,
    )
    wallet = client_wallet_code(trader, "USD")
    finance = bearer(await staff_token(stack.http, "finance"))

    refund = await stack.http.post(
        f"/backoffice/payments/{payment_id}/refund",
        json={"amount": "30.00", "reason": "client changed their mind"},
        headers={**finance, "Idempotency-Key": "refund-1"},
    )
    assert refund.status_code == 202, refund.text
    retried = await stack.http.post(
        f"/backoffice/payments/{payment_id}/refund",
        json={"amount": "30.00", "reason": "client changed their mind"},
        headers={**finance, "Idempotency-Key": "refund-1"},
    )
    assert retried.json()["refund_id"] == refund.json()["refund_id"]
    handle = stack.client.get_workflow_handle(
        refund.json()["workflow_id"], result_type=RefundResult
    )
    assert (await handle.result()).status == "succeeded"
    assert await balance(stack.sessions, brand, wallet) == 7_000

    # The card holder disputes the rest; the simulator's webhook reaches the finished deposit.
    async with httpx.AsyncClient(base_url=stack.psp_url) as sim:
        disputed = await sim.post(f"/_sim/payments/{ref}/chargeback", json={})
        assert disputed.status_code == 200, disputed.text

    async def charged_back() -> Payment | None:
        async with stack.sessions() as session:
            payment = await session.get(Payment, payment_id)
            return payment if payment and payment.status == "charged_back" else None

    payment = await eventually(charged_back)
    assert payment.details["chargeback"]["amount"] == 7_000
    assert await balance(stack.sessions, brand, wallet) == 0
    async with stack.sessions() as session:
        alerts = (
            await session.scalars(
                select(PaymentAlert.kind).where(PaymentAlert.payment_id == payment_id)
            )
        ).all()
    assert alerts == []  # the partial refund's own webhook was recognised as ours

    # Today's reconciliation of the simulator: this deposit's three lines all match.
    today = datetime.now(UTC).date().isoformat()
    run = await stack.http.post(
        "/backoffice/reconciliation/runs", json={"psp": "sim", "day": today}, headers=finance
    )
    assert run.status_code == 202, run.text
    result = await stack.client.get_workflow_handle(
        run.json()["workflow_id"], result_type=ReconciliationResult
    ).result()
    async with stack.sessions() as session:
        ours: list[Any] = list(
            await session.scalars(
                select(ReconciliationBreak).where(
                    ReconciliationBreak.run_id == result.run_id,
                    (ReconciliationBreak.payment_id == payment_id)
                    | (ReconciliationBreak.provider_ref == ref),
                )
            )
        )
        fees = set(
            await session.scalars(
                select(LedgerTransfer.amount).where(
                    LedgerTransfer.idempotency_key.in_(
                        [
                            f"psp-fee:sim:{flow}:{payment_id}:{today}"
                            for flow in ("payment", "chargeback")
                        ]
                    )
                )
            )
        )
    assert ours == []
    assert fees == {290, 1_500}  # card 2.9 %, chargeback 15 flat
    assert result.matched >= 3
    await invariants_ok(stack.sessions)
