"""Staff recalculation of a period's IB commissions (fxcrm.ib.recalculation): preview what a plan
change or a re-attribution would have paid, then apply it as adjustment accruals.

Preview: admin or finance; apply: admin, with the reason given at preview (mandatory). Applying
twice answers 409 and writes nothing. Another brand's records answer 404, like missing ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from fxcrm.api.deps import Principal, SessionDep, require
from fxcrm.api.errors import Problem
from fxcrm.domain.text import CleanText
from fxcrm.ib import recalculation as recalc
from fxcrm.models.base import utcnow
from fxcrm.models.ib import IbRecalculation

router = APIRouter(prefix="/backoffice/ib", tags=["ib"])
PreviewerDep = Annotated[Principal, Depends(require("admin", "finance"))]
AdminDep = Annotated[Principal, Depends(require("admin"))]
ReaderDep = Annotated[Principal, Depends(require("admin", "finance", "auditor"))]
PROBLEM = "/problems/ib-recalculation"


class PlanChangeIn(BaseModel):
    ib_id: str | None = None  # the IB whose plan changes over the period, or
    plan_id: str | None = None  # every IB earning by this plan
    plan_version_id: str | None = None  # an existing version's rules, or
    rules: dict[str, Any] | None = None  # proposed rules (validated like a plan version)


class AttributionChangeIn(BaseModel):
    trader_id: str
    ib_id: str
    link_code: str | None = None


class ChangeIn(BaseModel):
    plan: PlanChangeIn | None = None
    attribution: AttributionChangeIn | None = None


class RecalculationCreate(BaseModel):
    brand_id: str | None = None  # may be left out by staff of a single brand
    period: str  # YYYY-MM: the deals that closed in it are recalculated
    change: ChangeIn
    reason: CleanText = Field(min_length=3, max_length=500)


class RecalculationView(BaseModel):
    id: str
    brand_id: str
    period: str
    status: str  # previewed | applied
    change: dict[str, Any]
    reason: str
    created_by: str
    created_at: datetime
    preview: dict[str, Any]  # deals, lines, totals per currency, per_ib, sample
    target_period: str | None  # where the adjustments went
    applied: dict[str, Any] | None  # the same, as applied, and how many rows were written
    applied_by: str | None
    applied_at: datetime | None


def _view(row: IbRecalculation) -> RecalculationView:
    return RecalculationView(
        id=row.id,
        brand_id=row.brand_id,
        period=row.period,
        status=row.status,
        change=row.change,
        reason=row.reason,
        created_by=row.created_by,
        created_at=row.created_at,
        preview=row.preview,
        target_period=row.target_period,
        applied=row.applied,
        applied_by=row.applied_by,
        applied_at=row.applied_at,
    )


def _problem(exc: recalc.RecalcError) -> Problem:
    titles = {404: "Not found", 409: "Already applied"}
    return Problem(
        exc.status,
        titles.get(exc.status, "Invalid recalculation"),
        str(exc),
        type_=PROBLEM,
        code=exc.code,
    )


def _brand(principal: Principal, brand_id: str | None) -> str:
    if brand_id is None:
        if len(principal.brand_ids) != 1:
            raise Problem(422, "Brand required", "name the brand_id: you work for several brands")
        return principal.brand_ids[0]
    if not principal.can_see_brand(brand_id):
        raise Problem(404, "Unknown brand", "no such brand")
    return brand_id


async def _get(session: AsyncSession, principal: Principal, recalc_id: str) -> IbRecalculation:
    row = await session.get(IbRecalculation, recalc_id)
    if row is None or not principal.can_see_brand(row.brand_id):
        raise Problem(404, "Not found", f"no recalculation {recalc_id}")
    return row


@router.post(
    "/recalculations", status_code=status.HTTP_201_CREATED, response_model=RecalculationView
)
async def preview_recalculation(
    body: RecalculationCreate, principal: PreviewerDep, session: SessionDep
) -> RecalculationView:
    """What the change would have paid on the period's deals, per IB and per deal; stored, and
    applied later by an admin. Nothing is accrued yet."""
    brand_id = _brand(principal, body.brand_id)
    try:
        period = recalc.check_period(body.period, utcnow())
        change = await recalc.parse_change(
            session, brand_id, body.change.model_dump(exclude_none=True)
        )
        row = await recalc.preview(
            session, brand_id, period, change, body.reason.strip(), principal.actor
        )
    except recalc.RecalcError as exc:
        raise _problem(exc) from exc
    await session.commit()
    return _view(row)


@router.post("/recalculations/{recalc_id}/apply", response_model=RecalculationView)
async def apply_recalculation(
    recalc_id: str, principal: AdminDep, session: SessionDep
) -> RecalculationView:
    """Writes the differences as adjustment accruals into the first open period; once."""
    await _get(session, principal, recalc_id)
    try:
        row = await recalc.apply(session, recalc_id, principal.actor)
    except recalc.RecalcError as exc:
        raise _problem(exc) from exc
    await session.commit()
    return _view(row)


@router.get("/recalculations/{recalc_id}", response_model=RecalculationView)
async def get_recalculation(
    recalc_id: str, principal: ReaderDep, session: SessionDep
) -> RecalculationView:
    return _view(await _get(session, principal, recalc_id))
