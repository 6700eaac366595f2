"""Test data for reconciliation and chargeback tests: payments and their ledger postings written
straight to the database with the deposit flow's keys (`deposit:{payment}`: debit PSP clearing,
credit wallet), and a scriptable PSP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fxcrm.activities.money import psp_clearing_account, wallet_account
from fxcrm.adapters.psp.base import (
    PaymentMethod,
    PaymentResult,
    PaymentStatus,
    PspError,
    RefundResult,
    RefundStatus,
    SettlementLine,
    SettlementType,
)
from fxcrm.core.db import transaction
from fxcrm.domain.ledger import AccountKind, TransferKind, client_trading_code
from fxcrm.domain.money import Money
from fxcrm.ledger import AccountSpec, TransferRequest, check_invariants, open_account, transfer
from fxcrm.models import Brand, LedgerAccount, LedgerTransfer, Payment
from tests.e2e.money import new_trader


async def seed_trader(
    sessions: async_sessionmaker[AsyncSession], brand_id: str | None = None
) -> tuple[str, str]:
    """(brand id, trader id): a new brand unless one is given."""
    async with transaction(sessions) as session:
        if brand_id is None:
            code = f"rc{uuid.uuid4().hex[:8]}"
            brand = Brand(code=code, name=code, legal_entity=f"{code} Ltd", config={})
            session.add(brand)
            await session.flush()
            brand_id = brand.id
        trader = new_trader(brand_id)
        session.add(trader)
        await session.flush()
        return brand_id, trader.id


async def seed_deposit(
    sessions: async_sessionmaker[AsyncSession],
    brand_id: str,
    trader_id: str,
    *,
    psp: str,
    amount: int,
    currency: str = "USD",
    provider_ref: str | None = None,
    credited_at: datetime | None = None,
    status: str = "completed",
    to_account: bool = False,
    payment_id: str | None = None,
) -> str:
    """A completed deposit: the Payment row and its ledger credit, at `credited_at`."""
    payment_id = payment_id or uuid.uuid4().hex
    async with transaction(sessions) as session:
        session.add(
            Payment(
                id=payment_id,
                brand_id=brand_id,
                trader_id=trader_id,
                kind="deposit",
                status=status,
                idempotency_key=payment_id,
                request_hash="0" * 64,
                workflow_id=f"deposit-{payment_id}",
                currency=currency,
                amount=amount,
                source_kind="psp",
                target_kind="account" if to_account else "wallet",
                method="card",
                psp=psp,
                provider_ref=provider_ref or f"pi_{payment_id[:12]}",
                amount_received=amount,
                details={},
            )
        )
        await session.flush()
        clearing = await psp_clearing_account(session, brand_id, psp, currency)
        wallet = await wallet_account(session, brand_id, trader_id, currency)
        with booked_at(credited_at):
            await transfer(
                session,
                TransferRequest(
                    idempotency_key=f"deposit:{payment_id}",
                    debit_account_id=clearing,
                    credit_account_id=wallet,
                    amount=Money.from_minor(amount, currency),
                    kind=TransferKind.DEPOSIT,
                    reference=payment_id,
                ),
            )
    return payment_id


@contextmanager
def booked_at(moment: datetime | None) -> Iterator[None]:
    """Ledger transfers inserted inside get `moment` as their time (they are immutable after)."""

    def stamp(_: object, __: object, target: LedgerTransfer) -> None:
        target.created_at = moment  # type: ignore[assignment]

    if moment is None:
        yield
        return
    event.listen(LedgerTransfer, "before_insert", stamp)
    try:
        yield
    finally:
        event.remove(LedgerTransfer, "before_insert", stamp)


async def spend_to_trading(
    sessions: async_sessionmaker[AsyncSession],
    brand_id: str,
    trader_id: str,
    amount: int,
    currency: str = "USD",
) -> str:
    """Move wallet money to a trading account's ledger mirror (the client traded it)."""
    async with transaction(sessions) as session:
        mirror = await open_account(
            session,
            AccountSpec(
                brand_id=brand_id,
                code=client_trading_code(trader_id, "srv", 1000),
                kind=AccountKind.CLIENT_TRADING,
                currency=currency,
                owner_id=trader_id,
            ),
        )
        wallet = await wallet_account(session, brand_id, trader_id, currency)
        await transfer(
            session,
            TransferRequest(
                idempotency_key=f"spend:{uuid.uuid4().hex}",
                debit_account_id=wallet,
                credit_account_id=mirror.id,
                amount=Money.from_minor(amount, currency),
                kind=TransferKind.TRANSFER,
            ),
        )
        return mirror.id


async def balance(sessions: async_sessionmaker[AsyncSession], brand_id: str, code: str) -> int:
    async with sessions() as session:
        row = await session.scalar(
            select(LedgerAccount).where(
                LedgerAccount.brand_id == brand_id, LedgerAccount.code == code
            )
        )
        if row is None:
            return 0
        if row.normal_balance == "debit":
            return row.debits_posted - row.credits_posted
        return row.credits_posted - row.debits_posted


async def invariants_ok(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        report = await check_invariants(session)
    assert report.ok, report


def settlement(
    ref: str,
    kind: SettlementType,
    gross: str,
    fee: str = "0",
    *,
    our_id: str | None = None,
    at: datetime,
    currency: str = "USD",
) -> SettlementLine:
    g, f = Money.of(gross, currency), Money.of(fee, currency)
    return SettlementLine(
        provider_ref=ref,
        our_id=our_id,
        type=kind,
        gross=g,
        fee=f,
        net=Money.of(g.amount - f.amount, currency),
        currency=currency,
        booked_at=at,
    )


class FakePsp:
    """A PaymentProvider whose answers the test sets: settlement lines per day, payment states,
    refund outcomes."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.reports: dict[date, list[SettlementLine]] = {}
        self.payments: dict[str, PaymentResult] = {}
        self.refund_error: PspError | None = None
        self.refunds: dict[str, RefundResult] = {}
        self.report_calls: list[date] = []

    def set_payment(
        self,
        ref: str,
        status: PaymentStatus,
        amount: str,
        refunded: str | None = None,
        currency: str = "USD",
    ) -> None:
        self.payments[ref] = PaymentResult(
            provider=self.provider,
            provider_ref=ref,
            method=PaymentMethod.CARD,
            status=status,
            amount_requested=Money.of(amount, currency),
            amount_received=Money.of(amount, currency),
            amount_refunded=Money.of(refunded, currency) if refunded else None,
        )

    async def settlement_report(self, day: date) -> list[SettlementLine]:
        self.report_calls.append(day)
        return list(self.reports.get(day, []))

    async def get_payment(self, provider_ref: str) -> PaymentResult:
        if provider_ref not in self.payments:
            raise PspError("no such payment", code="not_found")
        return self.payments[provider_ref]

    async def refund(self, provider_ref: str, amount: Money, our_refund_id: str) -> RefundResult:
        if self.refund_error is not None:
            raise self.refund_error
        result = self.refunds.setdefault(
            our_refund_id,
            RefundResult(
                provider_ref=f"re_{our_refund_id[:10]}",
                payment_provider_ref=provider_ref,
                our_refund_id=our_refund_id,
                amount=amount,
                status=RefundStatus.SUCCEEDED,
            ),
        )
        return result

    async def close(self) -> None:
        return None

    # Unused by these tests; present so the class satisfies the protocol's shape.
    async def create_payment(self, req: Any) -> PaymentResult:
        raise NotImplementedError

    async def create_payout(self, req: Any) -> Any:
        raise NotImplementedError

    async def get_payout(self, provider_ref: str) -> Any:
        raise NotImplementedError

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        return False

    def parse_webhook(self, raw_body: bytes) -> Any:
        raise ValueError("not used")
