"""Screening results, stored provider webhooks, notifications to traders."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from fxcrm.models.base import Base, UtcDateTime, created_at_column, new_id


class ScreeningRecord(Base):
    __tablename__ = "screening_records"
    __table_args__ = (UniqueConstraint("trader_id", "screening_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    trader_id: Mapped[str] = mapped_column(ForeignKey("traders.id"), index=True)
    # Idempotency: one record per screening run (workflow id + attempt purpose).
    screening_key: Mapped[str] = mapped_column(String(200))
    list_version: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(20))  # clear | possible | strong
    top_score: Mapped[float] = mapped_column(Float)
    matches: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    is_pep: Mapped[bool] = mapped_column(Boolean, default=False)
    # A compliance officer's decision on a possible match, kept beside the evidence.
    reviewed_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    review_decision: Mapped[str | None] = mapped_column(String(20), nullable=True)
    review_reason: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    screened_at: Mapped[datetime] = created_at_column()


class ProviderWebhook(Base):
    """Every verified webhook, raw, append-only; (provider, event_key) de-duplicates redeliveries."""

    __tablename__ = "provider_webhooks"
    __table_args__ = (UniqueConstraint("provider", "event_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(30))
    event_key: Mapped[str] = mapped_column(String(200))
    provider_ref: Mapped[str] = mapped_column(String(100), index=True)
    event_type: Mapped[str] = mapped_column(String(60))
    raw_body: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, str]] = mapped_column(JSON)
    provider_created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # Set once the event reached its workflow: a redelivery of an unsignalled event signals again.
    signalled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    received_at: Mapped[datetime] = created_at_column()


class Notification(Base):
    """Messages for a trader (email/SMS delivery is a later adapter); keyed to be sent once."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("notification_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    notification_key: Mapped[str] = mapped_column(String(200))
    trader_id: Mapped[str] = mapped_column(ForeignKey("traders.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = created_at_column()
