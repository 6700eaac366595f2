"""Staff: what one deal paid and to whom, or why it paid nobody; and the deals that paid nobody,
filtered by reason, server, client or IB, with counts per reason.

The reasons are the accrual's own (IbUnpaidDeal, written once per deal): unknown_login (an account
fxcrm did not open or adopt), not_attributed, excluded (self-referral), no_plan, no_rate (the plan
pays nothing on this symbol or group), opening_deal, min_hold, zero_volume,
close_by_paid_on_buy_leg, hierarchy_cycle. Another brand's deals answer 404, like missing ones.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fxcrm.api.deps import Principal, SessionDep, require
from fxcrm.api.errors import Problem
from fxcrm.api.params import Cursor
from fxcrm.models import IbAccrual, IbAccrualCursor, IbUnpaidDeal, IngestedDeal, PlatformServer

router = APIRouter(prefix="/backoffice/ib/deals", tags=["ib"])
ReaderDep = Annotated[Principal, Depends(require("admin", "finance", "support", "auditor"))]
REASON = r"^[a-z_]{2,40}$"


class DealFacts(BaseModel):
    server_id: str
    deal_id: str
    deal_pk: int
    login: int
    position_id: str
    symbol: str
    side: str
    entry: str
    volume_lots: Decimal
    commission: Decimal
    closed_at: datetime
    opened_at: datetime | None


class PaidLine(BaseModel):
    beneficiary_id: str
    rule: str
    depth: int
    amount: Decimal
    currency: str
    period: str
    plan_version_id: str | None
    inputs: dict[str, Any]


class Unpaid(BaseModel):
    reason: str
    detail: str
    trader_id: str | None
    ib_id: str | None  # the client's direct IB, when attributed


class DealExplanation(BaseModel):
    deal: DealFacts
    # paid: `lines` (adjustments of a recalculation included); unpaid: `unpaid` says why;
    # pending: not read by the accrual yet; unrecorded: read before fxcrm kept the reasons.
    status: Literal["pending", "paid", "unpaid", "unrecorded"]
    lines: list[PaidLine]
    unpaid: Unpaid | None


class UnpaidDealView(Unpaid):
    deal_pk: int
    server_id: str
    deal_id: str
    login: int
    symbol: str
    entry: str
    volume_lots: Decimal
    closed_at: datetime


class UnpaidPage(BaseModel):
    deals: list[UnpaidDealView]
    next_after: int | None  # pass as `after` for the next page


class UnpaidSummary(BaseModel):
    since: datetime | None
    until: datetime | None
    by_reason: dict[str, int]


async def _server(session: AsyncSession, principal: Principal, server_id: str) -> PlatformServer:
    server = await session.get(PlatformServer, server_id)
    if server is None or not principal.can_see_brand(server.brand_id):
        raise Problem(404, "Not found", "no such platform server")
    return server


@router.get("/unpaid", response_model=UnpaidPage)
async def unpaid_deals(
    principal: ReaderDep,
    session: SessionDep,
    reason: Annotated[str | None, Query(pattern=REASON)] = None,
    server_id: Annotated[str | None, Query(max_length=40)] = None,
    trader_id: Annotated[str | None, Query(max_length=32)] = None,
    ib_id: Annotated[str | None, Query(max_length=32)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: Cursor = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> UnpaidPage:
    """The deals that paid nobody, oldest first, of the caller's brands."""
    query = (
        select(IbUnpaidDeal, IngestedDeal)
        .join(IngestedDeal, IngestedDeal.id == IbUnpaidDeal.deal_pk)
        .where(IbUnpaidDeal.brand_id.in_(principal.brand_ids), IbUnpaidDeal.deal_pk > after)
    )
    filters = {
        IbUnpaidDeal.reason: reason,
        IbUnpaidDeal.server_id: server_id,
        IbUnpaidDeal.trader_id: trader_id,
        IbUnpaidDeal.ib_id: ib_id,
    }
    for column, value in filters.items():
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(IbUnpaidDeal.closed_at >= since)
    if until is not None:
        query = query.where(IbUnpaidDeal.closed_at < until)
    rows = (await session.execute(query.order_by(IbUnpaidDeal.deal_pk).limit(limit))).all()
    deals = [
        UnpaidDealView(
            deal_pk=unpaid.deal_pk,
            server_id=unpaid.server_id,
            deal_id=deal.deal_id,
            login=deal.login,
            symbol=deal.symbol,
            entry=deal.entry,
            volume_lots=deal.volume_lots,
            closed_at=deal.closed_at,
            reason=unpaid.reason,
            detail=unpaid.detail,
            trader_id=unpaid.trader_id,
            ib_id=unpaid.ib_id,
        )
        for unpaid, deal in rows
    ]
    return UnpaidPage(deals=deals, next_after=deals[-1].deal_pk if len(deals) == limit else None)


@router.get("/unpaid/summary", response_model=UnpaidSummary)
async def unpaid_summary(
    principal: ReaderDep,
    session: SessionDep,
    since: datetime | None = None,
    until: datetime | None = None,
) -> UnpaidSummary:
    """How many deals paid nobody, per reason, in the caller's brands."""
    query = select(IbUnpaidDeal.reason, func.count()).where(
        IbUnpaidDeal.brand_id.in_(principal.brand_ids)
    )
    if since is not None:
        query = query.where(IbUnpaidDeal.closed_at >= since)
    if until is not None:
        query = query.where(IbUnpaidDeal.closed_at < until)
    rows = (await session.execute(query.group_by(IbUnpaidDeal.reason))).all()
    return UnpaidSummary(since=since, until=until, by_reason={r: n for r, n in rows})


@router.get("/{server_id}/{deal_id}/explanation", response_model=DealExplanation)
async def deal_explanation(
    server_id: str, deal_id: str, principal: ReaderDep, session: SessionDep
) -> DealExplanation:
    """What the deal paid, to whom and by which rule; or why it paid nobody; or that the accrual
    has not read it yet."""
    await _server(session, principal, server_id)
    deal = await session.scalar(
        select(IngestedDeal).where(
            IngestedDeal.server_id == server_id, IngestedDeal.deal_id == deal_id
        )
    )
    if deal is None:
        raise Problem(404, "Not found", "no such deal on this server")
    facts = DealFacts(
        server_id=server_id,
        deal_id=deal.deal_id,
        deal_pk=deal.id,
        login=deal.login,
        position_id=deal.position_id,
        symbol=deal.symbol,
        side=deal.side,
        entry=deal.entry,
        volume_lots=deal.volume_lots,
        commission=deal.commission,
        closed_at=deal.closed_at,
        opened_at=deal.opened_at,
    )
    accruals = (
        await session.scalars(
            select(IbAccrual).where(IbAccrual.deal_pk == deal.id).order_by(IbAccrual.id)
        )
    ).all()
    lines = [PaidLine.model_validate(a, from_attributes=True) for a in accruals]
    recorded = await session.get(IbUnpaidDeal, deal.id)
    # Why it paid nothing when accrued; a later recalculation may still have paid adjustments.
    unpaid = Unpaid.model_validate(recorded, from_attributes=True) if recorded else None
    status: Literal["pending", "paid", "unpaid", "unrecorded"] = "pending"
    if lines:
        status = "paid"
    elif unpaid is not None:
        status = "unpaid"
    else:
        cursor = await session.get(IbAccrualCursor, server_id)
        if cursor is not None and cursor.upto_deal_pk >= deal.id:
            status = "unrecorded"  # read before the reasons were kept (0009)
    return DealExplanation(deal=facts, status=status, lines=lines, unpaid=unpaid)
