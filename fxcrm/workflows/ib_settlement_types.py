"""Pydantic types that cross Temporal for the monthly IB settlement."""

from __future__ import annotations

from pydantic import BaseModel


def ib_settlement_workflow_id(brand: str, period: str) -> str:
    return f"ib-settlement-{brand}-{period}"


def ib_settlement_schedule_id(brand: str) -> str:
    return f"ib-settlement-{brand}"


class IbSettlementInput(BaseModel):
    brand: str  # the brand's code
    period: str  # YYYY-MM
    requested_by: str | None = None  # staff id for an on-demand run; None: the schedule


class ScheduledIbSettlement(BaseModel):
    """What the monthly schedule passes: the period is the month before the scheduled time."""

    brand: str


class ClosedPeriod(BaseModel):
    brand: str
    brand_id: str
    period: str
    from_period: str | None  # accrual periods after this one (exclusive) are settled now
    currency: str
    minimum_payout: str  # decimal string
    requested_by: str | None = None


class IbSettlementResult(BaseModel):
    brand: str
    period: str
    currency: str
    ibs: int  # settlement rows of the period (this run and earlier runs)
    paid: int
    carried: int
    held: int
    paid_total: str  # decimal string
    settled_now: int  # rows written by this run (0 on a re-run)
