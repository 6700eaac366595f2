"""Who a token's subject is now: staff users, traders and IB partners as the database holds them,
and the token version that revokes every token issued before a logout, a password change or a
deactivation."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fxcrm.models import IbPartner, StaffUser, Trader

SUBJECT_MODELS: dict[str, type[StaffUser | Trader | IbPartner]] = {
    "staff": StaffUser,
    "trader": Trader,
    "ib": IbPartner,
}


@dataclass(frozen=True)
class CurrentSubject:
    role: str
    token_version: int
    brand_ids: list[str]


async def current_subject(
    session: AsyncSession, kind: str, subject_id: str
) -> CurrentSubject | None:
    """One primary-key read of only the columns that decide access; None if the subject may not
    act (unknown, of another kind, deactivated, suspended)."""
    if kind == "staff":
        staff = (
            await session.execute(
                select(StaffUser.role, StaffUser.is_active, StaffUser.token_version).where(
                    StaffUser.id == subject_id
                )
            )
        ).first()
        if staff is None or not staff.is_active:
            return None
        return CurrentSubject(role=staff.role, token_version=staff.token_version, brand_ids=[])
    if kind == "trader":
        trader = (
            await session.execute(
                select(Trader.brand_id, Trader.token_version).where(Trader.id == subject_id)
            )
        ).first()
        if trader is None:
            return None
        return CurrentSubject("trader", trader.token_version, [trader.brand_id])
    if kind == "ib":
        partner = (
            await session.execute(
                select(IbPartner.brand_id, IbPartner.status, IbPartner.token_version).where(
                    IbPartner.id == subject_id
                )
            )
        ).first()
        if partner is None or partner.status != "active":
            return None
        return CurrentSubject("ib", partner.token_version, [partner.brand_id])
    return None


async def revoke_tokens(session: AsyncSession, kind: str, subject_id: str) -> None:
    """Every token issued to this subject so far stops working (in the caller's transaction)."""
    model = SUBJECT_MODELS[kind]
    await session.execute(
        update(model).where(model.id == subject_id).values(token_version=model.token_version + 1)
    )


async def load_subject(
    session: AsyncSession, kind: str, subject_id: str, *, fresh: bool = False
) -> StaffUser | Trader | IbPartner | None:
    found = await session.get(SUBJECT_MODELS[kind], subject_id, populate_existing=fresh)
    assert found is None or isinstance(found, StaffUser | Trader | IbPartner)
    return found
