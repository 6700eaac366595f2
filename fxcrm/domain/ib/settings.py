"""A brand's IB programme settings (BrandConfig.ib)."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, Field


class AttributionModel(StrEnum):
    FIRST_CLICK = "first_click"  # the first referral link the client followed within the window
    LAST_CLICK = "last_click"  # the last one before registering


class IbRules(BaseModel):
    attribution: AttributionModel = AttributionModel.LAST_CLICK
    attribution_window_days: int = Field(default=30, ge=1)
    currency: str = "USD"  # commissions are settled and paid in this currency
    minimum_payout: Decimal = Field(default=Decimal("50"), ge=0)  # less is carried over
    # Late deals of a settled period fall into the next one as adjustments.
    settlement_day: int = Field(default=1, ge=1, le=28)
