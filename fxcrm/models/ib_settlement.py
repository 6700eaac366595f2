"""Settlement bookkeeping of the IB commission engine: which periods of a brand are closed, and the
CPA paid (and clawed back) per client, so that each happens once."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fxcrm.models.base import Base, UtcDateTime, created_at_column, new_id
from fxcrm.models.types import ScaledDecimal


class IbSettlementPeriod(Base):
    """A brand's period closed for settlement (`closing`, then `settled`). Accruals of deals that
    arrive later go to the next open period (fxcrm.activities.ib_settlement.open_period_for).
    The settlement covers the accrual periods after `from_period` up to `period`."""

    __tablename__ = "ib_settlement_periods"
    __table_args__ = (UniqueConstraint("brand_id", "period"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.id"))
    period: Mapped[str] = mapped_column(String(7))
    from_period: Mapped[str | None] = mapped_column(String(7), nullable=True)  # exclusive
    status: Mapped[str] = mapped_column(String(12))  # closing | settled
    currency: Mapped[str] = mapped_column(String(8))
    ib_count: Mapped[int] = mapped_column(Integer, default=0)
    paid_count: Mapped[int] = mapped_column(Integer, default=0)
    paid_total: Mapped[Decimal] = mapped_column(ScaledDecimal(), default=Decimal(0))
    requested_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    closed_at: Mapped[datetime] = created_at_column()
    settled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class IbCpaEvent(Base):
    """A CPA paid for a client (`paid`) or clawed back (`clawback`): at most one of each."""

    __tablename__ = "ib_cpa_events"
    __table_args__ = (UniqueConstraint("trader_id", "kind"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.id"))
    ib_id: Mapped[str] = mapped_column(ForeignKey("ib_partners.id"), index=True)
    trader_id: Mapped[str] = mapped_column(ForeignKey("traders.id"))
    kind: Mapped[str] = mapped_column(String(10))  # paid | clawback
    period: Mapped[str] = mapped_column(String(7))
    amount: Mapped[Decimal] = mapped_column(ScaledDecimal())
    created_at: Mapped[datetime] = created_at_column()
