"""Finance: PSP reconciliation runs and their breaks, break resolutions, refunds of deposits.

A run is started (or re-run) as the workflow `psp-reconciliation-{psp}-{day}`; resolving a break is
one transaction (a ledger correction, the break's new status and an audit event commit together),
so it needs no workflow; a refund is a workflow (hold, PSP call, post or void).

Brand scoping: runs are per PSP and show counts only. A break tied to a payment is seen by staff of
the payment's brand; a break the ledger cannot place (a PSP movement for no payment of ours) is
PSP-level and seen by every finance, admin or auditor user, and resolving it names the brand whose
PSP clearing account is corrected.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime
from decimal import InvalidOperation
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, status
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from fxcrm.activities.chargebacks import CREDITED, REVERSED, refundable, withdrawal_refunds
from fxcrm.activities.money import house_account, psp_clearing_account, wallet_account
from fxcrm.adapters.psp.base import PaymentStatus, PspEvent
from fxcrm.api.deps import (
    Principal,
    PspsDep,
    SessionDep,
    SettingsDep,
    TemporalDep,
    release,
    require,
)
from fxcrm.api.errors import Problem
from fxcrm.core.audit import append_audit
from fxcrm.domain import ledger as rules
from fxcrm.domain.ledger import AccountKind, LedgerError, TransferKind
from fxcrm.domain.money import Money
from fxcrm.domain.money_text import amount_text
from fxcrm.domain.reconciliation import (
    BreakKind,
    CorrectionError,
    CorrectionLeg,
    Counterparty,
    Flow,
    Resolution,
    correction_legs,
)
from fxcrm.domain.text import CleanText
from fxcrm.ledger import TransferRequest, transfer_linked
from fxcrm.models import Payment
from fxcrm.models.base import new_id, utcnow
from fxcrm.models.payments import ReconciliationBreak, ReconciliationRun
from fxcrm.workflows.chargeback_types import (
    RefundRequest,
    ReversalInput,
    chargeback_workflow_id,
    psp_refund_workflow_id,
    refund_id_for,
    refund_workflow_id,
)
from fxcrm.workflows.reconciliation_types import ReconciliationInput, reconciliation_workflow_id

router = APIRouter(prefix="/backoffice", tags=["finance"])

ReaderDep = Annotated[Principal, Depends(require("finance", "admin", "auditor"))]
FinanceDep = Annotated[Principal, Depends(require("finance", "admin"))]


class RunRequest(BaseModel):
    psp: str
    day: date


class RunStarted(BaseModel):
    workflow_id: str
    psp: str
    day: date


class RunView(BaseModel):
    run_id: str
    psp: str
    day: date
    status: str
    lines: int
    matched: int
    breaks: int
    started_at: datetime
    finished_at: datetime | None


class BreakView(BaseModel):
    break_id: str
    run_id: str
    psp: str
    day: date
    kind: str
    break_key: str
    provider_ref: str | None
    payment_id: str | None
    brand_id: str | None
    expected: dict[str, object] | None
    actual: dict[str, object] | None
    status: str
    resolution: str | None
    correction_transfer_id: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime


class ResolveRequest(BaseModel):
    action: Resolution
    reason: CleanText = Field(min_length=3, max_length=400)
    amount: str | None = None  # decimal string in the break's currency; default: the difference
    brand_id: str | None = None  # for a break with no payment: whose PSP clearing to correct


class RefundBody(BaseModel):
    amount: str | None = None  # decimal string; default: all that is left to refund
    reason: CleanText = Field(min_length=3, max_length=400)


class RefundStarted(BaseModel):
    refund_id: str
    workflow_id: str
    payment_id: str
    amount: str
    currency: str


# ---------------------------------------------------------------- runs


@router.post(
    "/reconciliation/runs", status_code=status.HTTP_202_ACCEPTED, response_model=RunStarted
)
async def start_run(
    body: RunRequest,
    principal: FinanceDep,
    psps: PspsDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> RunStarted:
    """Reconcile one PSP day now (again): the same run is updated, its breaks upserted."""
    if body.psp not in psps.names:
        raise Problem(422, "Unknown PSP", f"{body.psp!r} is not a configured provider")
    if body.day > datetime.now(UTC).date():
        raise Problem(422, "Day in the future", "a day can be reconciled from its start (UTC)")
    workflow_id = reconciliation_workflow_id(body.psp, body.day)
    await temporal.start_workflow(
        "ReconciliationWorkflow",
        ReconciliationInput(psp=body.psp, day=body.day, requested_by=principal.id),
        id=workflow_id,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    return RunStarted(workflow_id=workflow_id, psp=body.psp, day=body.day)


@router.get("/reconciliation/runs", response_model=list[RunView])
async def list_runs(
    _: ReaderDep,
    session: SessionDep,
    psp: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[RunView]:
    query = select(ReconciliationRun).order_by(ReconciliationRun.day.desc(), ReconciliationRun.psp)
    if psp:
        query = query.where(ReconciliationRun.psp == psp)
    return [
        RunView(
            run_id=run.id,
            psp=run.psp,
            day=run.day,
            status=run.status,
            lines=run.lines,
            matched=run.matched,
            breaks=run.breaks,
            started_at=run.started_at,
            finished_at=run.finished_at,
        )
        for run in await session.scalars(query.limit(limit))
    ]


# ---------------------------------------------------------------- breaks


def _visible(principal: Principal, brand_id: str | None) -> bool:
    return brand_id is None or principal.can_see_brand(brand_id)


def _view(row: ReconciliationBreak, run: ReconciliationRun, brand_id: str | None) -> BreakView:
    return BreakView(
        break_id=row.id,
        run_id=row.run_id,
        psp=row.psp,
        day=run.day,
        kind=row.kind,
        break_key=row.break_key,
        provider_ref=row.provider_ref,
        payment_id=row.payment_id,
        brand_id=brand_id,
        expected=row.expected,
        actual=row.actual,
        status=row.status,
        resolution=row.resolution,
        correction_transfer_id=row.correction_transfer_id,
        resolved_by=row.resolved_by,
        resolved_at=row.resolved_at,
        created_at=row.created_at,
    )


@router.get("/reconciliation/breaks", response_model=list[BreakView])
async def list_breaks(
    principal: ReaderDep,
    session: SessionDep,
    status: Literal["open", "resolved"] | None = None,
    psp: str | None = None,
    run_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[BreakView]:
    query = (
        select(ReconciliationBreak, ReconciliationRun, Payment.brand_id)
        .join(ReconciliationRun, ReconciliationRun.id == ReconciliationBreak.run_id)
        .outerjoin(Payment, Payment.id == ReconciliationBreak.payment_id)
        .where(
            (ReconciliationBreak.payment_id.is_(None)) | (Payment.brand_id.in_(principal.brand_ids))
        )
        .order_by(ReconciliationBreak.created_at.desc(), ReconciliationBreak.id)
    )
    if status:
        query = query.where(ReconciliationBreak.status == status)
    if psp:
        query = query.where(ReconciliationBreak.psp == psp)
    if run_id:
        query = query.where(ReconciliationBreak.run_id == run_id)
    rows = (await session.execute(query.limit(limit))).all()
    return [_view(row, run, brand_id) for row, run, brand_id in rows]


def _minor(raw: str, currency: str) -> int:
    try:
        minor = Money.of(raw, currency).to_minor()
    except (ValueError, InvalidOperation) as exc:
        raise Problem(422, "Invalid amount", str(exc)) from exc
    if minor <= 0:
        raise Problem(422, "Invalid amount", "the amount must be positive")
    return minor


def _single_currency(row: ReconciliationBreak) -> str | None:
    currencies = set()
    for side in (row.expected, row.actual):
        if side:
            currencies |= set(side["amounts"]) if "amounts" in side else {side["currency"]}
    return next(iter(currencies)) if len(currencies) == 1 else None


@router.post("/reconciliation/breaks/{break_id}/resolve", response_model=BreakView)
async def resolve_break(
    break_id: str, body: ResolveRequest, principal: FinanceDep, session: SessionDep
) -> BreakView:
    """Resolve a break once: post the correction (ledger key `recon:{break}`), audit, close."""
    row = await session.get(ReconciliationBreak, break_id, with_for_update=True)
    payment = await session.get(Payment, row.payment_id) if row and row.payment_id else None
    brand_id = payment.brand_id if payment else None
    if row is None or not _visible(principal, brand_id):
        raise Problem(404, "Not found", f"no break {break_id}")
    if row.status != "open":
        raise Problem(409, "Already resolved", f"break {break_id} is {row.status}")
    run = await session.get(ReconciliationRun, row.run_id)
    assert run is not None
    if brand_id is None and body.action is not Resolution.NO_ACTION:
        if not body.brand_id:
            raise Problem(422, "Brand required", "this break has no payment: name the brand_id")
        if not principal.can_see_brand(body.brand_id):
            raise Problem(403, "Forbidden", "not a brand of yours")
        brand_id = body.brand_id
    amount = None
    if body.amount is not None:
        currency = _single_currency(row)
        if currency is None:
            raise Problem(422, "Invalid amount", "an amount needs a single-currency break")
        amount = _minor(body.amount, currency)
    try:
        legs = correction_legs(
            BreakKind(row.kind),
            _flow(row),
            row.expected,
            row.actual,
            body.action,
            amount,
            client_known=payment is not None and payment.kind == "deposit",
        )
    except CorrectionError as exc:
        raise Problem(422, "Cannot correct", str(exc)) from exc
    transfer_id = None
    if legs:
        assert brand_id is not None
        try:
            transfer_id = await _post_correction(session, row, brand_id, payment, legs, body)
        except LedgerError as exc:
            raise Problem(422, "Correction refused", str(exc), code=exc.code) from exc
    before = {"status": row.status}
    row.status = "resolved"
    row.resolution = f"{body.action.value}: {body.reason}"
    row.correction_transfer_id = transfer_id
    row.resolved_by = principal.id
    row.resolved_at = utcnow()
    await append_audit(
        session,
        actor=principal.actor,
        action="reconciliation.break_resolved",
        entity_type="reconciliation_break",
        entity_id=row.id,
        brand_id=brand_id,
        before=before,
        after={
            "status": "resolved",
            "action": body.action.value,
            "reason": body.reason,
            "kind": row.kind,
            "correction_transfer_id": transfer_id,
            "legs": [vars(leg) for leg in legs],
        },
        event_key=f"recon-break:{row.id}:resolved",
    )
    view = _view(row, run, brand_id)
    await session.commit()
    return view


def _flow(row: ReconciliationBreak) -> Flow:
    # The key is "{kind}:{flow}:{id}".
    parts = row.break_key.split(":")
    try:
        return Flow(parts[1])
    except (IndexError, ValueError):
        return Flow.PAYMENT


async def _post_correction(
    session: AsyncSession,
    row: ReconciliationBreak,
    brand_id: str,
    payment: Payment | None,
    legs: list[CorrectionLeg],
    body: ResolveRequest,
) -> str:
    requests = []
    for index, leg in enumerate(legs):
        clearing = await psp_clearing_account(session, brand_id, row.psp, leg.currency)
        other = await _counterparty(session, brand_id, payment, leg)
        debit, credit = (clearing, other) if leg.into_clearing else (other, clearing)
        requests.append(
            TransferRequest(
                idempotency_key=f"recon:{row.id}" + (f":{index + 1}" if index else ""),
                debit_account_id=debit,
                credit_account_id=credit,
                amount=Money.from_minor(leg.amount, leg.currency),
                kind=TransferKind.CORRECTION,
                reference=row.provider_ref,
                details={
                    "break_id": row.id,
                    "action": body.action.value,
                    "reason": body.reason,
                    "payment_id": row.payment_id,
                },
            )
        )
    posted = await transfer_linked(session, requests, group_id=f"recon:{row.id}")
    return posted[0].id


async def _counterparty(
    session: AsyncSession,
    brand_id: str,
    payment: Payment | None,
    leg: CorrectionLeg,
) -> str:
    ccy = leg.currency
    if leg.counterparty is Counterparty.WALLET and payment is not None:
        return await wallet_account(session, brand_id, payment.trader_id, ccy)
    if leg.counterparty is Counterparty.EXPENSE:
        code, kind = rules.broker_expense_code(ccy), AccountKind.BROKER_EXPENSE
    elif leg.counterparty is Counterparty.REVENUE:
        code, kind = rules.broker_revenue_code(ccy), AccountKind.BROKER_REVENUE
    else:
        code, kind = rules.suspense_code(ccy), AccountKind.SUSPENSE
    return await house_account(session, brand_id, kind, code, ccy)


# ---------------------------------------------------------------- refunds


@router.post(
    "/payments/{payment_id}/refund",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RefundStarted,
)
async def refund_deposit(
    payment_id: str,
    body: RefundBody,
    principal: FinanceDep,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> RefundStarted:
    """Refund (part of) a deposit to its instrument: the RefundWorkflow holds the amount in the
    wallet, asks the PSP, then posts or releases the hold. An Idempotency-Key makes a retry safe."""
    payment = await session.get(Payment, payment_id, with_for_update=True)
    if payment is None or not principal.can_see_brand(payment.brand_id):
        raise Problem(404, "Not found", f"no payment {payment_id}")
    refund_id = refund_id_for(payment_id, idempotency_key) if idempotency_key else new_id()
    refunds = dict((payment.details or {}).get("refunds") or {})
    if refund_id in refunds:
        known = refunds[refund_id]
        if known.get("reason") != body.reason:
            raise Problem(409, "Idempotency-Key reused", "this key was used for another refund")
        amount = int(known["amount"])
        await release(session)
        await _start_refund(temporal, settings.task_queue, payment, refund_id, amount, body.reason)
        return _refund_started(payment, refund_id, amount)
    if payment.kind != "deposit" or payment.status not in CREDITED or not payment.provider_ref:
        raise Problem(409, "Not refundable", f"the {payment.kind} is {payment.status}")
    left = refundable(payment, await withdrawal_refunds(session, payment))
    amount = _minor(body.amount, payment.currency) if body.amount else left
    if amount <= 0 or amount > left:
        left_money = Money.from_minor(left, payment.currency)
        raise Problem(422, "Invalid amount", f"at most {left_money} can be refunded")
    refunds[refund_id] = {
        "amount": amount,
        "status": "requested",
        "reason": body.reason,
        "requested_by": principal.id,
        "requested_at": utcnow().isoformat(),
    }
    payment.details = {**(payment.details or {}), "refunds": refunds}
    await append_audit(
        session,
        actor=principal.actor,
        action="deposit.refund_requested",
        entity_type="payment",
        entity_id=payment.id,
        brand_id=payment.brand_id,
        after={"refund_id": refund_id, "amount": amount, "reason": body.reason},
        event_key=f"refund:{refund_id}:requested",
    )
    await session.commit()
    await _start_refund(temporal, settings.task_queue, payment, refund_id, amount, body.reason)
    return _refund_started(payment, refund_id, amount)


async def _start_refund(
    temporal: Client, task_queue: str, payment: Payment, refund_id: str, amount: int, reason: str
) -> None:
    """Once per refund: a retry finds it started (or finished) and starts nothing."""
    staff = ((payment.details or {}).get("refunds") or {}).get(refund_id, {}).get("requested_by")
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await temporal.start_workflow(
            "RefundWorkflow",
            RefundRequest(
                payment_id=payment.id,
                refund_id=refund_id,
                amount=amount,
                currency=payment.currency,
                reason=reason,
                requested_by=str(staff or "unknown"),
            ),
            id=refund_workflow_id(payment.id, refund_id),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )


def _refund_started(payment: Payment, refund_id: str, amount: int) -> RefundStarted:
    return RefundStarted(
        refund_id=refund_id,
        workflow_id=refund_workflow_id(payment.id, refund_id),
        payment_id=payment.id,
        amount=amount_text(Money.from_minor(amount, payment.currency).amount),
        currency=payment.currency,
    )


# ---------------------------------------------------------------- PSP events after completion

REVERSING_STATUSES = {
    PaymentStatus.CHARGED_BACK,
    PaymentStatus.REFUNDED,
    PaymentStatus.PARTIALLY_REFUNDED,
}


REFUND_STATUSES = {PaymentStatus.REFUNDED, PaymentStatus.PARTIALLY_REFUNDED}


def reversal_workflow_id(payment: Payment, event: PspEvent) -> str:
    """A refund event (finance's refund coming back from the PSP, or one made at the PSP) is named
    a refund; a dispute or a charged-back status a chargeback."""
    if event.object_kind == "dispute" or event.status is PaymentStatus.CHARGED_BACK:
        return chargeback_workflow_id(payment.id, event.event_key)
    if event.object_kind == "refund" or event.status in REFUND_STATUSES:
        return psp_refund_workflow_id(payment.id, event.event_key)
    return chargeback_workflow_id(payment.id, event.event_key)


def takes_money_back(payment: Payment, event: PspEvent) -> bool:
    """A chargeback, dispute or refund event on a deposit whose money reached the client."""
    if payment.kind != "deposit" or payment.status not in CREDITED | REVERSED:
        return False
    return event.object_kind in ("dispute", "refund") or event.status in REVERSING_STATUSES


async def start_reversal(
    temporal: Client, task_queue: str, payment: Payment, event: PspEvent
) -> str | None:
    """Start ChargebackWorkflow for such an event (once per event); the workflow id, or None when
    the event takes nothing back. Temporal unreachable: 503, so the PSP delivers it again."""
    if not takes_money_back(payment, event):
        return None
    workflow_id = reversal_workflow_id(payment, event)
    try:
        await temporal.start_workflow(
            "ChargebackWorkflow",
            ReversalInput(
                payment_id=payment.id,
                event_key=event.event_key,
                event_type=event.type,
                object_kind=event.object_kind,
                amount=event.amount,
            ),
            id=workflow_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        pass  # a redelivered event: its workflow runs or ran
    except RPCError as exc:
        raise Problem(503, "Try again", "the event is stored but could not be handled yet") from exc
    return workflow_id
