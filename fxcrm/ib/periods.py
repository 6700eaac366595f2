"""Which settlement period (YYYY-MM, UTC) an accrual goes into, and which periods are closed.

A brand's periods are closed in order by settlement (fxcrm.activities.ib_settlement.close_period);
`closed_through` is the latest closed one. A deal whose month is closed already accrues into the
first open period after it, as an adjustment of that period (the accrual keeps its own month in
its inputs). Staff may not date a change inside a closed period either: what was paid is never
re-derived (a recalculation adds adjustments instead).

Race: on PostgreSQL, readers take a SHARED transaction advisory lock per brand and closing takes it
EXCLUSIVE, so a close waits for the accrual transactions in flight and those that follow see it.
On SQLite, writers are serialized (BEGIN IMMEDIATE), which does the same.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from fxcrm.domain.ib.settlement import next_period, period_of
from fxcrm.models import IbSettlementPeriod

__all__ = [
    "closed_through",
    "is_settled",
    "lock_periods",
    "next_period",
    "open_period",
    "open_period_for",
    "period_of",
]


def _lock_key(brand_id: str) -> int:
    digest = hashlib.sha256(f"ib-period:{brand_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def lock_periods(session: AsyncSession, brand_id: str, *, exclusive: bool) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite: every write transaction is serialized already
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    await session.execute(text(f"SELECT {function}(:key)"), {"key": _lock_key(brand_id)})


async def closed_through(session: AsyncSession, brand_id: str) -> str | None:
    """The latest closed period of the brand (every earlier one is closed too), or None."""
    return await session.scalar(
        select(func.max(IbSettlementPeriod.period)).where(IbSettlementPeriod.brand_id == brand_id)
    )


def open_period(closed_at: datetime, latest_closed: str | None) -> str:
    """The period a deal closed at `closed_at` accrues into, given the latest closed period."""
    period = period_of(closed_at)
    return next_period(latest_closed) if latest_closed and period <= latest_closed else period


async def is_settled(session: AsyncSession, brand_id: str, period: str) -> bool:
    """Whether accruals may no longer go into `period` (its settlement has started or ended)."""
    await lock_periods(session, brand_id, exclusive=False)
    latest = await closed_through(session, brand_id)
    return latest is not None and period <= latest


async def open_period_for(session: AsyncSession, brand_id: str, closed_at: datetime) -> str:
    await lock_periods(session, brand_id, exclusive=False)
    return open_period(closed_at, await closed_through(session, brand_id))
