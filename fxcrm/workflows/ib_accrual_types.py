"""Types that cross Temporal for the real-time accrual of IB commissions."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AccrueInput(BaseModel):
    server_id: str
    max_deals: int = Field(default=50_000, ge=1)  # per call; a backlog takes several calls


class AccrueResult(BaseModel):
    read: int  # deals read past the cursor
    accrued: int  # accrual rows written
    excluded: int  # deals that pay nobody
    upto: int  # the cursor (closed_deals.id) after the call
    caught_up: bool
    reasons: dict[str, int] = Field(default_factory=dict)  # why deals paid nobody, with counts


class AccrualState(BaseModel):
    """Carried across continue-as-new by IbAccrualWorkflow."""

    server_id: str
    interval_seconds: float = 2.0
    max_deals: int = 50_000
    iterations_before_new_run: int = 500
    deals_read: int = 0
    accrued: int = 0
    upto: int = 0
    runs: int = 0
