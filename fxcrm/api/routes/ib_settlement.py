"""Finance: monthly IB settlements — start one (`ib-settlement-{brand}-{period}`), list a period's
settlements, download an IB's statement as CSV or PDF.

Statements are regenerated on demand from the settlement row and the period's accrual rows
(immutable: a recalculation adds adjustment rows to a later period), so the statement of a paid
period never changes and nothing is stored twice. The accrual rows are read in keyset batches.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.common import WorkflowIDConflictPolicy

from fxcrm.api.deps import Principal, SessionDep, SettingsDep, TemporalDep, release, require
from fxcrm.api.errors import Problem
from fxcrm.api.params import Offset
from fxcrm.domain.brand import BrandConfig
from fxcrm.domain.ib.plans import PlanRules
from fxcrm.domain.ib.settlement import (
    PeriodError,
    PeriodLine,
    check_settleable,
    parse_period,
    period_end,
)
from fxcrm.domain.ib.statements import (
    StatementHead,
    TradeLine,
    render_csv,
    render_pdf,
    statement_rows,
    text_lines,
)
from fxcrm.domain.masking import mask_email
from fxcrm.domain.money_text import amount_text
from fxcrm.models import (
    Brand,
    IbAccrual,
    IbPartner,
    IbPlanAssignment,
    IbPlanVersion,
    IbSettlement,
    IbSettlementPeriod,
    IngestedDeal,
    Trader,
)
from fxcrm.workflows.ib_settlement_types import IbSettlementInput, ib_settlement_workflow_id

router = APIRouter(prefix="/backoffice/ib", tags=["ib settlement"])

FinanceDep = Annotated[Principal, Depends(require("finance", "admin"))]
ReaderDep = Annotated[Principal, Depends(require("finance", "admin", "auditor"))]
STREAM_BATCH = 2000


class SettleRequest(BaseModel):
    period: str  # YYYY-MM
    brand_id: str | None = None  # needed when the caller works for several brands


class SettlementStarted(BaseModel):
    workflow_id: str
    brand: str
    period: str


class SettlementView(BaseModel):
    id: str
    brand_id: str
    ib_id: str
    period: str
    status: str
    currency: str
    accrued: str
    period_rules: str
    carried_in: str
    payable: str
    carried_out: str
    ledger_transfer_id: str | None
    reason: str | None
    created_at: datetime


async def _brand_of(session: AsyncSession, principal: Principal, brand_id: str | None) -> Brand:
    if brand_id is None:
        if len(principal.brand_ids) != 1:
            raise Problem(422, "Brand required", "name the brand_id to settle")
        brand_id = principal.brand_ids[0]
    brand = await session.get(Brand, brand_id)
    if brand is None or not principal.can_see_brand(brand_id):
        raise Problem(404, "Unknown brand", f"no brand {brand_id} of yours")
    return brand


@router.post("/settlements", status_code=status.HTTP_202_ACCEPTED, response_model=SettlementStarted)
async def start_settlement(
    body: SettleRequest,
    principal: FinanceDep,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> SettlementStarted:
    """Settle one closed period of the brand (again: a re-run pays nobody twice)."""
    try:
        check_settleable(body.period, datetime.now(UTC))
    except PeriodError as exc:
        raise Problem(422, "Period cannot be settled", str(exc), code=exc.code) from exc
    brand = await _brand_of(session, principal, body.brand_id)
    latest = await session.scalar(
        select(IbSettlementPeriod.period)
        .where(IbSettlementPeriod.brand_id == brand.id)
        .order_by(IbSettlementPeriod.period.desc())
        .limit(1)
    )
    if latest is not None and latest > body.period:
        raise Problem(
            422,
            "Period cannot be settled",
            f"{body.period} is covered by the settlement of {latest}",
            code="period_covered",
        )
    code = brand.code
    await release(session)
    workflow_id = ib_settlement_workflow_id(code, body.period)
    await temporal.start_workflow(
        "IbSettlementWorkflow",
        IbSettlementInput(brand=code, period=body.period, requested_by=principal.id),
        id=workflow_id,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    return SettlementStarted(workflow_id=workflow_id, brand=code, period=body.period)


def _view(row: IbSettlement) -> SettlementView:
    return SettlementView(
        id=row.id,
        brand_id=row.brand_id,
        ib_id=row.ib_id,
        period=row.period,
        status=row.status,
        currency=row.currency,
        accrued=amount_text(row.accrued),
        period_rules=amount_text(row.period_rules),
        carried_in=amount_text(row.carried_in),
        payable=amount_text(row.payable),
        carried_out=amount_text(row.carried_out),
        ledger_transfer_id=row.ledger_transfer_id,
        reason=(row.details or {}).get("reason"),
        created_at=row.created_at,
    )


@router.get("/settlements", response_model=list[SettlementView])
async def list_settlements(
    principal: ReaderDep,
    session: SessionDep,
    period: Annotated[str, Query()],
    ib_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Offset = 0,
) -> list[SettlementView]:
    try:
        parse_period(period)
    except PeriodError as exc:
        raise Problem(422, "Invalid period", str(exc), code=exc.code) from exc
    query = select(IbSettlement).where(
        IbSettlement.period == period, IbSettlement.brand_id.in_(principal.brand_ids)
    )
    if ib_id is not None:
        query = query.where(IbSettlement.ib_id == ib_id)
    rows = await session.scalars(query.order_by(IbSettlement.ib_id).limit(limit).offset(offset))
    return [_view(row) for row in rows]


# ---------------------------------------------------------------- statements


async def _plan_rules(session: AsyncSession, ib_id: str, until: datetime) -> PlanRules | None:
    plan_id = await session.scalar(
        select(IbPlanAssignment.plan_id)
        .where(
            IbPlanAssignment.ib_id == ib_id,
            IbPlanAssignment.link_code.is_(None),
            IbPlanAssignment.effective_from < until,
        )
        .order_by(IbPlanAssignment.effective_from.desc())
        .limit(1)
    )
    if plan_id is None:
        return None
    data = await session.scalar(
        select(IbPlanVersion.rules)
        .where(IbPlanVersion.plan_id == plan_id, IbPlanVersion.effective_from < until)
        .order_by(IbPlanVersion.effective_from.desc())
        .limit(1)
    )
    return PlanRules.model_validate(data) if data is not None else None


async def statement_head(
    session: AsyncSession, row: IbSettlement
) -> tuple[StatementHead, list[PeriodLine], str | None]:
    """The statement's header and period lines; the third value is the settlement's lower
    bound (accrual periods after it, up to the row's period, are its per-trade lines)."""
    brand = await session.get(Brand, row.brand_id)
    partner = await session.get(IbPartner, row.ib_id)
    rules = await _plan_rules(session, row.ib_id, period_end(row.period))
    plan = (
        rules.model_dump(
            mode="json",
            include={
                "revshare_net_deposits_pct",
                "revshare_net_loss_pct",
                "cpa",
                "tier_basis",
                "tiers",
            },
        )
        if rules
        else {}
    )
    details = row.details or {}
    head = StatementHead(
        brand=brand.code if brand else row.brand_id,
        ib_id=row.ib_id,
        ib_name=partner.name if partner else row.ib_id,
        period=row.period,
        currency=row.currency,
        status=row.status,
        carried_in=row.carried_in,
        payable=row.payable,
        carried_out=row.carried_out,
        plan={**plan, "minimum_payout": _minimum(brand)},
    )
    lines = [
        PeriodLine(
            rule=line["rule"],
            amount=Decimal(line["amount"]),
            explanation=line.get("explanation") or {},
            trader_id=line.get("trader_id"),
        )
        for line in details.get("lines", [])
    ]
    return head, lines, details.get("from_period")


def _minimum(brand: Brand | None) -> str:
    if brand is None:
        return ""
    return amount_text(BrandConfig.model_validate(brand.config).ib.minimum_payout)


async def trade_lines(
    session: AsyncSession, row: IbSettlement, from_period: str | None
) -> AsyncIterator[TradeLine]:
    """The settlement's per-trade lines in accrual order, read in batches (keyset on id)."""
    where = [
        IbAccrual.beneficiary_id == row.ib_id,
        IbAccrual.brand_id == row.brand_id,
        IbAccrual.period <= row.period,
    ]
    if from_period:
        where.append(IbAccrual.period > from_period)
    after = 0
    while True:
        batch = (
            await session.execute(
                select(
                    IbAccrual.id,
                    IbAccrual.rule,
                    IbAccrual.depth,
                    IbAccrual.amount,
                    IbAccrual.inputs,
                    IngestedDeal.server_id,
                    IngestedDeal.deal_id,
                    IngestedDeal.symbol,
                    IngestedDeal.volume_lots,
                    Trader.email,
                )
                .join(IngestedDeal, IngestedDeal.id == IbAccrual.deal_pk)
                .outerjoin(Trader, Trader.id == IbAccrual.trader_id)
                .where(and_(*where), IbAccrual.id > after)
                .order_by(IbAccrual.id)
                .limit(STREAM_BATCH)
            )
        ).all()
        for accrual_id, rule, depth, amount, inputs, server, deal, symbol, lots, email in batch:
            after = accrual_id
            yield TradeLine(
                deal=f"{server}:{deal}",
                client=mask_email(email) if email else "***",
                symbol=symbol,
                lots=lots,
                rule=rule,
                level=depth,
                amount=amount,
                explanation=inputs or {},
            )
        if len(batch) < STREAM_BATCH:
            return


async def render_statement(session: AsyncSession, row: IbSettlement) -> list[list[str]]:
    head, period, from_period = await statement_head(session, row)
    trades = [line async for line in trade_lines(session, row, from_period)]
    return list(statement_rows(head, trades, period))


async def _settlement(
    session: AsyncSession, principal: Principal, settlement_id: str
) -> IbSettlement:
    row = await session.get(IbSettlement, settlement_id)
    if row is None or not principal.can_see_brand(row.brand_id):
        raise Problem(404, "Unknown settlement", f"no settlement {settlement_id}")
    return row


@router.get("/settlements/{settlement_id}/statement.{fmt}")
async def statement(
    settlement_id: str,
    fmt: Literal["csv", "pdf"],
    principal: ReaderDep,
    session: SessionDep,
) -> Response:
    row = await _settlement(session, principal, settlement_id)
    name = f"ib-statement-{row.ib_id}-{row.period}"
    if fmt == "pdf":
        rows = await render_statement(session, row)
        title = f"IB statement {row.period} - {row.ib_id}"
        return Response(
            render_pdf(title, text_lines(rows)),
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'},
        )
    rows = await render_statement(session, row)
    return Response(
        render_csv(rows),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )
