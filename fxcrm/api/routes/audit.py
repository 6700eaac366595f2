"""Auditors: the hash-chained event log with filters, everything about one trader, the chain's
verification, and every workflow's history with readable payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import and_, or_, select
from temporalio.service import RPCError

from fxcrm.api.deps import Principal, SessionDep, TemporalDep, release, require
from fxcrm.api.errors import Problem
from fxcrm.api.params import Cursor
from fxcrm.api.workflow_history import readable, workflow_owner
from fxcrm.core.audit import ChainReport, verify_chain
from fxcrm.models import (
    AuditEvent,
    IbAttribution,
    KycDocument,
    Payment,
    ScreeningRecord,
    Trader,
    TradingAccount,
)

router = APIRouter(prefix="/audit", tags=["audit"])
AuditorDep = Annotated[Principal, Depends(require("auditor", "admin", "compliance"))]


class AuditEventView(BaseModel):
    seq: int
    at: datetime
    actor_type: str
    actor_id: str
    action: str
    entity_type: str
    entity_id: str
    brand_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    workflow_id: str | None
    hash: str
    prev_hash: str


@router.get("/events", response_model=list[AuditEventView])
async def list_events(
    principal: AuditorDep,
    session: SessionDep,
    entity_id: str | None = None,
    entity_type: str | None = None,
    action: str | None = None,
    actor_id: str | None = None,
    workflow_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_seq: Cursor = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEventView]:
    # Events of the caller's brands, plus brand-less system events.
    query = select(AuditEvent).where(
        AuditEvent.seq > after_seq,
        (AuditEvent.brand_id.in_(principal.brand_ids)) | (AuditEvent.brand_id.is_(None)),
    )
    filters = {
        AuditEvent.entity_id: entity_id,
        AuditEvent.entity_type: entity_type,
        AuditEvent.action: action,
        AuditEvent.actor_id: actor_id,
        AuditEvent.workflow_id: workflow_id,
    }
    for column, value in filters.items():
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    rows = (await session.scalars(query.order_by(AuditEvent.seq).limit(limit))).all()
    return [AuditEventView.model_validate(r, from_attributes=True) for r in rows]


@router.get("/verify", response_model=ChainReport)
async def verify(principal: AuditorDep, session: SessionDep) -> ChainReport:
    """Recomputes the whole chain; reports the first broken link if any row was altered."""
    return await verify_chain(session)


@router.get("/workflows/{workflow_id}/history")
async def workflow_history(
    workflow_id: Annotated[str, Path(min_length=1, max_length=300)],
    principal: AuditorDep,
    session: SessionDep,
    temporal: TemporalDep,
    raw: bool = False,
) -> JSONResponse:
    """The workflow's full Temporal event history, as JSON, for the case file: every workflow of
    the caller's brands (and the PSP-wide ones), payloads decoded into readable JSON (`raw=true`:
    as Temporal encodes them)."""
    owner = await workflow_owner(session, workflow_id)
    if owner.known:
        visible = owner.brand_id is None or principal.can_see_brand(owner.brand_id)
    else:
        visible = principal.role == "admin"  # not a workflow fxcrm starts: admins only
    if not visible:
        raise Problem(404, "Not found", "no such workflow")
    await release(session)
    try:
        history = await temporal.get_workflow_handle(workflow_id).fetch_history()
    except RPCError as exc:
        raise Problem(404, "Not found", f"no such workflow ({exc.message})") from exc
    body = history.to_json_dict()
    return JSONResponse((body if raw else readable(body)) | {"workflowId": workflow_id})


class TraderAuditPage(BaseModel):
    trader_id: str
    events: list[AuditEventView]
    next_after_seq: int | None  # pass as `after_seq` for the next page


@router.get("/traders/{trader_id}/events", response_model=TraderAuditPage)
async def trader_events(
    trader_id: Annotated[str, Path(max_length=32)],
    principal: AuditorDep,
    session: SessionDep,
    action: Annotated[str | None, Query(max_length=80)] = None,
    actor_type: Annotated[str | None, Query(pattern=r"^[a-z]{2,20}$")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_seq: Cursor = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> TraderAuditPage:
    """Everything the audit log holds about one trader, oldest first: the trader's own actions and
    what happened to them, to their payments, trading accounts, documents, screenings and IB
    attributions, by whoever did it (`actor_type=staff`: only staff's actions)."""
    trader = await session.get(Trader, trader_id)
    if trader is None or not principal.can_see_brand(trader.brand_id):
        raise Problem(404, "Not found", "no such trader")
    accounts = (
        await session.execute(
            select(TradingAccount.id, TradingAccount.server_id, TradingAccount.login).where(
                TradingAccount.trader_id == trader_id
            )
        )
    ).all()
    # Account events name the account by its id, or by server:login (dealers' changes).
    account_keys = [id_ for id_, _, _ in accounts]
    account_keys += [f"{server}:{login}" for _, server, login in accounts if login is not None]

    def of(entity_type: str, ids: Any) -> Any:
        return and_(AuditEvent.entity_type == entity_type, AuditEvent.entity_id.in_(ids))

    about = or_(
        and_(AuditEvent.entity_type == "trader", AuditEvent.entity_id == trader_id),
        of("payment", select(Payment.id).where(Payment.trader_id == trader_id)),
        of("trading_account", account_keys),
        of("kyc_document", select(KycDocument.id).where(KycDocument.trader_id == trader_id)),
        of(
            "screening_record",
            select(ScreeningRecord.id).where(ScreeningRecord.trader_id == trader_id),
        ),
        of("ib_attribution", select(IbAttribution.id).where(IbAttribution.trader_id == trader_id)),
        AuditEvent.workflow_id == f"onboarding-{trader_id}",
    )
    query = select(AuditEvent).where(
        about,
        AuditEvent.seq > after_seq,
        (AuditEvent.brand_id == trader.brand_id) | (AuditEvent.brand_id.is_(None)),
    )
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if actor_type is not None:
        query = query.where(AuditEvent.actor_type == actor_type)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    rows = (await session.scalars(query.order_by(AuditEvent.seq).limit(limit))).all()
    events = [AuditEventView.model_validate(r, from_attributes=True) for r in rows]
    return TraderAuditPage(
        trader_id=trader_id,
        events=events,
        next_after_seq=events[-1].seq if len(events) == limit else None,
    )
