"""set_status leaves a final status only as AFTER_FINAL allows: a credited deposit charged back or
refunded keeps its completion time and is audited once; anything else stays final."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fxcrm.activities.money import load_payment, set_status
from fxcrm.core.db import transaction
from fxcrm.domain.payments import DepositStatus, TransferStatus, may_leave_final
from fxcrm.models import AuditEvent
from tests.workflows.reconciliation_seed import seed_deposit, seed_trader

Sessions = async_sessionmaker[AsyncSession]


def test_only_credited_deposits_leave_a_final_status() -> None:
    for credited in (DepositStatus.COMPLETED, DepositStatus.CREDIT_FAILED):
        assert may_leave_final("deposit", credited, DepositStatus.CHARGED_BACK)
        assert may_leave_final("deposit", credited, DepositStatus.REFUNDED)
        assert not may_leave_final("deposit", credited, DepositStatus.PENDING)
    assert not may_leave_final("deposit", DepositStatus.FAILED, DepositStatus.REFUNDED)
    assert not may_leave_final("deposit", DepositStatus.EXPIRED, DepositStatus.CHARGED_BACK)
    assert not may_leave_final("transfer", TransferStatus.COMPLETED, DepositStatus.REFUNDED)
    assert not may_leave_final("withdrawal", "paid", DepositStatus.CHARGED_BACK)


async def _audits(sessions: Sessions, key: str) -> int:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.event_key == key)
        )
    return int(count or 0)


async def test_completed_deposit_is_charged_back_once(sessions: Sessions) -> None:
    brand_id, trader_id = await seed_trader(sessions)
    pid = await seed_deposit(sessions, brand_id, trader_id, psp="sim", amount=5000)
    async with transaction(sessions) as session:
        payment = await load_payment(session, pid)
        payment.completed_at = completed_at = datetime(2024, 5, 14, 12, tzinfo=UTC)
        for _ in range(2):  # a retry changes nothing
            await set_status(
                session,
                payment,
                DepositStatus.CHARGED_BACK,
                reason="dispute",
                audit={"amount": 5000},
            )
    async with sessions() as session:
        payment = await load_payment(session, pid)
        assert payment.status == DepositStatus.CHARGED_BACK
        assert payment.completed_at == completed_at  # completed then, charged back now
        assert payment.amount == 5000  # `audit` is recorded, not set on the payment
    assert await _audits(sessions, f"payment:{pid}:charged_back") == 1


@pytest.mark.parametrize("status", [DepositStatus.FAILED, DepositStatus.EXPIRED])
async def test_a_deposit_that_credited_nothing_stays_final(
    sessions: Sessions, status: DepositStatus
) -> None:
    brand_id, trader_id = await seed_trader(sessions)
    pid = await seed_deposit(sessions, brand_id, trader_id, psp="sim", amount=5000, status=status)
    async with transaction(sessions) as session:
        payment = await load_payment(session, pid)
        changed = await set_status(session, payment, DepositStatus.REFUNDED, reason="no")
    assert not changed
    async with sessions() as session:
        assert (await load_payment(session, pid)).status == status
    assert await _audits(sessions, f"payment:{pid}:refunded") == 0
