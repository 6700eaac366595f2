"""Deposits end to end: real API, worker, Temporal dev server, PSP and MT5 simulators.

An active trader deposits by card to the wallet and to the MT5 account; each deposit is credited
exactly once, the MT5 balance equals its ledger mirror and the ledger's invariants hold, also while
the PSP delivers every webhook twice and out of order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from fxcrm.domain.ledger import client_trading_code, client_wallet_code
from fxcrm.ledger import account_by_code, check_invariants
from fxcrm.models import Payment, PaymentAlert, ProviderWebhook, TradingAccount
from tests.e2e.faults import SlowResponses
from tests.e2e.money import active_trader
from tests.e2e.payments import (
    CARD_3DS,
    CARD_DECLINED,
    deposit,
    deposit_body,
    deposit_transfers,
    wait_payment,
)
from tests.e2e.stack import Stack, eventually
from tests.e2e.transfers import post_transfer


@pytest.fixture
async def faulty_psp(stack: Stack) -> AsyncIterator[None]:
    on = await stack.http.post(
        f"{stack.psp_url}/_sim/faults", json={"duplicate": True, "out_of_order": True}
    )
    assert on.status_code == 200, on.text
    try:
        yield
    finally:
        await stack.http.post(
            f"{stack.psp_url}/_sim/faults", json={"duplicate": False, "out_of_order": False}
        )


async def _balances(stack: Stack, trader_id: str, account: dict[str, Any]) -> tuple[Decimal, ...]:
    """(wallet, trading mirror) in the ledger, and the MT5 simulator's balance."""
    async with stack.sessions() as session:
        row = await session.get(TradingAccount, account["account_id"])
        assert row is not None and row.login is not None
        wallet = await account_by_code(session, row.brand_id, client_wallet_code(trader_id, "USD"))
        mirror = await account_by_code(
            session, row.brand_id, client_trading_code(trader_id, row.server_id, row.login)
        )
        report = await check_invariants(session)
    assert report.ok, report
    mt5 = stack.mt5.state.user(row.login).balance
    return wallet.posted.amount, mirror.posted.amount, Decimal(mt5)


async def test_card_deposits_to_wallet_and_mt5_account_complete_exactly_once(
    stack: Stack,
) -> None:
    trader_id, token, account = await active_trader(stack)

    to_wallet = await deposit(stack.http, token, deposit_body("150.00"))
    assert to_wallet.status_code == 201, to_wallet.text
    wallet_view = await wait_payment(stack, token, to_wallet.json()["id"], "completed")
    assert wallet_view["is_ftd"] is True

    to_account = await deposit(
        stack.http, token, deposit_body("250.00", target={"account_id": account["account_id"]})
    )
    assert to_account.status_code == 201, to_account.text
    account_id = to_account.json()["id"]
    account_view = await wait_payment(stack, token, account_id, "completed")
    assert account_view["is_ftd"] is False
    assert account_view["target"] == {"kind": "account", "account_id": account["account_id"]}

    assert await deposit_transfers(stack, to_wallet.json()["id"]) == [
        f"deposit:{to_wallet.json()['id']}"
    ]
    # Credit, the hold for the account made with it, the hold posted after the platform credit.
    assert await deposit_transfers(stack, account_id) == [
        f"deposit:{account_id}",
        f"deposit:{account_id}:to-account",
        f"deposit:{account_id}:to-account:post",
    ]
    wallet, mirror, mt5 = await _balances(stack, trader_id, account)
    assert (wallet, mirror, mt5) == (Decimal("150.00"), Decimal("250.00"), Decimal("250.00"))
    # Exactly one platform operation with our reference.
    async with stack.sessions() as session:
        payment = await session.get(Payment, account_id)
        assert payment is not None and payment.details.get("platform_ticket")

    declined = await deposit(stack.http, token, deposit_body(instrument=CARD_DECLINED))
    assert declined.status_code == 201, declined.text
    failed = await wait_payment(stack, token, declined.json()["id"], "failed")
    assert failed["failure_code"] == "card_declined"
    assert await deposit_transfers(stack, declined.json()["id"]) == []


@pytest.mark.usefixtures("faulty_psp")
async def test_duplicate_and_out_of_order_webhooks_still_credit_once(stack: Stack) -> None:
    trader_id, token, account = await active_trader(stack)
    made = await deposit(
        stack.http,
        token,
        deposit_body("300.00", instrument=CARD_3DS, target={"account_id": account["account_id"]}),
    )
    assert made.status_code == 201, made.text
    view = made.json()
    assert view["next_action"]["type"] == "redirect"
    async with stack.sessions() as session:
        payment = await session.get(Payment, view["id"])
        assert payment is not None and payment.provider_ref
        ref = payment.provider_ref
    approved = await stack.http.post(
        f"{stack.psp_url}/_sim/payments/{ref}/3ds", json={"approve": True}
    )
    assert approved.status_code == 200, approved.text
    await wait_payment(stack, token, view["id"], "completed")

    async def both_delivered_twice() -> bool:
        sim = (await stack.http.get(f"{stack.psp_url}/_sim/payments/{ref}")).json()
        deliveries = [len(w["deliveries"]) for w in sim["webhooks"]]
        return len(deliveries) == 2 and all(d == 2 for d in deliveries)

    await eventually(both_delivered_twice, within=15)
    async with stack.sessions() as session:
        stored = (
            await session.scalars(
                select(ProviderWebhook.event_type).where(ProviderWebhook.provider_ref == ref)
            )
        ).all()
        alerts = (
            await session.scalars(select(PaymentAlert).where(PaymentAlert.payment_id == view["id"]))
        ).all()
    assert sorted(stored) == ["payment.requires_action", "payment.succeeded"]  # each stored once
    assert alerts == []
    assert await deposit_transfers(stack, view["id"]) == [
        f"deposit:{view['id']}",
        f"deposit:{view['id']}:to-account",
        f"deposit:{view['id']}:to-account:post",
    ]
    wallet, mirror, mt5 = await _balances(stack, trader_id, account)
    assert (wallet, mirror, mt5) == (Decimal(0), Decimal("300.00"), Decimal("300.00"))


async def test_a_transfer_while_the_platform_is_slow_cannot_strand_an_account_deposit(
    stack: Stack,
) -> None:
    # The chaos run's deposit stuck in `credited`: MT5 answered late, the trader moved the
    # deposit's money out of the wallet meanwhile, and the completion (wallet → mirror) was refused
    # for funds: the workflow failed with the platform credited and the mirror not.
    trader_id, token, account = await active_trader(stack)
    slow = stack.mt5.app
    assert isinstance(slow, SlowResponses)
    slow.delay_paths["/api/trade/balance"] = 6.0
    try:
        made = await deposit(
            stack.http, token, deposit_body("100.00", target={"account_id": account["account_id"]})
        )
        assert made.status_code == 201, made.text
        payment_id = made.json()["id"]
        await wait_payment(stack, token, payment_id, "credited")
        # The money is held for the account: the wallet has none of it to give.
        spent = await post_transfer(
            stack.http,
            token,
            {
                "amount": "100.00",
                "currency": "USD",
                "source": "wallet",
                "target": {"account_id": account["account_id"]},
            },
        )
        assert spent.status_code == 422, spent.text
        assert spent.json()["code"] == "insufficient_funds"
    finally:
        slow.delay_paths.clear()
    await wait_payment(stack, token, payment_id, "completed", within=60)
    wallet, mirror, mt5 = await _balances(stack, trader_id, account)
    assert (wallet, mirror, mt5) == (Decimal(0), Decimal("100.00"), Decimal("100.00"))
