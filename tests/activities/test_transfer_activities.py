"""Transfer activities on the database: holds, posting, voiding, FX legs, retries that write nothing
twice, and the suspense booking when compensation fails."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError

from fxcrm.activities.money import psp_clearing_account, wallet_account
from fxcrm.activities.transfers import TransferActivities
from fxcrm.core.config import Settings
from fxcrm.core.db import transaction
from fxcrm.core.fields import configure_field_cipher
from fxcrm.domain import ledger as rules
from fxcrm.domain.fx_rates import DEFAULT_SOURCE
from fxcrm.domain.ledger import TransferKind
from fxcrm.domain.money import Money
from fxcrm.domain.transfers import quote
from fxcrm.ledger import TransferRequest, account_by_code, check_invariants, transfer
from fxcrm.models import AuditEvent, LedgerTransfer, Payment, PaymentAlert, TradingAccount
from fxcrm.models.base import new_id
from fxcrm.seed import seed_demo
from fxcrm.workflows.transfer_types import PaymentRef, SettleInput
from tests.e2e.money import fund_wallet, new_account, new_trader

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def brand_id(sessions: Sessions) -> str:
    configure_field_cipher(Settings(env="test").field_encryption_keys)
    return await seed_demo(sessions)


async def _trader(sessions: Sessions, brand_id: str) -> tuple[str, TradingAccount, TradingAccount]:
    """A trader with two open USD trading accounts on the demo server."""
    async with transaction(sessions) as session:
        trader = new_trader(brand_id, kyc_status="APPROVED")
        session.add(trader)
        await session.flush()
        accounts = [new_account(trader.id, brand_id) for _ in range(2)]
        session.add_all(accounts)
    return trader.id, accounts[0], accounts[1]


async def _payment(sessions: Sessions, brand_id: str, trader_id: str, **fields: Any) -> str:
    payment_id = new_id()
    values: dict[str, Any] = {
        "currency": "USD",
        "amount": 10000,
        "source_kind": "wallet",
        "target_kind": "wallet",
        "details": {},
    }
    values.update(fields)
    async with transaction(sessions) as session:
        session.add(
            Payment(
                id=payment_id,
                brand_id=brand_id,
                trader_id=trader_id,
                kind="transfer",
                status="pending",
                idempotency_key=new_id(),
                request_hash="h",
                workflow_id=f"transfer-{payment_id}",
                **values,
            )
        )
    return payment_id


async def _posted(sessions: Sessions, brand_id: str, code: str) -> tuple[int, int]:
    """(posted, available) of a ledger account in minor units; (0, 0) if never opened."""
    async with sessions() as session:
        try:
            view = await account_by_code(session, brand_id, code)
        except rules.UnknownAccount:
            return 0, 0
    return view.balances.posted(view.normal_balance), view.balances.available(view.normal_balance)


def _wallet(trader_id: str, currency: str = "USD") -> str:
    return rules.client_wallet_code(trader_id, currency)


def _mirror(account: TradingAccount) -> str:
    assert account.login is not None
    return rules.client_trading_code(account.trader_id, account.server_id, account.login)


async def _twice(call: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """A retried activity: the second run must change nothing."""
    first = await call()
    await call()
    return first


async def _invariants_ok(sessions: Sessions) -> None:
    async with sessions() as session:
        report = await check_invariants(session)
    assert report.ok, report


async def test_wallet_to_account_holds_then_posts_once(sessions: Sessions, brand_id: str) -> None:
    trader_id, account, _ = await _trader(sessions, brand_id)
    await fund_wallet(sessions, trader_id, "250.00")
    pid = await _payment(
        sessions, brand_id, trader_id, target_kind="account", target_account_id=account.id
    )
    acts = TransferActivities(sessions)

    plan = await _twice(lambda: acts.hold_transfer(PaymentRef(payment_id=pid)))
    assert plan.withdraw is None and plan.refund is None
    assert plan.deposit is not None
    assert (plan.deposit.login, plan.deposit.amount) == (account.login, Decimal("100.00"))
    assert plan.deposit.ref == f"ti:{pid[:26]}"
    # Held: the wallet's available drops at once, nothing is posted anywhere yet.
    assert await _posted(sessions, brand_id, _wallet(trader_id)) == (25000, 15000)
    assert await _posted(sessions, brand_id, _mirror(account)) == (0, 0)

    await _twice(lambda: acts.settle_transfer(SettleInput(payment_id=pid, outcome="completed")))
    assert await _posted(sessions, brand_id, _wallet(trader_id)) == (15000, 15000)
    assert await _posted(sessions, brand_id, _mirror(account)) == (10000, 10000)
    async with sessions() as session:
        payment = await session.get(Payment, pid)
        assert payment is not None and payment.status == "completed"
        assert payment.completed_at is not None
        audits = await session.scalar(select(func.count()).where(AuditEvent.entity_id == pid))
        assert audits == 1
    await _invariants_ok(sessions)


async def test_hold_refused_without_funds_holds_nothing(sessions: Sessions, brand_id: str) -> None:
    trader_id, account, _ = await _trader(sessions, brand_id)
    await fund_wallet(sessions, trader_id, "50.00")
    pid = await _payment(
        sessions, brand_id, trader_id, target_kind="account", target_account_id=account.id
    )
    with pytest.raises(ApplicationError) as refused:
        await TransferActivities(sessions).hold_transfer(PaymentRef(payment_id=pid))
    assert refused.value.type == "Ledger.InsufficientFunds" and refused.value.non_retryable
    assert await _posted(sessions, brand_id, _wallet(trader_id)) == (5000, 5000)
    async with sessions() as session:
        held = await session.scalar(
            select(func.count()).where(LedgerTransfer.group_id == f"transfer:{pid}")
        )
    assert held == 0


async def test_failed_transfer_voids_every_leg(sessions: Sessions, brand_id: str) -> None:
    trader_id, source, target = await _trader(sessions, brand_id)
    await fund_wallet(sessions, trader_id, "300.00")
    # Money on the source account first (a completed wallet → account transfer).
    acts = TransferActivities(sessions)
    funding = await _payment(
        sessions,
        brand_id,
        trader_id,
        target_kind="account",
        target_account_id=source.id,
        amount=30000,
    )
    await acts.hold_transfer(PaymentRef(payment_id=funding))
    await acts.settle_transfer(SettleInput(payment_id=funding, outcome="completed"))

    pid = await _payment(
        sessions,
        brand_id,
        trader_id,
        source_kind="account",
        source_account_id=source.id,
        target_kind="account",
        target_account_id=target.id,
    )
    plan = await acts.hold_transfer(PaymentRef(payment_id=pid))
    assert plan.withdraw is not None and plan.refund is not None and plan.deposit is not None
    assert plan.withdraw.ref != plan.refund.ref and plan.refund.login == source.login
    assert await _posted(sessions, brand_id, _mirror(source)) == (30000, 20000)
    settle = SettleInput(
        payment_id=pid, outcome="failed", failure_code="target_refused", failure_reason="no"
    )
    await _twice(lambda: acts.settle_transfer(settle))
    assert await _posted(sessions, brand_id, _mirror(source)) == (30000, 30000)
    assert await _posted(sessions, brand_id, _mirror(target)) == (0, 0)
    async with sessions() as session:
        payment = await session.get(Payment, pid)
        assert payment is not None
        assert (payment.status, payment.failure_code) == ("failed", "target_refused")
    await _invariants_ok(sessions)


async def test_wallet_conversion_books_the_spread_as_revenue(
    sessions: Sessions, brand_id: str
) -> None:
    trader_id, _, _ = await _trader(sessions, brand_id)
    await fund_wallet(sessions, trader_id, "1000.00")
    price = DEFAULT_SOURCE.price("USD", "EUR")
    fx = quote(50000, "USD", "EUR", price.rate, price.spread)
    pid = await _payment(
        sessions,
        brand_id,
        trader_id,
        amount=50000,
        target_currency="EUR",
        target_amount=fx.net_amount,
        fx_rate=str(price.rate),
        details={"fx": fx.as_record()},
    )
    revenue_before, _ = await _posted(sessions, brand_id, rules.broker_revenue_code("EUR"))
    acts = TransferActivities(sessions)
    await _twice(lambda: acts.hold_transfer(PaymentRef(payment_id=pid)))
    await _twice(lambda: acts.settle_transfer(SettleInput(payment_id=pid, outcome="completed")))

    assert await _posted(sessions, brand_id, _wallet(trader_id)) == (50000, 50000)
    eur, _ = await _posted(sessions, brand_id, _wallet(trader_id, "EUR"))
    assert eur == fx.net_amount
    revenue, _ = await _posted(sessions, brand_id, rules.broker_revenue_code("EUR"))
    assert revenue - revenue_before == fx.spread_amount > 0
    assert fx.net_amount + fx.spread_amount == fx.gross_amount
    await _invariants_ok(sessions)


async def test_stranded_source_is_booked_to_suspense_and_alerted(
    sessions: Sessions, brand_id: str
) -> None:
    trader_id, source, target = await _trader(sessions, brand_id)
    await fund_wallet(sessions, trader_id, "100.00")
    acts = TransferActivities(sessions)
    funding = await _payment(
        sessions, brand_id, trader_id, target_kind="account", target_account_id=source.id
    )
    await acts.hold_transfer(PaymentRef(payment_id=funding))
    await acts.settle_transfer(SettleInput(payment_id=funding, outcome="completed"))
    pid = await _payment(
        sessions,
        brand_id,
        trader_id,
        amount=4000,
        source_kind="account",
        source_account_id=source.id,
        target_kind="account",
        target_account_id=target.id,
    )
    await acts.hold_transfer(PaymentRef(payment_id=pid))
    settle = SettleInput(payment_id=pid, outcome="stranded", failure_code="compensation_failed")
    await _twice(lambda: acts.settle_transfer(settle))
    # The platform debited the source and could not credit it back: the mirror follows.
    assert await _posted(sessions, brand_id, _mirror(source)) == (6000, 6000)
    assert await _posted(sessions, brand_id, _mirror(target)) == (0, 0)
    async with sessions() as session:
        alerts = (
            await session.scalars(select(PaymentAlert).where(PaymentAlert.payment_id == pid))
        ).all()
        assert [a.kind for a in alerts] == ["transfer_compensation_failed"]
    await _invariants_ok(sessions)


async def test_unopened_account_is_refused(sessions: Sessions, brand_id: str) -> None:
    trader_id, account, _ = await _trader(sessions, brand_id)
    async with transaction(sessions) as session:
        row = await session.get(TradingAccount, account.id)
        assert row is not None
        row.status = "opening"
    pid = await _payment(
        sessions, brand_id, trader_id, target_kind="account", target_account_id=account.id
    )
    with pytest.raises(ApplicationError) as refused:
        await TransferActivities(sessions).hold_transfer(PaymentRef(payment_id=pid))
    assert refused.value.type == "AccountNotOpen" and refused.value.non_retryable


async def test_eur_wallet_to_usd_account_deposits_the_converted_amount(
    sessions: Sessions, brand_id: str
) -> None:
    trader_id, account, _ = await _trader(sessions, brand_id)
    async with transaction(sessions) as session:
        await transfer(
            session,
            TransferRequest(
                idempotency_key=f"test-fund:{new_id()}",
                debit_account_id=await psp_clearing_account(session, brand_id, "sim", "EUR"),
                credit_account_id=await wallet_account(session, brand_id, trader_id, "EUR"),
                amount=Money.of("200.00", "EUR"),
                kind=TransferKind.DEPOSIT,
            ),
        )
    price = DEFAULT_SOURCE.price("EUR", "USD")
    fx = quote(10000, "EUR", "USD", price.rate, price.spread)
    pid = await _payment(
        sessions,
        brand_id,
        trader_id,
        currency="EUR",
        target_kind="account",
        target_account_id=account.id,
        target_currency="USD",
        target_amount=fx.net_amount,
        fx_rate=str(price.rate),
        details={"fx": fx.as_record()},
    )
    acts = TransferActivities(sessions)
    plan = await acts.hold_transfer(PaymentRef(payment_id=pid))
    assert plan.deposit is not None
    assert plan.deposit.amount == Money.from_minor(fx.net_amount, "USD").amount
    await acts.settle_transfer(SettleInput(payment_id=pid, outcome="completed"))
    assert await _posted(sessions, brand_id, _wallet(trader_id, "EUR")) == (10000, 10000)
    assert await _posted(sessions, brand_id, _mirror(account)) == (fx.net_amount,) * 2
    await _invariants_ok(sessions)
