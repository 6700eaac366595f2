"""Dealing desk: trading account mirrors and alerts, and changes to leverage, group and access.

Support reads accounts and alerts to answer clients, but only the dealing desk (dealer, admin)
changes them: leverage, group and access are risk decisions (the architecture's role table).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from fxcrm.api.deps import Principal, SessionDep, SettingsDep, TemporalDep, release, require
from fxcrm.api.errors import Problem
from fxcrm.api.openapi import problems
from fxcrm.api.params import Login
from fxcrm.domain.money_text import AmountText
from fxcrm.domain.text import CleanText
from fxcrm.models import AccountMirror, PlatformServer, RiskAlert
from fxcrm.workflows.platform_sync_types import AccountChange, AccountChangeResult

router = APIRouter(prefix="/backoffice", tags=["dealing"])
DeskDep = Annotated[Principal, Depends(require("admin", "dealer"))]
ReaderDep = Annotated[
    Principal, Depends(require("admin", "dealer", "support", "finance", "compliance"))
]

# A refusal from the platform, as the caller should see it.
PROBLEMS = {
    "not_found": (404, "Unknown account"),
    "unknown_group": (422, "Unknown group"),
    "invalid_leverage": (422, "Leverage outside the group's limits"),
    "insufficient_funds": (422, "Insufficient free margin"),
    "invalid_request": (422, "Refused by the platform"),
    "conflict": (409, "Conflict"),
    "permission": (502, "The platform refused fxcrm's manager rights"),
}


class MirrorView(BaseModel):
    server_id: str
    login: int
    group: str
    leverage: int
    currency: str
    access: str
    balance: AmountText
    credit: AmountText
    equity: AmountText
    margin: AmountText
    free_margin: AmountText
    margin_level: AmountText | None
    synced_at: datetime


class AlertView(BaseModel):
    id: int
    server_id: str
    login: int
    kind: str
    value: AmountText
    threshold: AmountText
    status: str
    raised_at: datetime
    cleared_at: datetime | None


class ChangeRequest(BaseModel):
    leverage: int | None = Field(default=None, ge=1, le=5000)
    group: str | None = Field(default=None, min_length=1, max_length=100)
    access: Literal["full", "read_only", "no_trading", "disabled"] | None = None
    reason: CleanText = Field(min_length=3, max_length=1000)

    @model_validator(mode="after")
    def _one_change(self) -> ChangeRequest:
        if sum(v is not None for v in (self.leverage, self.group, self.access)) != 1:
            raise ValueError("give exactly one of leverage, group, access")
        return self


async def _server(session: SessionDep, principal: Principal, server_id: str) -> PlatformServer:
    server = await session.get(PlatformServer, server_id)
    if server is None or not principal.can_see_brand(server.brand_id):
        raise Problem(404, "Unknown server", f"no platform server {server_id!r}")
    return server


@router.get("/accounts/{server_id}/{login}", response_model=MirrorView)
async def account(
    server_id: str, login: Login, principal: ReaderDep, session: SessionDep
) -> MirrorView:
    await _server(session, principal, server_id)
    mirror = await session.get(AccountMirror, (server_id, login))
    if mirror is None:
        raise Problem(
            404, "Unknown account", f"no account {login} on {server_id} (not synced yet?)"
        )
    return MirrorView.model_validate(mirror, from_attributes=True)


@router.get("/alerts", response_model=list[AlertView])
async def alerts(
    principal: ReaderDep,
    session: SessionDep,
    server_id: str,
    status: Literal["open", "cleared"] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AlertView]:
    await _server(session, principal, server_id)
    rows = (
        await session.scalars(
            select(RiskAlert)
            .where(RiskAlert.server_id == server_id, RiskAlert.status == status)
            .order_by(RiskAlert.id.desc())
            .limit(limit)
        )
    ).all()
    return [AlertView.model_validate(r, from_attributes=True) for r in rows]


@router.post(
    "/accounts/{server_id}/{login}/changes",
    response_model=AccountChangeResult,
    responses=problems(502),
)
async def change(
    server_id: str,
    login: Login,
    body: ChangeRequest,
    principal: DeskDep,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> AccountChangeResult:
    await _server(session, principal, server_id)
    await release(session)
    request = AccountChange(
        server_id=server_id,
        login=login,
        leverage=body.leverage,
        group=body.group,
        access=body.access,
        actor_id=principal.id,
        actor_role=principal.role,
        reason=body.reason,
        brand_ids=principal.brand_ids,
    )
    workflow_id = f"account-change-{uuid.uuid4().hex}"
    try:
        return await temporal.execute_workflow(
            "AccountChangeWorkflow",
            request,
            id=workflow_id,
            task_queue=settings.task_queue,
            result_type=AccountChangeResult,
        )
    except WorkflowFailureError as exc:
        failure = _application_error(exc)
        platform = failure is not None and (failure.type or "").startswith("Platform.")
        kind = (failure.type or "").removeprefix("Platform.") if failure and platform else ""
        status, title = PROBLEMS.get(kind, (502, "Platform error"))
        # A platform's refusal is the caller's to read; anything else is ours, in the history.
        detail = failure.message if failure and platform else f"see workflow {workflow_id}"
        raise Problem(status, title, detail, type_=f"/problems/platform/{kind or 'error'}") from exc


def _application_error(exc: BaseException) -> ApplicationError | None:
    """The activity's typed error, under the workflow and activity failure wrappers."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, ApplicationError):
            return current
        current = getattr(current, "cause", None) or current.__cause__
    return None
