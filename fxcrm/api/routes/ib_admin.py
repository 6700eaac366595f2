"""Staff side of the IB programme: partners, referral links, the hierarchy, plans and their
versions, plan assignments, client attributions, and the commission views the partner sees.

Every change is audited. Nothing settled is rewritten: a date inside a settled period is refused
(the recalculation flow adds adjustments instead), plan versions only ever start after the latest.
Another brand's records answer 404, like missing ones.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from pydantic import AwareDatetime, BaseModel, EmailStr, Field, model_validator
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fxcrm.api.deps import Principal, SessionDep, require
from fxcrm.api.errors import Problem
from fxcrm.api.params import Cursor, Offset
from fxcrm.core.audit import append_audit
from fxcrm.core.security import hash_password
from fxcrm.domain.ib.hierarchy import HierarchyError, ParentLink
from fxcrm.domain.ib.plans import PlanError, parse_plan
from fxcrm.domain.ib.settlement import period_of
from fxcrm.domain.passwords import (
    MAX_LENGTH,
    MIN_LENGTH,
    NewPassword,
    check_password,
    personal_words,
)
from fxcrm.domain.text import CleanText
from fxcrm.ib import reports
from fxcrm.ib.attribution import Referrer, attribute
from fxcrm.ib.periods import closed_through
from fxcrm.models import (
    IbAttribution,
    IbParentLink,
    IbPartner,
    IbPlan,
    IbPlanAssignment,
    IbPlanVersion,
    IbReferralLink,
    Trader,
)
from fxcrm.models.base import utcnow

router = APIRouter(prefix="/backoffice", tags=["ib"])
AdminDep = Annotated[Principal, Depends(require("admin"))]
ReaderDep = Annotated[Principal, Depends(require("admin", "finance", "support", "auditor"))]
CODE = r"^[A-Za-z0-9_-]{3,40}$"


# ---- schemas ----


class IbCreate(BaseModel):
    brand_id: str | None = None  # may be left out by staff of a single brand
    name: CleanText = Field(min_length=1, max_length=200)
    email: EmailStr
    password: NewPassword = Field(min_length=MIN_LENGTH, max_length=MAX_LENGTH)
    parent_id: str | None = None
    referral_code: str | None = Field(default=None, pattern=CODE)
    effective_from: AwareDatetime | None = None  # of the link to the master; default now

    @model_validator(mode="after")
    def _password_is_not_personal(self) -> IbCreate:
        check_password(self.password, personal_words(self.name, str(self.email)))
        return self


class IbView(BaseModel):
    ib_id: str
    brand_id: str
    name: str
    email: str
    referral_code: str
    parent_id: str | None
    status: str
    created_at: datetime
    direct_sub_ibs: int
    downline_size: int  # every IB below it, at any depth, now


class ParentLinkView(BaseModel):
    parent_id: str | None
    effective_from: datetime
    reason: str | None
    created_by: str | None


class LinkView(BaseModel):
    link_id: str
    code: str
    name: str
    created_at: datetime


class AssignmentView(BaseModel):
    assignment_id: str
    plan_id: str
    link_code: str | None
    effective_from: datetime
    created_by: str | None


class IbDetail(IbView):
    hierarchy: list[ParentLinkView]
    links: list[LinkView]
    plan_assignments: list[AssignmentView]


class StatusChange(BaseModel):
    reason: CleanText = Field(min_length=3, max_length=500)


class MoveRequest(BaseModel):
    parent_id: str | None  # None: top level
    effective_from: AwareDatetime
    reason: CleanText = Field(min_length=3, max_length=500)


class LinkCreate(BaseModel):
    name: CleanText = Field(min_length=1, max_length=100)
    code: str | None = Field(default=None, pattern=CODE)


class PlanCreate(BaseModel):
    brand_id: str | None = None
    name: CleanText = Field(min_length=1, max_length=100)


class VersionView(BaseModel):
    version_id: str
    version: int
    effective_from: datetime
    rules: dict[str, object]
    created_by: str | None
    created_at: datetime


class PlanView(BaseModel):
    plan_id: str
    brand_id: str
    name: str
    created_at: datetime
    versions: list[VersionView]


class VersionCreate(BaseModel):
    effective_from: AwareDatetime
    rules: dict[str, object]


class AssignmentCreate(BaseModel):
    plan_id: str
    effective_from: AwareDatetime
    link_code: str | None = None  # only clients who came through this link of the IB


class AttributionCreate(BaseModel):
    ib_id: str
    effective_from: AwareDatetime
    reason: CleanText = Field(min_length=3, max_length=500)
    link_code: str | None = None


class AttributionView(BaseModel):
    attribution_id: str
    trader_id: str
    ib_id: str
    effective_from: datetime
    link_code: str | None
    source: str
    excluded: str | None
    reason: str | None
    created_by: str | None
    created_at: datetime


# ---- scoping and guards ----


def _brand(principal: Principal, brand_id: str | None) -> str:
    if brand_id is None:
        if len(principal.brand_ids) != 1:
            raise Problem(422, "Brand required", "name the brand_id: you work for several brands")
        return principal.brand_ids[0]
    if not principal.can_see_brand(brand_id):
        raise Problem(404, "Unknown brand", "no such brand")
    return brand_id


async def _ib(session: AsyncSession, principal: Principal, ib_id: str) -> IbPartner:
    partner = await session.get(IbPartner, ib_id)
    if partner is None or not principal.can_see_brand(partner.brand_id):
        raise Problem(404, "Not found", f"no IB {ib_id}")
    return partner


async def _plan(session: AsyncSession, principal: Principal, plan_id: str) -> IbPlan:
    plan = await session.get(IbPlan, plan_id)
    if plan is None or not principal.can_see_brand(plan.brand_id):
        raise Problem(404, "Not found", f"no plan {plan_id}")
    return plan


async def _trader(session: AsyncSession, principal: Principal, trader_id: str) -> Trader:
    trader = await session.get(Trader, trader_id)
    if trader is None or not principal.can_see_brand(trader.brand_id):
        raise Problem(404, "Not found", "no such trader")
    return trader


async def ensure_open_period(session: AsyncSession, brand_id: str, at: datetime) -> None:
    """Refuses a date inside a settled period: what was paid is never re-derived."""
    settled = await closed_through(session, brand_id)
    if settled is not None and period_of(at) <= settled:
        raise Problem(
            422,
            "Period settled",
            f"{at.date()} falls in {period_of(at)}, settled up to {settled}; "
            "use a recalculation to adjust a settled period",
            type_="/problems/ib",
            code="period_settled",
        )


async def _code_taken(session: AsyncSession, code: str) -> bool:
    return bool(
        await session.scalar(select(IbPartner.id).where(IbPartner.referral_code == code))
        or await session.scalar(select(IbReferralLink.id).where(IbReferralLink.code == code))
    )


async def _new_code(session: AsyncSession, wanted: str | None) -> str:
    if wanted is not None:
        if await _code_taken(session, wanted):
            raise Problem(409, "Code taken", f"the code {wanted!r} is in use", code="code_taken")
        return wanted
    while True:
        code = secrets.token_urlsafe(6).replace("-", "").replace("_", "").upper()[:8]
        if len(code) >= 6 and not await _code_taken(session, code):
            return code


async def _views(session: AsyncSession, partners: list[IbPartner]) -> list[IbView]:
    now = utcnow()
    trees: dict[str, reports.Tree] = {}
    out = []
    for p in partners:
        if p.brand_id not in trees:
            trees[p.brand_id] = await reports.tree_at(session, p.brand_id, now)
        tree = trees[p.brand_id]
        out.append(
            IbView(
                ib_id=p.id,
                brand_id=p.brand_id,
                name=p.name,
                email=p.email,
                referral_code=p.referral_code,
                parent_id=tree.parents.get(p.id),
                status=p.status,
                created_at=p.created_at,
                direct_sub_ibs=len(tree.children.get(p.id, [])),
                downline_size=len(tree.descendants(p.id)),
            )
        )
    return out


# ---- partners ----


@router.post("/ib", status_code=status.HTTP_201_CREATED, response_model=IbView)
async def create_ib(body: IbCreate, principal: AdminDep, session: SessionDep) -> IbView:
    brand_id = _brand(principal, body.brand_id)
    email = body.email.lower()
    effective_from = body.effective_from or utcnow()
    # argon2 is slow on purpose: hash before the write transaction.
    password_hash = await asyncio.to_thread(hash_password, body.password)
    if body.parent_id is not None:
        parent = await _ib(session, principal, body.parent_id)
        if parent.brand_id != brand_id:
            raise Problem(404, "Not found", f"no IB {body.parent_id}")
    if await session.scalar(
        select(IbPartner.id).where(IbPartner.brand_id == brand_id, IbPartner.email == email)
    ):
        raise Problem(409, "Email taken", "an IB of the brand has this email", code="email_taken")
    partner = IbPartner(
        brand_id=brand_id,
        email=email,
        name=body.name.strip(),
        referral_code=await _new_code(session, body.referral_code),
        parent_id=body.parent_id if effective_from <= utcnow() else None,
        password_hash=password_hash,
    )
    session.add(partner)
    try:
        await session.flush()
    except IntegrityError:
        raise Problem(409, "Conflict", "email or referral code taken", code="conflict") from None
    session.add(
        IbParentLink(
            ib_id=partner.id,
            parent_id=body.parent_id,
            effective_from=effective_from,
            reason="created",
            created_by=principal.id,
        )
    )
    await append_audit(
        session,
        actor=principal.actor,
        action="ib.created",
        entity_type="ib_partner",
        entity_id=partner.id,
        brand_id=brand_id,
        after={
            "name": partner.name,
            "email": email,
            "referral_code": partner.referral_code,
            "parent_id": body.parent_id,
            "effective_from": effective_from.isoformat(),
        },
    )
    await session.commit()
    return (await _views(session, [partner]))[0]


@router.get("/ib", response_model=list[IbView])
async def list_ibs(
    principal: ReaderDep,
    session: SessionDep,
    brand_id: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> list[IbView]:
    brands = [_brand(principal, brand_id)] if brand_id else principal.brand_ids
    query = select(IbPartner).where(IbPartner.brand_id.in_(brands))
    if status:
        query = query.where(IbPartner.status == status)
    rows = (
        await session.scalars(
            query.order_by(IbPartner.created_at, IbPartner.id).limit(limit).offset(offset)
        )
    ).all()
    return await _views(session, list(rows))


@router.get("/ib/{ib_id}", response_model=IbDetail)
async def ib_detail(ib_id: str, principal: ReaderDep, session: SessionDep) -> IbDetail:
    partner = await _ib(session, principal, ib_id)
    view = (await _views(session, [partner]))[0]
    links = (
        await session.scalars(
            select(IbParentLink)
            .where(IbParentLink.ib_id == ib_id)
            .order_by(IbParentLink.effective_from)
        )
    ).all()
    referral_links = (
        await session.scalars(
            select(IbReferralLink)
            .where(IbReferralLink.ib_id == ib_id)
            .order_by(IbReferralLink.created_at)
        )
    ).all()
    return IbDetail(
        **view.model_dump(),
        hierarchy=[
            ParentLinkView(
                parent_id=link.parent_id,
                effective_from=link.effective_from,
                reason=link.reason,
                created_by=link.created_by,
            )
            for link in links
        ],
        links=[link_view(link) for link in referral_links],
        plan_assignments=await assignment_views(session, ib_id),
    )


async def _set_status(
    session: AsyncSession, principal: Principal, ib_id: str, wanted: str, reason: str
) -> IbView:
    partner = await _ib(session, principal, ib_id)
    if partner.status == wanted:
        raise Problem(409, "No change", f"the IB is already {wanted}", code=f"already_{wanted}")
    before = partner.status
    partner.status = wanted
    await append_audit(
        session,
        actor=principal.actor,
        action="ib.suspended" if wanted == "suspended" else "ib.reactivated",
        entity_type="ib_partner",
        entity_id=partner.id,
        brand_id=partner.brand_id,
        before={"status": before},
        after={"status": wanted, "reason": reason},
    )
    await session.commit()
    return (await _views(session, [partner]))[0]


@router.post("/ib/{ib_id}/suspend", response_model=IbView)
async def suspend_ib(
    ib_id: str, body: StatusChange, principal: AdminDep, session: SessionDep
) -> IbView:
    """A suspended IB still accrues; its settlements are held until it is reactivated."""
    return await _set_status(session, principal, ib_id, "suspended", body.reason)


@router.post("/ib/{ib_id}/reactivate", response_model=IbView)
async def reactivate_ib(
    ib_id: str, body: StatusChange, principal: AdminDep, session: SessionDep
) -> IbView:
    return await _set_status(session, principal, ib_id, "active", body.reason)


# ---- referral links ----


def link_view(link: IbReferralLink) -> LinkView:
    return LinkView(link_id=link.id, code=link.code, name=link.name, created_at=link.created_at)


@router.post("/ib/{ib_id}/links", status_code=status.HTTP_201_CREATED, response_model=LinkView)
async def create_link(
    ib_id: str, body: LinkCreate, principal: AdminDep, session: SessionDep
) -> LinkView:
    partner = await _ib(session, principal, ib_id)
    link = IbReferralLink(
        ib_id=partner.id, code=await _new_code(session, body.code), name=body.name.strip()
    )
    session.add(link)
    try:
        await session.flush()
    except IntegrityError:
        raise Problem(409, "Code taken", "the code is in use", code="code_taken") from None
    await append_audit(
        session,
        actor=principal.actor,
        action="ib.link_created",
        entity_type="ib_referral_link",
        entity_id=link.id,
        brand_id=partner.brand_id,
        after={"ib_id": partner.id, "code": link.code, "name": link.name},
    )
    await session.commit()
    return link_view(link)


@router.get("/ib/{ib_id}/links", response_model=list[LinkView])
async def list_links(ib_id: str, principal: ReaderDep, session: SessionDep) -> list[LinkView]:
    await _ib(session, principal, ib_id)
    links = (
        await session.scalars(
            select(IbReferralLink)
            .where(IbReferralLink.ib_id == ib_id)
            .order_by(IbReferralLink.created_at)
        )
    ).all()
    return [link_view(link) for link in links]


# ---- hierarchy ----


@router.post("/ib/{ib_id}/move", response_model=IbDetail)
async def move_ib(
    ib_id: str, body: MoveRequest, principal: AdminDep, session: SessionDep
) -> IbDetail:
    """From `effective_from`, the IB (and its own downline with it) sits under `parent_id`.
    Trades before the date keep the old chain."""
    partner = await _ib(session, principal, ib_id)
    if body.parent_id is not None:
        parent = await _ib(session, principal, body.parent_id)
        if parent.brand_id != partner.brand_id:
            raise Problem(404, "Not found", f"no IB {body.parent_id}")
    await ensure_open_period(session, partner.brand_id, body.effective_from)
    hierarchy = await reports.load_hierarchy(session, partner.brand_id)
    try:
        hierarchy.check_move(ib_id, body.parent_id, body.effective_from)
    except HierarchyError as exc:
        raise Problem(
            422, "Hierarchy cycle", str(exc), type_="/problems/ib", code=exc.code
        ) from exc
    links = (await session.scalars(select(IbParentLink).where(IbParentLink.ib_id == ib_id))).all()
    if any(link.effective_from == body.effective_from for link in links):
        raise Problem(
            409,
            "Move exists",
            "the IB already has a move at this moment",
            code="duplicate_effective_from",
        )
    if not links:
        # The master it had before links were recorded becomes explicit history.
        session.add(
            IbParentLink(
                ib_id=ib_id,
                parent_id=partner.parent_id,
                effective_from=partner.created_at,
                reason="master before the first recorded move",
                created_by=principal.id,
            )
        )
    before = hierarchy.parent_at(ib_id, body.effective_from)
    session.add(
        IbParentLink(
            ib_id=ib_id,
            parent_id=body.parent_id,
            effective_from=body.effective_from,
            reason=body.reason,
            created_by=principal.id,
        )
    )
    hierarchy.add_link(ParentLink(ib_id, body.parent_id, body.effective_from))
    partner.parent_id = hierarchy.parent_at(ib_id, utcnow())  # the current master, denormalized
    await append_audit(
        session,
        actor=principal.actor,
        action="ib.moved",
        entity_type="ib_partner",
        entity_id=ib_id,
        brand_id=partner.brand_id,
        before={"parent_id": before},
        after={
            "parent_id": body.parent_id,
            "effective_from": body.effective_from.isoformat(),
            "reason": body.reason,
        },
    )
    await session.commit()
    return await ib_detail(ib_id, principal, session)


# ---- plans ----


def _version_view(v: IbPlanVersion) -> VersionView:
    return VersionView(
        version_id=v.id,
        version=v.version,
        effective_from=v.effective_from,
        rules=v.rules,
        created_by=v.created_by,
        created_at=v.created_at,
    )


async def _plan_view(session: AsyncSession, plan: IbPlan) -> PlanView:
    versions = (
        await session.scalars(
            select(IbPlanVersion)
            .where(IbPlanVersion.plan_id == plan.id)
            .order_by(IbPlanVersion.version)
        )
    ).all()
    return PlanView(
        plan_id=plan.id,
        brand_id=plan.brand_id,
        name=plan.name,
        created_at=plan.created_at,
        versions=[_version_view(v) for v in versions],
    )


@router.post("/ib-plans", status_code=status.HTTP_201_CREATED, response_model=PlanView)
async def create_plan(body: PlanCreate, principal: AdminDep, session: SessionDep) -> PlanView:
    brand_id = _brand(principal, body.brand_id)
    if await session.scalar(
        select(IbPlan.id).where(IbPlan.brand_id == brand_id, IbPlan.name == body.name)
    ):
        raise Problem(409, "Plan exists", "the brand has a plan of this name", code="name_taken")
    plan = IbPlan(brand_id=brand_id, name=body.name)
    session.add(plan)
    await session.flush()
    await append_audit(
        session,
        actor=principal.actor,
        action="ib.plan_created",
        entity_type="ib_plan",
        entity_id=plan.id,
        brand_id=brand_id,
        after={"name": plan.name},
    )
    await session.commit()
    return await _plan_view(session, plan)


@router.get("/ib-plans", response_model=list[PlanView])
async def list_plans(
    principal: ReaderDep, session: SessionDep, brand_id: str | None = None
) -> list[PlanView]:
    brands = [_brand(principal, brand_id)] if brand_id else principal.brand_ids
    plans = (
        await session.scalars(
            select(IbPlan).where(IbPlan.brand_id.in_(brands)).order_by(IbPlan.name)
        )
    ).all()
    return [await _plan_view(session, p) for p in plans]


@router.get("/ib-plans/{plan_id}/versions", response_model=list[VersionView])
async def list_versions(
    plan_id: str, principal: ReaderDep, session: SessionDep
) -> list[VersionView]:
    plan = await _plan(session, principal, plan_id)
    return (await _plan_view(session, plan)).versions


@router.post(
    "/ib-plans/{plan_id}/versions",
    status_code=status.HTTP_201_CREATED,
    response_model=VersionView,
)
async def add_version(
    plan_id: str, body: VersionCreate, principal: AdminDep, session: SessionDep
) -> VersionView:
    """A new version from `effective_from`; it must start after the latest one (versions never
    overlap, and an old month is never re-priced by editing a plan)."""
    plan = await _plan(session, principal, plan_id)
    try:
        rules = parse_plan(body.rules)
    except PlanError as exc:
        raise Problem(
            422, "Invalid plan", str(exc), type_="/problems/ib-plan", code=exc.code
        ) from exc
    latest = (
        await session.execute(
            select(func.max(IbPlanVersion.version), func.max(IbPlanVersion.effective_from)).where(
                IbPlanVersion.plan_id == plan.id
            )
        )
    ).one()
    if latest[1] is not None and body.effective_from <= _aware(latest[1]):
        raise Problem(
            409,
            "Overlapping version",
            f"a version must start after the latest one ({_aware(latest[1]).isoformat()})",
            type_="/problems/ib-plan",
            code="overlapping_version",
        )
    await ensure_open_period(session, plan.brand_id, body.effective_from)
    version = IbPlanVersion(
        plan_id=plan.id,
        version=(latest[0] or 0) + 1,
        effective_from=body.effective_from,
        rules=rules.model_dump(mode="json"),
        created_by=principal.id,
    )
    session.add(version)
    try:
        await session.flush()
    except IntegrityError:  # a concurrent version of the same plan
        raise Problem(
            409, "Overlapping version", "another version was just added", code="overlapping_version"
        ) from None
    await append_audit(
        session,
        actor=principal.actor,
        action="ib.plan_version_added",
        entity_type="ib_plan",
        entity_id=plan.id,
        brand_id=plan.brand_id,
        after={
            "version": version.version,
            "effective_from": body.effective_from.isoformat(),
            "rules": version.rules,
        },
    )
    await session.commit()
    return _version_view(version)


def _aware(value: datetime) -> datetime:
    # Stored times are UTC; never compare a zone-less value with an aware one.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def assignment_views(session: AsyncSession, ib_id: str) -> list[AssignmentView]:
    rows = (
        await session.scalars(
            select(IbPlanAssignment)
            .where(IbPlanAssignment.ib_id == ib_id)
            .order_by(IbPlanAssignment.effective_from)
        )
    ).all()
    return [
        AssignmentView(
            assignment_id=a.id,
            plan_id=a.plan_id,
            link_code=a.link_code,
            effective_from=a.effective_from,
            created_by=a.created_by,
        )
        for a in rows
    ]


@router.post(
    "/ib/{ib_id}/plan-assignments",
    status_code=status.HTTP_201_CREATED,
    response_model=list[AssignmentView],
)
async def assign_plan(
    ib_id: str, body: AssignmentCreate, principal: AdminDep, session: SessionDep
) -> list[AssignmentView]:
    partner = await _ib(session, principal, ib_id)
    plan = await _plan(session, principal, body.plan_id)
    if plan.brand_id != partner.brand_id:
        raise Problem(404, "Not found", f"no plan {body.plan_id}")
    if body.link_code is not None and not await session.scalar(
        select(IbReferralLink.id).where(
            IbReferralLink.ib_id == ib_id, IbReferralLink.code == body.link_code
        )
    ):
        raise Problem(
            422,
            "Unknown link",
            "the link code is not one of this IB's links",
            type_="/problems/ib",
            code="unknown_link",
        )
    await ensure_open_period(session, partner.brand_id, body.effective_from)
    duplicate = await session.scalar(
        select(IbPlanAssignment.id).where(
            IbPlanAssignment.ib_id == ib_id,
            IbPlanAssignment.effective_from == body.effective_from,
            IbPlanAssignment.link_code.is_(None)
            if body.link_code is None
            else IbPlanAssignment.link_code == body.link_code,
        )
    )
    if duplicate:
        raise Problem(
            409,
            "Assignment exists",
            "the IB already has an assignment from this moment",
            code="duplicate_effective_from",
        )
    assignment = IbPlanAssignment(
        ib_id=ib_id,
        plan_id=plan.id,
        link_code=body.link_code,
        effective_from=body.effective_from,
        created_by=principal.id,
    )
    session.add(assignment)
    await session.flush()
    await append_audit(
        session,
        actor=principal.actor,
        action="ib.plan_assigned",
        entity_type="ib_partner",
        entity_id=ib_id,
        brand_id=partner.brand_id,
        after={
            "plan_id": plan.id,
            "link_code": body.link_code,
            "effective_from": body.effective_from.isoformat(),
        },
    )
    await session.commit()
    return await assignment_views(session, ib_id)


@router.get("/ib/{ib_id}/plan-assignments", response_model=list[AssignmentView])
async def list_assignments(
    ib_id: str, principal: ReaderDep, session: SessionDep
) -> list[AssignmentView]:
    await _ib(session, principal, ib_id)
    return await assignment_views(session, ib_id)


# ---- attributions ----


def _attribution_view(a: IbAttribution) -> AttributionView:
    return AttributionView(
        attribution_id=a.id,
        trader_id=a.trader_id,
        ib_id=a.ib_id,
        effective_from=a.effective_from,
        link_code=a.link_code,
        source=a.source,
        excluded=a.excluded,
        reason=a.reason,
        created_by=a.created_by,
        created_at=a.created_at,
    )


async def _history(session: AsyncSession, trader_id: str) -> list[AttributionView]:
    rows = (
        await session.scalars(
            select(IbAttribution)
            .where(IbAttribution.trader_id == trader_id)
            .order_by(IbAttribution.effective_from)
        )
    ).all()
    return [_attribution_view(a) for a in rows]


@router.post(
    "/traders/{trader_id}/ib-attributions",
    status_code=status.HTTP_201_CREATED,
    response_model=list[AttributionView],
)
async def reassign_client(
    trader_id: str, body: AttributionCreate, principal: AdminDep, session: SessionDep
) -> list[AttributionView]:
    """From `effective_from` the client's trades pay `ib_id`; trades before stay with the IB
    they had. Checked for self-referral like a registration."""
    trader = await _trader(session, principal, trader_id)
    partner = await _ib(session, principal, body.ib_id)
    if partner.brand_id != trader.brand_id:
        raise Problem(404, "Not found", f"no IB {body.ib_id}")
    if body.link_code is not None and not await session.scalar(
        select(IbReferralLink.id).where(
            IbReferralLink.ib_id == partner.id, IbReferralLink.code == body.link_code
        )
    ):
        raise Problem(
            422,
            "Unknown link",
            "not one of this IB's links",
            type_="/problems/ib",
            code="unknown_link",
        )
    await ensure_open_period(session, trader.brand_id, body.effective_from)
    latest = await session.scalar(
        select(func.max(IbAttribution.effective_from)).where(IbAttribution.trader_id == trader_id)
    )
    if latest is not None and body.effective_from <= _aware(latest):
        raise Problem(
            409,
            "Attribution order",
            f"a re-assignment must start after the latest one ({_aware(latest).isoformat()})",
            type_="/problems/ib",
            code="attribution_order",
        )
    await attribute(
        session,
        trader,
        Referrer(partner.id, body.link_code, "staff"),
        body.effective_from,
        principal.actor,
        reason=body.reason,
    )
    if body.effective_from <= utcnow():
        trader.ib_partner_id = partner.id
    await session.commit()
    return await _history(session, trader_id)


@router.get("/traders/{trader_id}/ib-attributions", response_model=list[AttributionView])
async def attribution_history(
    trader_id: str,
    principal: Annotated[
        Principal, Depends(require("admin", "finance", "support", "auditor", "compliance"))
    ],
    session: SessionDep,
) -> list[AttributionView]:
    await _trader(session, principal, trader_id)
    return await _history(session, trader_id)


# ---- what the IB sees, as staff see it (the same functions as the partner API) ----


def _period(period: str) -> str:
    if not reports.valid_period(period):
        raise Problem(422, "Invalid period", "period is YYYY-MM", code="invalid_period")
    return period


@router.get("/ib/{ib_id}/commissions", response_model=reports.CommissionPage)
async def ib_commissions(
    ib_id: str,
    principal: ReaderDep,
    session: SessionDep,
    period: str | None = None,
    trader_id: str | None = None,
    after: Cursor = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> reports.CommissionPage:
    await _ib(session, principal, ib_id)
    return await reports.commission_lines(
        session,
        ib_id,
        period=_period(period) if period else None,
        trader_id=trader_id,
        after=after,
        limit=limit,
    )


@router.get("/ib/{ib_id}/periods/{period}", response_model=reports.PeriodTotals)
async def ib_period(
    ib_id: str, period: str, principal: ReaderDep, session: SessionDep
) -> reports.PeriodTotals:
    await _ib(session, principal, ib_id)
    return await reports.period_totals(session, ib_id, _period(period))


@router.get("/ib/{ib_id}/settlements", response_model=list[reports.SettlementView])
async def ib_settlements(
    ib_id: str, principal: ReaderDep, session: SessionDep
) -> list[reports.SettlementView]:
    await _ib(session, principal, ib_id)
    return await reports.settlements(session, ib_id)
