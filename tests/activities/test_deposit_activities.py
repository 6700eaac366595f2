"""Deposit activities on the database, for a trading-account target: the money is held for the
account from the credit on, so nothing spent from the wallet meanwhile can make the completion
fail (the chaos run's deposit stuck in `credited`); the hold is posted at completion, voided when
the platform credit fails, and a retry writes nothing twice."""

from __future__ import annotations

from typing import Any, cast

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fxcrm.activities.deposits import DepositActivities
from fxcrm.activities.money import psp_clearing_account, wallet_account
from fxcrm.adapters.psp.registry import PspRegistry
from fxcrm.core.config import Settings
from fxcrm.core.db import transaction
from fxcrm.core.fields import configure_field_cipher
from fxcrm.domain import ledger as rules
from fxcrm.domain.ledger import TransferKind
from fxcrm.domain.money import Money
from fxcrm.ledger import TransferRequest, account_by_code, check_invariants, transfer
from fxcrm.models import LedgerTransfer, Payment, TradingAccount
from fxcrm.models.base import new_id
from fxcrm.seed import seed_demo
from fxcrm.workflows.deposit_types import CompleteInput, CreditFailedInput, CreditInput
from tests.e2e.money import new_account, new_trader

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def brand_id(sessions: Sessions) -> str:
    configure_field_cipher(Settings(env="test").field_encryption_keys)
    return await seed_demo(sessions)


@pytest.fixture
def acts(sessions: Sessions) -> DepositActivities:
    # The activities tested here never call the PSP.
    return DepositActivities(sessions, cast(PspRegistry, None))


async def _trader(sessions: Sessions, brand_id: str) -> tuple[str, TradingAccount]:
    async with transaction(sessions) as session:
        trader = new_trader(brand_id, kyc_status="APPROVED")
        session.add(trader)
        await session.flush()
        account = new_account(trader.id, brand_id)
        session.add(account)
    return trader.id, account


async def _deposit(sessions: Sessions, brand_id: str, trader_id: str, account_id: str) -> str:
    """A USD 100.00 card deposit to a trading account, confirmed at the PSP (status pending)."""
    payment_id = new_id()
    async with transaction(sessions) as session:
        session.add(
            Payment(
                id=payment_id,
                brand_id=brand_id,
                trader_id=trader_id,
                kind="deposit",
                status="pending",
                idempotency_key=new_id(),
                request_hash="h",
                workflow_id=f"deposit-{payment_id}",
                currency="USD",
                amount=10000,
                source_kind="psp",
                target_kind="account",
                target_account_id=account_id,
                method="card",
                psp="sim",
                provider_ref=f"pay_{payment_id}",
                details={},
            )
        )
    return payment_id


async def _balances(sessions: Sessions, brand_id: str, code: str) -> tuple[int, int]:
    """(posted, available) in minor units."""
    async with sessions() as session:
        try:
            view = await account_by_code(session, brand_id, code)
        except rules.UnknownAccount:
            return 0, 0
    return view.balances.posted(view.normal_balance), view.balances.available(view.normal_balance)


async def _keys(sessions: Sessions, payment_id: str) -> list[str]:
    async with sessions() as session:
        keys = await session.scalars(
            select(LedgerTransfer.idempotency_key).where(
                LedgerTransfer.idempotency_key.like(f"deposit:{payment_id}%")
            )
        )
        return sorted(keys.all())


async def _spend_from_wallet(sessions: Sessions, trader_id: str, amount: str) -> None:
    """What a transfer or withdrawal does to the wallet meanwhile (wallet → PSP clearing)."""
    async with transaction(sessions) as session:
        payment = await session.scalar(select(Payment).where(Payment.trader_id == trader_id))
        assert payment is not None
        wallet = await wallet_account(session, payment.brand_id, trader_id, "USD")
        clearing = await psp_clearing_account(session, payment.brand_id, "sim", "USD")
        await transfer(
            session,
            TransferRequest(
                idempotency_key=f"spend:{new_id()}",
                debit_account_id=wallet,
                credit_account_id=clearing,
                amount=Money.of(amount, "USD"),
                kind=TransferKind.WITHDRAWAL,
            ),
        )


async def _status(sessions: Sessions, payment_id: str) -> Any:
    async with sessions() as session:
        payment = await session.get(Payment, payment_id)
        assert payment is not None
        return payment.status


async def _invariants_ok(sessions: Sessions) -> None:
    async with sessions() as session:
        report = await check_invariants(session)
    assert report.ok, report


def _codes(trader_id: str, account: TradingAccount) -> tuple[str, str]:
    assert account.login is not None
    return (
        rules.client_wallet_code(trader_id, "USD"),
        rules.client_trading_code(trader_id, account.server_id, account.login),
    )


async def test_money_on_its_way_to_the_account_cannot_be_spent_from_the_wallet(
    sessions: Sessions, brand_id: str, acts: DepositActivities
) -> None:
    trader_id, account = await _trader(sessions, brand_id)
    wallet, mirror = _codes(trader_id, account)
    pid = await _deposit(sessions, brand_id, trader_id, account.id)

    out = await acts.credit_deposit(CreditInput(payment_id=pid))
    await acts.credit_deposit(CreditInput(payment_id=pid))  # a retry
    assert out.status == "credited" and out.login == account.login
    # In the wallet, but held for the account: none of it is available.
    assert await _balances(sessions, brand_id, wallet) == (10000, 0)
    assert await _balances(sessions, brand_id, mirror) == (0, 0)

    # While the platform credit is under way, the trader's transfer or withdrawal is refused...
    with pytest.raises(rules.InsufficientFunds):
        await _spend_from_wallet(sessions, trader_id, "40.00")

    # ... so the completion, after the platform took the money, cannot be refused for funds.
    done = await acts.complete_account_deposit(CompleteInput(payment_id=pid, platform_ticket="T1"))
    await acts.complete_account_deposit(CompleteInput(payment_id=pid, platform_ticket="T1"))
    assert done.status == "completed"
    assert await _balances(sessions, brand_id, wallet) == (0, 0)
    assert await _balances(sessions, brand_id, mirror) == (10000, 10000)
    assert await _keys(sessions, pid) == [
        f"deposit:{pid}",
        f"deposit:{pid}:to-account",
        f"deposit:{pid}:to-account:post",
    ]
    await _invariants_ok(sessions)


async def test_completion_holds_when_other_money_in_the_wallet_was_spent(
    sessions: Sessions, brand_id: str, acts: DepositActivities
) -> None:
    trader_id, account = await _trader(sessions, brand_id)
    wallet, mirror = _codes(trader_id, account)
    first = await _deposit(sessions, brand_id, trader_id, account.id)
    second = await _deposit(sessions, brand_id, trader_id, account.id)
    await acts.credit_deposit(CreditInput(payment_id=first))
    await acts.credit_deposit(CreditInput(payment_id=second))
    assert await _balances(sessions, brand_id, wallet) == (20000, 0)

    for pid in (second, first):
        out = await acts.complete_account_deposit(
            CompleteInput(payment_id=pid, platform_ticket="T")
        )
        assert out.status == "completed"
    assert await _balances(sessions, brand_id, wallet) == (0, 0)
    assert await _balances(sessions, brand_id, mirror) == (20000, 20000)
    await _invariants_ok(sessions)


async def test_a_failed_platform_credit_releases_the_money_to_the_wallet(
    sessions: Sessions, brand_id: str, acts: DepositActivities
) -> None:
    trader_id, account = await _trader(sessions, brand_id)
    wallet, mirror = _codes(trader_id, account)
    pid = await _deposit(sessions, brand_id, trader_id, account.id)
    await acts.credit_deposit(CreditInput(payment_id=pid))

    failed = CreditFailedInput(payment_id=pid, reason="platform down")
    out = await acts.mark_credit_failed(failed)
    await acts.mark_credit_failed(failed)  # a retry
    assert out.status == "credit_failed"
    assert await _balances(sessions, brand_id, wallet) == (10000, 10000)
    assert await _balances(sessions, brand_id, mirror) == (0, 0)
    assert await _keys(sessions, pid) == [
        f"deposit:{pid}",
        f"deposit:{pid}:to-account",
        f"deposit:{pid}:to-account:void",
    ]
    await _spend_from_wallet(sessions, trader_id, "100.00")  # the trader's to use now
    await _invariants_ok(sessions)


async def test_a_deposit_credited_before_holds_existed_still_completes(
    sessions: Sessions, brand_id: str, acts: DepositActivities
) -> None:
    trader_id, account = await _trader(sessions, brand_id)
    wallet, mirror = _codes(trader_id, account)
    pid = await _deposit(sessions, brand_id, trader_id, account.id)
    # As the previous release left it: wallet credited, status credited, no hold.
    async with transaction(sessions) as session:
        payment = await session.get(Payment, pid)
        assert payment is not None
        clearing = await psp_clearing_account(session, brand_id, "sim", "USD")
        wallet_id = await wallet_account(session, brand_id, trader_id, "USD")
        await transfer(
            session,
            TransferRequest(
                idempotency_key=f"deposit:{pid}",
                debit_account_id=clearing,
                credit_account_id=wallet_id,
                amount=Money.of("100.00", "USD"),
                kind=TransferKind.DEPOSIT,
            ),
        )
        payment.status = "credited"
        payment.amount_received = 10000

    out = await acts.complete_account_deposit(CompleteInput(payment_id=pid, platform_ticket="T"))
    await acts.complete_account_deposit(CompleteInput(payment_id=pid, platform_ticket="T"))
    assert out.status == "completed" and await _status(sessions, pid) == "completed"
    assert await _balances(sessions, brand_id, wallet) == (0, 0)
    assert await _balances(sessions, brand_id, mirror) == (10000, 10000)
    assert await _keys(sessions, pid) == [f"deposit:{pid}", f"deposit:{pid}:to-account"]
    await _invariants_ok(sessions)
