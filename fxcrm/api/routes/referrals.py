"""Referral clicks: a visitor followed an IB's link. Anonymous (the visitor has no account yet);
the registration that later carries the same visitor id is attributed by the brand's first or
last click within its window."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, status
from pydantic import BaseModel, Field
from sqlalchemy import select

from fxcrm.api.deps import SessionDep
from fxcrm.api.errors import Problem
from fxcrm.ib.attribution import VISITOR_ID, record_click, resolve_code
from fxcrm.models import Brand
from fxcrm.models.base import utcnow

router = APIRouter(prefix="/portal", tags=["portal"])


class ClickRequest(BaseModel):
    code: str = Field(min_length=1, max_length=40)
    visitor_id: str = Field(pattern=VISITOR_ID)


class ClickReceipt(BaseModel):
    click_id: int
    clicked_at: datetime


@router.post(
    "/{brand_code}/referral-clicks",
    status_code=status.HTTP_201_CREATED,
    response_model=ClickReceipt,
)
async def referral_click(brand_code: str, body: ClickRequest, session: SessionDep) -> ClickReceipt:
    brand_id = await session.scalar(select(Brand.id).where(Brand.code == brand_code))
    if brand_id is None:
        raise Problem(404, "Unknown brand", f"no brand {brand_code!r}")
    referrer = await resolve_code(session, brand_id, body.code)
    if referrer is None:
        raise Problem(
            422,
            "Unknown referral code",
            "the referral code does not exist",
            type_="/problems/referral",
            field="code",
        )
    click = await record_click(session, brand_id, referrer, body.visitor_id, utcnow())
    await session.commit()
    return ClickReceipt(click_id=click.id, clicked_at=click.clicked_at)
