"""Brands (legal entities), staff users with roles, and IB partners."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fxcrm.models.base import Base, UtcDateTime, created_at_column, new_id, token_version_column


class Brand(Base):
    __tablename__ = "brands"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    legal_entity: Mapped[str] = mapped_column(String(200))
    # BrandConfig (fxcrm.domain.brand) as JSON: groups per account type and risk, country rules.
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = created_at_column()


class StaffUser(Base):
    __tablename__ = "staff_users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    token_version: Mapped[int] = token_version_column()
    created_at: Mapped[datetime] = created_at_column()


class StaffBrand(Base):
    """Which brands a staff user may see: every query is scoped by these."""

    __tablename__ = "staff_brands"

    staff_id: Mapped[str] = mapped_column(ForeignKey("staff_users.id"), primary_key=True)
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.id"), primary_key=True)


class IbPartner(Base):
    __tablename__ = "ib_partners"
    __table_args__ = (UniqueConstraint("brand_id", "email"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    referral_code: Mapped[str] = mapped_column(String(40), unique=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("ib_partners.id"), nullable=True)
    # active | suspended (a suspended IB's settlements are held, its accruals still recorded)
    status: Mapped[str] = mapped_column(String(12), default="active", server_default="active")
    password_hash: Mapped[str] = mapped_column(String(200))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    token_version: Mapped[int] = token_version_column()
    created_at: Mapped[datetime] = created_at_column()
