"""The IB partner portal: its own profile and links, its downline tree with its clients (PII
masked, no client profit), its per-trade commissions with their explanation, period totals,
settlements and payouts.

An IB sees itself and its downline only: anything else answers 404, like a missing record. The
numbers come from fxcrm.ib.reports, the same functions the back office calls.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fxcrm.api.deps import Principal, SessionDep, require
from fxcrm.api.errors import Problem
from fxcrm.api.params import Cursor
from fxcrm.api.routes.ib_admin import AssignmentView, LinkView, assignment_views, link_view
from fxcrm.domain.masking import mask_email, mask_name
from fxcrm.ib import reports
from fxcrm.models import IbAccrual, IbPartner, IbReferralLink, Trader
from fxcrm.models.base import utcnow

router = APIRouter(prefix="/partner", tags=["partner"])
IbDep = Annotated[Principal, Depends(require("ib"))]


class Master(BaseModel):
    ib_id: str
    name: str


class PartnerMe(BaseModel):
    ib_id: str
    name: str
    email: str
    referral_code: str
    status: str
    master: Master | None
    links: list[LinkView]
    plan_assignments: list[AssignmentView]
    downline_size: int


class ClientView(BaseModel):
    """A referred client as the IB may see them: enough to recognise, nothing to misuse."""

    trader_id: str
    name: str  # masked
    email: str  # masked
    country: str
    since: datetime
    link_code: str | None
    excluded: bool  # a self-referral: its trades pay nobody


class DownlineNode(BaseModel):
    ib_id: str
    name: str
    email: str  # masked below the caller
    parent_id: str | None
    depth: int  # 0: the node asked for
    status: str
    clients: list[ClientView]


class Downline(BaseModel):
    root: str
    at: datetime
    nodes: list[DownlineNode]


async def _me(session: AsyncSession, principal: Principal) -> IbPartner:
    partner = await session.get(IbPartner, principal.id)
    if partner is None or not principal.can_see_brand(partner.brand_id):
        raise Problem(404, "Not found", "no such IB")
    return partner


async def _subtree(
    session: AsyncSession, me: IbPartner, root: str, at: datetime
) -> tuple[reports.Tree, list[tuple[str, int]]]:
    """The tree at `at`, and (ib, depth) of `root` and everything under it, if `root` is the
    caller or below it."""
    tree = await reports.tree_at(session, me.brand_id, at)
    mine = [(me.id, 0), *tree.descendants(me.id)]
    if root == me.id:
        return tree, mine
    if root not in {ib for ib, _ in mine}:
        raise Problem(404, "Not found", "no such IB in your downline")
    return tree, [(root, 0), *tree.descendants(root)]


@router.get("/me", response_model=PartnerMe)
async def partner_me(principal: IbDep, session: SessionDep) -> PartnerMe:
    me = await _me(session, principal)
    tree, subtree = await _subtree(session, me, me.id, utcnow())
    master_id = tree.parents.get(me.id)
    master = await session.get(IbPartner, master_id) if master_id else None
    links = (
        await session.scalars(
            select(IbReferralLink)
            .where(IbReferralLink.ib_id == me.id)
            .order_by(IbReferralLink.created_at)
        )
    ).all()
    return PartnerMe(
        ib_id=me.id,
        name=me.name,
        email=me.email,
        referral_code=me.referral_code,
        status=me.status,
        master=Master(ib_id=master.id, name=master.name) if master else None,
        links=[link_view(link) for link in links],
        plan_assignments=await assignment_views(session, me.id),
        downline_size=len(subtree) - 1,
    )


@router.get("/downline", response_model=Downline)
async def downline(principal: IbDep, session: SessionDep, ib_id: str | None = None) -> Downline:
    """The tree now, from the caller (or one of its sub-IBs), with each IB's clients."""
    me = await _me(session, principal)
    now = utcnow()
    tree, subtree = await _subtree(session, me, ib_id or me.id, now)
    ids = [ib for ib, _ in subtree]
    partners = {
        p.id: p
        for p in (await session.scalars(select(IbPartner).where(IbPartner.id.in_(ids)))).all()
    }
    attributions = await reports.current_attributions(session, ids, now)
    traders = {
        t.id: t
        for t in (
            await session.scalars(
                select(Trader).where(Trader.id.in_({a.trader_id for a in attributions}))
            )
        ).all()
    }
    clients: dict[str, list[ClientView]] = {ib: [] for ib in ids}
    for a in attributions:
        t = traders[a.trader_id]
        clients[a.ib_id].append(
            ClientView(
                trader_id=t.id,
                name=f"{mask_name(t.first_name)} {mask_name(t.last_name)}",
                email=mask_email(t.email),
                country=t.country,
                since=a.effective_from,
                link_code=a.link_code,
                excluded=a.excluded is not None,
            )
        )
    return Downline(
        root=ids[0],
        at=now,
        nodes=[
            DownlineNode(
                ib_id=ib,
                name=partners[ib].name,
                email=partners[ib].email if ib == me.id else mask_email(partners[ib].email),
                parent_id=tree.parents.get(ib),
                depth=depth,
                status=partners[ib].status,
                clients=clients[ib],
            )
            for ib, depth in subtree
        ],
    )


def _period(period: str) -> str:
    if not reports.valid_period(period):
        raise Problem(422, "Invalid period", "period is YYYY-MM", code="invalid_period")
    return period


@router.get("/clients/{trader_id}/commissions", response_model=reports.CommissionPage)
async def client_commissions(
    trader_id: str,
    principal: IbDep,
    session: SessionDep,
    period: str | None = None,
    after: Cursor = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> reports.CommissionPage:
    """What the caller earned on one client: a client of its downline now, or one it earned on
    before (a client re-assigned since keeps its history)."""
    me = await _me(session, principal)
    _, subtree = await _subtree(session, me, me.id, utcnow())
    current = await reports.current_attributions(session, [ib for ib, _ in subtree], utcnow())
    earned_on = await session.scalar(
        select(IbAccrual.id)
        .where(IbAccrual.beneficiary_id == me.id, IbAccrual.trader_id == trader_id)
        .limit(1)
    )
    if earned_on is None and all(a.trader_id != trader_id for a in current):
        raise Problem(404, "Not found", "no such client in your downline")
    return await reports.commission_lines(
        session,
        me.id,
        period=_period(period) if period else None,
        trader_id=trader_id,
        after=after,
        limit=limit,
    )


@router.get("/commissions", response_model=reports.CommissionPage)
async def commissions(
    principal: IbDep,
    session: SessionDep,
    period: str | None = None,
    after: Cursor = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> reports.CommissionPage:
    me = await _me(session, principal)
    return await reports.commission_lines(
        session, me.id, period=_period(period) if period else None, after=after, limit=limit
    )


@router.get("/periods/{period}", response_model=reports.PeriodTotals)
async def period_totals(period: str, principal: IbDep, session: SessionDep) -> reports.PeriodTotals:
    me = await _me(session, principal)
    return await reports.period_totals(session, me.id, _period(period))


@router.get("/settlements", response_model=list[reports.SettlementView])
async def settlements(principal: IbDep, session: SessionDep) -> list[reports.SettlementView]:
    me = await _me(session, principal)
    return await reports.settlements(session, me.id)


@router.get("/payouts", response_model=list[reports.SettlementView])
async def payouts(principal: IbDep, session: SessionDep) -> list[reports.SettlementView]:
    """The settlements that were paid into the IB's wallet."""
    me = await _me(session, principal)
    return await reports.settlements(session, me.id, status="paid")
