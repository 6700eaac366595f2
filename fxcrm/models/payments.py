"""Payments (deposits, withdrawals, internal transfers), finance approvals, alerts and PSP
reconciliation. Money itself lives in the ledger (fxcrm.models.ledger); a payment row is the
business record a workflow drives and the portal and finance read.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from fxcrm.core.fields import EncryptedText
from fxcrm.models.base import Base, UtcDateTime, created_at_column, new_id, utcnow


class Payment(Base):
    """One deposit, withdrawal or internal transfer, in one currency, in minor units.

    Where the money comes from and goes to: `source_kind` / `target_kind` are "psp", "wallet" or
    "account" (a trading account, `*_account_id`); a wallet is the trader's wallet in `currency`
    (or `target_currency` for the target of a conversion)."""

    __tablename__ = "payments"
    __table_args__ = (
        # A retried POST with the same Idempotency-Key finds the payment it created.
        UniqueConstraint("trader_id", "idempotency_key"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("kind IN ('deposit', 'withdrawal', 'transfer')", name="kind"),
        CheckConstraint("source_kind IN ('psp', 'wallet', 'account')", name="source_kind"),
        CheckConstraint("target_kind IN ('psp', 'wallet', 'account')", name="target_kind"),
        Index("ix_payments_queue", "brand_id", "kind", "status"),
        Index("ix_payments_trader_created", "trader_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.id"))
    trader_id: Mapped[str] = mapped_column(ForeignKey("traders.id"))
    kind: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(30))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))  # same key, other body: refused
    workflow_id: Mapped[str] = mapped_column(String(100), unique=True)

    currency: Mapped[str] = mapped_column(String(8))
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units of `currency`
    source_kind: Mapped[str] = mapped_column(String(10))
    source_account_id: Mapped[str | None] = mapped_column(
        ForeignKey("trading_accounts.id"), nullable=True
    )
    target_kind: Mapped[str] = mapped_column(String(10))
    target_account_id: Mapped[str | None] = mapped_column(
        ForeignKey("trading_accounts.id"), nullable=True
    )
    # Transfers across currencies: what arrives, at which recorded rate.
    target_currency: Mapped[str | None] = mapped_column(String(8), nullable=True)
    target_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    fx_rate: Mapped[str | None] = mapped_column(String(40), nullable=True)

    # PSP side (deposits and withdrawals).
    method: Mapped[str | None] = mapped_column(String(20), nullable=True)
    psp: Mapped[str | None] = mapped_column(String(30), nullable=True)
    provider_ref: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    amount_received: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The instrument as the PSP knows it (card token, network + address, IBAN): encrypted, and an
    # HMAC fingerprint to compare withdrawal destinations with the methods deposited from.
    instrument: Mapped[str | None] = mapped_column(EncryptedText(), nullable=True)
    instrument_fingerprint: Mapped[str | None] = mapped_column(
        String(64), nullable=True, index=True
    )
    # What the client sees to finish the payment: redirect URL, crypto address, bank instructions.
    next_action: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    is_ftd: Mapped[bool] = mapped_column(Boolean, default=False)  # the trader's first deposit
    risk_flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    approvals_required: Mapped[int] = mapped_column(Integer, default=0)
    failure_code: Mapped[str | None] = mapped_column(String(60), nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class PaymentApproval(Base):
    """A finance decision on a withdrawal; one per approver, so four eyes are two rows."""

    __tablename__ = "payment_approvals"
    __table_args__ = (UniqueConstraint("payment_id", "approver_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    approver_id: Mapped[str] = mapped_column(ForeignKey("staff_users.id"))
    decision: Mapped[str] = mapped_column(String(10))  # approve | reject
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = created_at_column()


class PaymentAlert(Base):
    """Something finance must look at: a platform credit that failed (money kept in the wallet),
    a payout the PSP refused, an escalated approval, a chargeback into a receivable, ..."""

    __tablename__ = "payment_alerts"
    __table_args__ = (UniqueConstraint("alert_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    alert_key: Mapped[str] = mapped_column(String(200))  # raised once per business event
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.id"), index=True)
    payment_id: Mapped[str | None] = mapped_column(ForeignKey("payments.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(10), default="open")  # open | resolved
    raised_at: Mapped[datetime] = created_at_column()
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(32), nullable=True)


class ReconciliationRun(Base):
    """One comparison of a PSP's settlement report for one day with the ledger and platforms."""

    __tablename__ = "reconciliation_runs"
    __table_args__ = (UniqueConstraint("psp", "day"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    psp: Mapped[str] = mapped_column(String(30))
    day: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12))  # running | clean | breaks
    lines: Mapped[int] = mapped_column(Integer, default=0)
    matched: Mapped[int] = mapped_column(Integer, default=0)
    breaks: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = created_at_column()
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class ReconciliationBreak(Base):
    """A difference finance must resolve; the resolution is a ledger correction, audited."""

    __tablename__ = "reconciliation_breaks"
    __table_args__ = (UniqueConstraint("run_id", "break_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(ForeignKey("reconciliation_runs.id"), index=True)
    break_key: Mapped[str] = mapped_column(String(200))  # kind:provider_ref (re-runs upsert)
    psp: Mapped[str] = mapped_column(String(30))
    # missing_in_ledger | missing_at_psp | duplicate | amount_mismatch | currency_mismatch |
    # platform_mismatch
    kind: Mapped[str] = mapped_column(String(30))
    provider_ref: Mapped[str | None] = mapped_column(String(100), nullable=True)
    payment_id: Mapped[str | None] = mapped_column(ForeignKey("payments.id"), nullable=True)
    expected: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # ledger side
    actual: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # PSP side
    status: Mapped[str] = mapped_column(String(10), default="open")  # open | resolved
    resolution: Mapped[str | None] = mapped_column(String(500), nullable=True)
    correction_transfer_id: Mapped[str | None] = mapped_column(
        ForeignKey("ledger_transfers.id"), nullable=True
    )
    resolved_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[datetime] = created_at_column()
