"""The IB commission engine's tables: plans and their versions, assignments, referral links, the
effective-dated hierarchy and attributions, per-deal accruals, settlements and statements.

Accruals are written exactly once per (deal, beneficiary, rule); nothing paid is ever edited: a
recalculation adds adjustment accruals (rule `adjustment:...`) that fall into the next settlement.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from fxcrm.models.base import Base, UtcDateTime, created_at_column, new_id
from fxcrm.models.types import ScaledDecimal


class IbPlan(Base):
    __tablename__ = "ib_plans"
    __table_args__ = (UniqueConstraint("brand_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = created_at_column()


class IbPlanVersion(Base):
    """A plan's rules (fxcrm.domain.ib.plans.PlanRules as JSON) from `effective_from` until the
    next version's start; versions of one plan never overlap."""

    __tablename__ = "ib_plan_versions"
    __table_args__ = (
        UniqueConstraint("plan_id", "version"),
        UniqueConstraint("plan_id", "effective_from"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    plan_id: Mapped[str] = mapped_column(ForeignKey("ib_plans.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    effective_from: Mapped[datetime] = mapped_column(UtcDateTime())
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = created_at_column()


class IbPlanAssignment(Base):
    """From `effective_from`, the IB earns by `plan_id`; with `link_code`, only on clients who came
    through that referral link (a per-link override)."""

    __tablename__ = "ib_plan_assignments"
    __table_args__ = (UniqueConstraint("ib_id", "link_code", "effective_from"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    ib_id: Mapped[str] = mapped_column(ForeignKey("ib_partners.id"), index=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("ib_plans.id"))
    link_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    effective_from: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = created_at_column()


class IbReferralLink(Base):
    __tablename__ = "ib_referral_links"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    ib_id: Mapped[str] = mapped_column(ForeignKey("ib_partners.id"), index=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = created_at_column()


class IbParentLink(Base):
    """From `effective_from`, `ib_id`'s master is `parent_id` (None: top level)."""

    __tablename__ = "ib_parent_links"
    __table_args__ = (UniqueConstraint("ib_id", "effective_from"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    ib_id: Mapped[str] = mapped_column(ForeignKey("ib_partners.id"), index=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("ib_partners.id"), nullable=True)
    effective_from: Mapped[datetime] = mapped_column(UtcDateTime())
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = created_at_column()


class IbAttribution(Base):
    """From `effective_from`, the client's trades belong to `ib_id`. `excluded` marks a
    self-referral (the IB's own or linked account): its trades pay nobody."""

    __tablename__ = "ib_attributions"
    __table_args__ = (UniqueConstraint("trader_id", "effective_from"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    trader_id: Mapped[str] = mapped_column(ForeignKey("traders.id"), index=True)
    ib_id: Mapped[str] = mapped_column(ForeignKey("ib_partners.id"), index=True)
    effective_from: Mapped[datetime] = mapped_column(UtcDateTime())
    link_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    source: Mapped[str] = mapped_column(String(20))  # registration | click | staff
    excluded: Mapped[str | None] = mapped_column(String(100), nullable=True)  # why, if excluded
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = created_at_column()


class IbAccrual(Base):
    """One beneficiary's amount from one deal by one rule, with everything that produced it."""

    __tablename__ = "ib_accruals"
    __table_args__ = (
        UniqueConstraint("deal_pk", "beneficiary_id", "rule"),
        CheckConstraint("depth >= 1", name="depth_positive"),
        Index("ix_ib_accruals_beneficiary_period", "beneficiary_id", "period"),
        Index("ix_ib_accruals_trader_period", "trader_id", "period"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.id"))
    deal_pk: Mapped[int] = mapped_column(ForeignKey("closed_deals.id"))
    beneficiary_id: Mapped[str] = mapped_column(ForeignKey("ib_partners.id"))
    rule: Mapped[str] = mapped_column(
        String(60)
    )  # per_lot | spread_share | ... | adjustment:{id}:...
    depth: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(ScaledDecimal())  # 8 decimals; may be < 0 (adjustment)
    currency: Mapped[str] = mapped_column(String(8))
    plan_version_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    trader_id: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM of the settlement it falls into
    closed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = created_at_column()


class IbAccrualCursor(Base):
    """How far accrual has read the ingested deals of a server (closed_deals.id)."""

    __tablename__ = "ib_accrual_cursors"

    server_id: Mapped[str] = mapped_column(ForeignKey("platform_servers.id"), primary_key=True)
    upto_deal_pk: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = created_at_column()


class IbSettlement(Base):
    """One IB's settlement of one period: paid once (the ledger transfer's key is
    `ib-settlement:{brand}:{period}:{ib}`), held, or carried below the minimum payout."""

    __tablename__ = "ib_settlements"
    __table_args__ = (UniqueConstraint("ib_id", "period"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.id"), index=True)
    ib_id: Mapped[str] = mapped_column(ForeignKey("ib_partners.id"))
    period: Mapped[str] = mapped_column(String(7))
    status: Mapped[str] = mapped_column(String(20))  # paid | carried | held
    currency: Mapped[str] = mapped_column(String(8))
    accrued: Mapped[Decimal] = mapped_column(ScaledDecimal())  # per-deal lines of the period
    period_rules: Mapped[Decimal] = mapped_column(ScaledDecimal())  # revshare, CPA, tiers
    carried_in: Mapped[Decimal] = mapped_column(ScaledDecimal())
    payable: Mapped[Decimal] = mapped_column(ScaledDecimal())  # rounded to the currency
    carried_out: Mapped[Decimal] = mapped_column(ScaledDecimal())
    ledger_transfer_id: Mapped[str | None] = mapped_column(
        ForeignKey("ledger_transfers.id"), nullable=True
    )
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = created_at_column()


class IbReferralClick(Base):
    """A visitor followed a referral link. A registration carrying the visitor id is attributed by
    the brand's first or last click within its attribution window (fxcrm.ib.attribution)."""

    __tablename__ = "ib_referral_clicks"
    __table_args__ = (
        Index("ix_ib_referral_clicks_visitor", "brand_id", "visitor_id", "clicked_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.id"))
    ib_id: Mapped[str] = mapped_column(ForeignKey("ib_partners.id"))
    link_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    visitor_id: Mapped[str] = mapped_column(String(64))
    clicked_at: Mapped[datetime] = mapped_column(UtcDateTime())


class IbRecalculation(Base):
    """A staff what-if on a past (or the open) period: a plan's rules or a client's IB changed
    over the period (`change`), previewed, then applied once as adjustment accruals (rule
    `adjustment:{id}:{rule}`) in the first open period; nothing already accrued or paid changes."""

    __tablename__ = "ib_recalculations"
    __table_args__ = (Index("ix_ib_recalculations_brand_period", "brand_id", "period"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.id"))
    period: Mapped[str] = mapped_column(String(7))  # the deals' month that is recalculated
    change: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(12))  # previewed | applied
    preview: Mapped[dict[str, Any]] = mapped_column(JSON)  # totals, per IB, sample lines
    applied: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    target_period: Mapped[str | None] = mapped_column(String(7), nullable=True)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = created_at_column()
    applied_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    applied_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class IbUnpaidDeal(Base):
    """Why an ingested deal paid no IB anything, written once per deal by the accrual (the deal is
    behind the accrual cursor, so it is never looked at again): staff read it to answer an IB.

    `reason` is a short code (unknown_login, not_attributed, excluded, no_plan, no_rate,
    opening_deal, min_hold, zero_volume, close_by_paid_on_buy_leg, hierarchy_cycle);
    `detail` is the engine's full reason (e.g. held_12s_below_60s, excluded:self_referral:ib:email).
    """

    __tablename__ = "ib_unpaid_deals"
    __table_args__ = (Index("ix_ib_unpaid_deals_brand_reason", "brand_id", "reason", "closed_at"),)

    deal_pk: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("closed_deals.id"),
        primary_key=True,
        autoincrement=False,
    )
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.id"))
    server_id: Mapped[str] = mapped_column(String(40))
    login: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(String(200))
    trader_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ib_id: Mapped[str | None] = mapped_column(String(32), nullable=True)  # the client's direct IB
    closed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = created_at_column()
