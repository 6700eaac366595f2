"""Traders (portal users), their KYC documents, platform servers and trading accounts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fxcrm.core.fields import EncryptedBytes, EncryptedText
from fxcrm.models.base import Base, UtcDateTime, created_at_column, new_id, token_version_column


class Trader(Base):
    __tablename__ = "traders"
    __table_args__ = (UniqueConstraint("brand_id", "email"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    password_hash: Mapped[str] = mapped_column(String(200))
    # PII, encrypted at rest.
    first_name: Mapped[str] = mapped_column(EncryptedText())
    last_name: Mapped[str] = mapped_column(EncryptedText())
    middle_name: Mapped[str | None] = mapped_column(EncryptedText(), nullable=True)
    date_of_birth: Mapped[str] = mapped_column(EncryptedText())  # ISO date
    phone: Mapped[str] = mapped_column(EncryptedText())
    address: Mapped[str] = mapped_column(EncryptedText())  # JSON: line1, city, postal_code
    country: Mapped[str] = mapped_column(String(2))
    account_type: Mapped[str] = mapped_column(String(10))  # wanted: retail | pro; vip by staff
    is_pep_declared: Mapped[bool] = mapped_column(Boolean, default=False)
    questionnaire: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    ib_referral_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    ib_partner_id: Mapped[str | None] = mapped_column(ForeignKey("ib_partners.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="onboarding")
    stage: Mapped[str] = mapped_column(String(40), default="registered")
    kyc_applicant_id: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    kyc_status: Mapped[str] = mapped_column(String(30), default="NOT_STARTED")
    risk_category: Mapped[str | None] = mapped_column(String(10), nullable=True)
    risk_reasons: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    rejection_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    token_version: Mapped[int] = token_version_column()
    created_at: Mapped[datetime] = created_at_column()


class KycDocument(Base):
    __tablename__ = "kyc_documents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    trader_id: Mapped[str] = mapped_column(ForeignKey("traders.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # identity | address
    doc_type: Mapped[str] = mapped_column(String(20))  # PASSPORT, ID_CARD, UTILITY_BILL, ...
    issuing_country: Mapped[str] = mapped_column(String(2))
    content_type: Mapped[str] = mapped_column(String(50))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(200))
    content: Mapped[bytes] = mapped_column(EncryptedBytes())
    # Fingerprint of (type, country, number) of an identity document: finds re-used identities.
    identity_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    provider_image_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    uploaded_at: Mapped[datetime] = created_at_column()


class PlatformServer(Base):
    __tablename__ = "platform_servers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # e.g. "mt5-demo"
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.id"), index=True)
    platform: Mapped[str] = mapped_column(String(20))  # mt5 | mt4 | ctrader | matchtrader | sirix
    name: Mapped[str] = mapped_column(String(100))
    base_url: Mapped[str] = mapped_column(String(300))
    # Connection settings without secrets (manager login, server UTC offset); secrets come from settings.
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class TradingAccount(Base):
    __tablename__ = "trading_accounts"
    __table_args__ = (UniqueConstraint("server_id", "login"), UniqueConstraint("opening_key"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    trader_id: Mapped[str] = mapped_column(ForeignKey("traders.id"), index=True)
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.id"), index=True)
    server_id: Mapped[str] = mapped_column(ForeignKey("platform_servers.id"))
    platform: Mapped[str] = mapped_column(String(20))
    # Why this account was opened ("onboarding-{trader}"): one opening, however often retried.
    opening_key: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="opening")  # opening | open
    login: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    group: Mapped[str] = mapped_column(String(100))
    leverage: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(8))
    account_type: Mapped[str] = mapped_column(String(10))
    # The passwords, shown to the trader once and then erased.
    initial_credentials: Mapped[str | None] = mapped_column(EncryptedText(), nullable=True)
    credentials_revealed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[datetime] = created_at_column()
