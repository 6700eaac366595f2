"""What the platform sync mirrors: closed deals, account state, the ingestion cursor, risk alerts."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fxcrm.models.base import Base, UtcDateTime, created_at_column
from fxcrm.models.types import ScaledDecimal


class IngestedDeal(Base):
    """One closing deal, as the platform reported it. (server, deal id) makes ingestion idempotent."""

    __tablename__ = "closed_deals"
    __table_args__ = (
        UniqueConstraint("server_id", "deal_id"),
        Index("ix_closed_deals_server_login_time", "server_id", "login", "closed_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    server_id: Mapped[str] = mapped_column(ForeignKey("platform_servers.id"))
    deal_id: Mapped[str] = mapped_column(String(64))
    login: Mapped[int] = mapped_column(BigInteger)
    position_id: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    entry: Mapped[str] = mapped_column(String(8))
    volume_lots: Mapped[Decimal] = mapped_column(ScaledDecimal())
    price: Mapped[Decimal] = mapped_column(ScaledDecimal())
    profit: Mapped[Decimal] = mapped_column(ScaledDecimal())
    commission: Mapped[Decimal] = mapped_column(ScaledDecimal())
    swap: Mapped[Decimal] = mapped_column(ScaledDecimal())
    closed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # When the position opened, if the platform said (ClosedDeal.opened_at): IB minimum holding time.
    opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON)
    ingested_at: Mapped[datetime] = created_at_column()


class IngestedBalanceOp(Base):
    """One balance or credit operation, as the platform booked it (fxcrm's own, with its
    reference in the comment, and a dealer's). (server, ticket) makes ingestion idempotent."""

    __tablename__ = "platform_balance_ops"
    __table_args__ = (UniqueConstraint("server_id", "ticket"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    server_id: Mapped[str] = mapped_column(ForeignKey("platform_servers.id"))
    ticket: Mapped[str] = mapped_column(String(64))
    login: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(10))  # balance | credit
    amount: Mapped[Decimal] = mapped_column(ScaledDecimal())
    comment: Mapped[str] = mapped_column(String(100))
    booked_at: Mapped[datetime] = mapped_column(UtcDateTime())
    raw: Mapped[dict[str, Any]] = mapped_column(JSON)
    ingested_at: Mapped[datetime] = created_at_column()


class AccountMirror(Base):
    """The platform's latest view of a trading account."""

    __tablename__ = "account_mirrors"

    server_id: Mapped[str] = mapped_column(ForeignKey("platform_servers.id"), primary_key=True)
    login: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    group: Mapped[str] = mapped_column(String(100))
    leverage: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(8))
    access: Mapped[str] = mapped_column(String(20))
    balance: Mapped[Decimal] = mapped_column(ScaledDecimal())
    credit: Mapped[Decimal] = mapped_column(ScaledDecimal())
    equity: Mapped[Decimal] = mapped_column(ScaledDecimal())
    margin: Mapped[Decimal] = mapped_column(ScaledDecimal())
    free_margin: Mapped[Decimal] = mapped_column(ScaledDecimal())
    margin_level: Mapped[Decimal | None] = mapped_column(ScaledDecimal(), nullable=True)
    synced_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # The commission of the open positions, already off the platform balance but reported again
    # on the closing records (TradingPlatformGateway.open_commission_reported_on_close): what of
    # it is in the ledger mirror. Zero on the other platforms.
    open_commission: Mapped[Decimal] = mapped_column(
        ScaledDecimal(), default=Decimal(0), server_default="0"
    )


class SyncCursor(Base):
    """How far closed-deal ingestion has read on a server (deal close time, UTC)."""

    __tablename__ = "sync_cursors"

    server_id: Mapped[str] = mapped_column(ForeignKey("platform_servers.id"), primary_key=True)
    deals_until: Mapped[datetime] = mapped_column(UtcDateTime())
    deals_ingested: Mapped[int] = mapped_column(BigInteger, default=0)
    # closed_deals.id up to which realized P/L is in the ledger (fxcrm.activities.trading_pnl).
    pnl_posted_upto: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # platform_balance_ops.id up to which the operations are in the ledger (same activity).
    ops_posted_upto: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class RiskAlert(Base):
    """An alert for the dealing desk; one open alert per (server, login, kind) at a time."""

    __tablename__ = "risk_alerts"
    __table_args__ = (UniqueConstraint("alert_key"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    alert_key: Mapped[str] = mapped_column(String(200))  # server:login:kind:episode
    server_id: Mapped[str] = mapped_column(ForeignKey("platform_servers.id"))
    login: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(30))  # margin_level | equity
    value: Mapped[Decimal] = mapped_column(ScaledDecimal())
    threshold: Mapped[Decimal] = mapped_column(ScaledDecimal())
    status: Mapped[str] = mapped_column(String(10), default="open")  # pending | open | cleared
    raised_at: Mapped[datetime] = created_at_column()
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
