"""The double-entry ledger: accounts with running balances, and immutable transfers.

The database holds the invariants it can hold by itself (after django-hordak): amounts positive,
totals never negative, a protected account never below zero available, both sides of a transfer in
the transfer's currency (composite foreign keys), one resolution per pending transfer, one reversal
per transfer, one transfer per idempotency key. Triggers (migration 0003) forbid deleting a
transfer or changing one, except a pending transfer's state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from fxcrm.models.base import Base, UtcDateTime, created_at_column, new_id

# Available balance (see fxcrm.domain.ledger.Balances.available) of a protected account.
_AVAILABLE_NOT_NEGATIVE = (
    "NOT must_not_go_negative OR CASE WHEN normal_balance = 'debit' "
    "THEN debits_posted - credits_posted - credits_pending >= 0 "
    "ELSE credits_posted - debits_posted - debits_pending >= 0 END"
)


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        UniqueConstraint("brand_id", "code"),
        # Target of the transfers' (account, currency) foreign keys.
        UniqueConstraint("id", "currency"),
        CheckConstraint("normal_balance IN ('debit', 'credit')", name="normal_balance"),
        CheckConstraint(
            "debits_posted >= 0 AND credits_posted >= 0 "
            "AND debits_pending >= 0 AND credits_pending >= 0",
            name="totals_not_negative",
        ),
        CheckConstraint(_AVAILABLE_NOT_NEGATIVE, name="available_not_negative"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.id"))
    code: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(30))
    currency: Mapped[str] = mapped_column(String(8))
    owner_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    normal_balance: Mapped[str] = mapped_column(String(6))
    must_not_go_negative: Mapped[bool] = mapped_column(Boolean)
    debits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    debits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = created_at_column()


class LedgerTransfer(Base):
    """One movement of money. Never edited or deleted; a mistake is reversed by a new transfer."""

    __tablename__ = "ledger_transfers"
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        UniqueConstraint("pending_id"),  # a pending transfer is posted or voided once
        UniqueConstraint("reversal_of"),  # a transfer is reversed once
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="distinct_accounts"),
        CheckConstraint("phase IN ('single', 'pending', 'post', 'void')", name="phase"),
        CheckConstraint("state IN ('pending', 'posted', 'voided')", name="state"),
        CheckConstraint(
            "(phase IN ('post', 'void')) = (pending_id IS NOT NULL)", name="pending_link"
        ),
        ForeignKeyConstraint(
            ["debit_account_id", "currency"],
            ["ledger_accounts.id", "ledger_accounts.currency"],
            name="fk_ledger_transfers_debit_account_currency",
        ),
        ForeignKeyConstraint(
            ["credit_account_id", "currency"],
            ["ledger_accounts.id", "ledger_accounts.currency"],
            name="fk_ledger_transfers_credit_account_currency",
        ),
        Index("ix_ledger_transfers_debit_account", "debit_account_id", "created_at"),
        Index("ix_ledger_transfers_credit_account", "credit_account_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.id"))
    kind: Mapped[str] = mapped_column(String(20))
    phase: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(10))
    debit_account_id: Mapped[str] = mapped_column(String(32))
    credit_account_id: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(8))
    amount: Mapped[int] = mapped_column(BigInteger)
    pending_id: Mapped[str | None] = mapped_column(ForeignKey("ledger_transfers.id"), nullable=True)
    reversal_of: Mapped[str | None] = mapped_column(
        ForeignKey("ledger_transfers.id"), nullable=True
    )
    group_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    timeout_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    reference: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    # "metadata" is reserved on declarative classes.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = created_at_column()
