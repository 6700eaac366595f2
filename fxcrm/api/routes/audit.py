"""Auditors: the hash-chained event log with filters, its verification, and workflow histories."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from temporalio.service import RPCError

from fxcrm.api.deps import Principal, SessionDep, TemporalDep, release, require
from fxcrm.api.errors import Problem
from fxcrm.api.params import Cursor
from fxcrm.core.audit import ChainReport, verify_chain
from fxcrm.models import AuditEvent, Trader

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
    workflow_id: str, principal: AuditorDep, session: SessionDep, temporal: TemporalDep
) -> JSONResponse:
    """The workflow's full Temporal event history, as JSON, for the case file."""
    if workflow_id.startswith("onboarding-"):
        trader = await session.get(Trader, workflow_id.removeprefix("onboarding-"))
        if trader is None or not principal.can_see_brand(trader.brand_id):
            raise Problem(404, "Not found", "no such workflow")
    elif principal.role != "admin":
        raise Problem(404, "Not found", "no such workflow")
    await release(session)
    try:
        history = await temporal.get_workflow_handle(workflow_id).fetch_history()
    except RPCError as exc:
        raise Problem(404, "Not found", f"no such workflow ({exc.message})") from exc
    return JSONResponse(history.to_json_dict() | {"workflowId": workflow_id})
