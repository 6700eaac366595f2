"""Deposits and payment reads: the portal asks for a deposit (DepositWorkflow does the rest) and
reads its own payments; finance, support and auditors read their brands' payments."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from fxcrm.adapters.psp.base import PaymentMethod
from fxcrm.api.deps import (
    Principal,
    PspsDep,
    SessionDep,
    SettingsDep,
    TemporalDep,
    TraderDep,
    release,
    require,
)
from fxcrm.api.errors import Problem
from fxcrm.api.openapi import REQUIRES_IDEMPOTENCY_KEY, problems
from fxcrm.api.params import Offset
from fxcrm.api.payment_requests import (
    audit_requested,
    brand_code,
    brand_rules,
    check_kyc,
    earlier_request,
    insert_payment,
    own_open_account,
    refused,
    start_payment_workflow,
    trader_with_rules,
)
from fxcrm.core.audit import Actor
from fxcrm.domain.money import Money
from fxcrm.domain.money_text import amount_text
from fxcrm.domain.payments import (
    DepositStatus,
    PaymentError,
    PaymentRules,
    check_deposit,
    parse_amount,
)
from fxcrm.domain.withdrawals import instrument_fingerprint
from fxcrm.models import Payment, Trader, TradingAccount
from fxcrm.models.base import new_id
from fxcrm.workflows.deposit_types import (
    WORKFLOW_NAME,
    DepositInput,
    deposit_workflow_id,
)

router = APIRouter(tags=["payments"])
StaffReader = Annotated[Principal, Depends(require("finance", "admin", "support", "auditor"))]

# How long POST /deposits waits for the PSP's next action (3-D Secure link, address, wire).
NEXT_ACTION_WAIT = 5.0
NEXT_ACTION_POLL = 0.1
NOT_COUNTED_TODAY = (DepositStatus.FAILED.value, DepositStatus.EXPIRED.value)


class AccountTarget(BaseModel):
    account_id: str = Field(min_length=1, max_length=32)


class DepositRequest(BaseModel):
    amount: str = Field(max_length=40)  # a decimal string: never a JSON number (float)
    currency: str = Field(min_length=3, max_length=8)
    method: str = Field(min_length=1, max_length=20)
    target: Literal["wallet"] | AccountTarget
    instrument: str | None = Field(default=None, min_length=1, max_length=100)
    network: str | None = Field(default=None, min_length=1, max_length=30)


class TargetView(BaseModel):
    kind: str  # wallet | account
    account_id: str | None


class PaymentView(BaseModel):
    """What the trader sees of a payment."""

    id: str
    kind: str
    status: str
    amount: str
    currency: str
    amount_received: str | None
    method: str | None
    target: TargetView
    next_action: dict[str, Any] | None
    is_ftd: bool
    failure_code: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class StaffPaymentView(PaymentView):
    """What finance, support and auditors see in addition."""

    brand_id: str
    trader_id: str
    workflow_id: str
    psp: str | None
    provider_ref: str | None
    source: TargetView
    risk_flags: list[str]
    approvals_required: int
    details: dict[str, Any]


class PaymentPage(BaseModel):
    items: list[PaymentView]
    total: int
    limit: int
    offset: int


class StaffPaymentPage(BaseModel):
    items: list[StaffPaymentView]
    total: int
    limit: int
    offset: int


def _decimal(minor: int | None, currency: str) -> str | None:
    return None if minor is None else amount_text(Money.from_minor(minor, currency).amount)


def payment_view(p: Payment) -> PaymentView:
    return PaymentView(**_common(p))


def staff_payment_view(p: Payment) -> StaffPaymentView:
    return StaffPaymentView(
        **_common(p),
        brand_id=p.brand_id,
        trader_id=p.trader_id,
        workflow_id=p.workflow_id,
        psp=p.psp,
        provider_ref=p.provider_ref,
        source=TargetView(kind=p.source_kind, account_id=p.source_account_id),
        risk_flags=list(p.risk_flags or []),
        approvals_required=p.approvals_required,
        details=dict(p.details or {}),
    )


def _common(p: Payment) -> dict[str, Any]:
    return {
        "id": p.id,
        "kind": p.kind,
        "status": p.status,
        "amount": _decimal(p.amount, p.currency),
        "currency": p.currency,
        "amount_received": _decimal(p.amount_received, p.currency),
        "method": p.method,
        "target": TargetView(kind=p.target_kind, account_id=p.target_account_id),
        "next_action": p.next_action,
        "is_ftd": p.is_ftd,
        "failure_code": p.failure_code,
        "failure_reason": p.failure_reason,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "completed_at": p.completed_at,
    }


# ---------------------------------------------------------------- portal: deposit


@router.post(
    "/portal/me/deposits",
    status_code=status.HTTP_201_CREATED,
    response_model=PaymentView,
    tags=["portal: money"],
    openapi_extra={REQUIRES_IDEMPOTENCY_KEY: True},
    responses=problems(503),
)
async def create_deposit(
    body: DepositRequest,
    me: TraderDep,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    psps: PspsDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> PaymentView:
    key, digest, existing = await earlier_request(session, me.id, idempotency_key, body, "deposit")
    if existing is not None:
        return await _replay(existing, session, temporal, settings, response)

    trader, brand, rules = await trader_with_rules(session, me.id)
    try:
        amount, account = await _validate(session, trader, rules, body)
        fingerprint = _fingerprint(settings.secret_key.encode(), body)
    except PaymentError as exc:
        raise refused(exc, "Deposit") from exc

    payment_id = new_id()  # chosen here: the workflow id is derived from it
    payment = Payment(
        id=payment_id,
        brand_id=trader.brand_id,
        trader_id=trader.id,
        kind="deposit",
        status=DepositStatus.CREATED.value,
        idempotency_key=key,
        request_hash=digest,
        currency=amount.currency,
        amount=amount.to_minor(),
        source_kind="psp",
        target_kind="account" if account else "wallet",
        target_account_id=account.id if account else None,
        method=body.method,
        psp=psps.default,
        instrument=body.instrument,
        instrument_fingerprint=fingerprint,
        details={"network": body.network} if body.network else {},
        risk_flags=[],
        workflow_id=deposit_workflow_id(payment_id),
    )
    raced = await insert_payment(session, payment)
    if raced is not None:  # the same key raced in from a retry: answer as that request
        return await _replay(raced, session, temporal, settings, response)
    await audit_requested(
        session,
        payment,
        Actor(type="trader", id=trader.id),
        {
            "amount": amount_text(amount.amount),
            "currency": amount.currency,
            "method": body.method,
            "target": payment.target_kind,
            "target_account_id": payment.target_account_id,
        },
    )
    code = brand.code
    await session.commit()  # the row exists before its workflow; the session holds nothing now
    await _start(temporal, settings.task_queue, payment, rules, code)
    return payment_view(await _wait_for_next_action(session, payment.id))


async def _validate(
    session: AsyncSession, trader: Trader, rules: PaymentRules, body: DepositRequest
) -> tuple[Money, TradingAccount | None]:
    amount = parse_amount(body.amount, body.currency)
    if body.method not in {m.value for m in PaymentMethod}:
        raise PaymentError("unsupported_method", f"deposits by {body.method!r} are unknown")
    check_kyc(trader, rules.deposit_kyc_level, "deposits")
    account = None
    if isinstance(body.target, AccountTarget):
        account = await own_open_account(
            session,
            trader.id,
            body.target.account_id,
            amount.currency,
            hint="; deposit to the wallet and transfer",
        )
    check_deposit(rules, amount, body.method, await _today_total(session, trader.id, amount))
    return amount, account


def _fingerprint(pepper: bytes, body: DepositRequest) -> str | None:
    """The instrument's fingerprint, the same function withdrawals use to compare destinations."""
    if body.instrument is None:
        return None
    return instrument_fingerprint(pepper, body.method, body.instrument)


async def _today_total(session: AsyncSession, trader_id: str, amount: Money) -> Decimal:
    """Deposits asked for today (UTC) in this currency, except those that failed or expired."""
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    minor = await session.scalar(
        select(func.coalesce(func.sum(Payment.amount), 0)).where(
            Payment.trader_id == trader_id,
            Payment.kind == "deposit",
            Payment.currency == amount.currency,
            Payment.created_at >= start,
            Payment.status.not_in(NOT_COUNTED_TODAY),
        )
    )
    return Money.from_minor(int(minor or 0), amount.currency).amount


async def _replay(
    payment: Payment,
    session: AsyncSession,
    temporal: Client,
    settings: SettingsDep,
    response: Response,
) -> PaymentView:
    """The same request again: the same payment, started if the first attempt stored it and
    then failed to start it (a workflow that is already running or done is left as it is)."""
    response.status_code = status.HTTP_200_OK
    if payment.status != DepositStatus.CREATED:
        return payment_view(payment)
    rules = await brand_rules(session, payment.brand_id)
    code = await brand_code(session, payment.brand_id)
    await release(session)
    await _start(temporal, settings.task_queue, payment, rules, code)
    return payment_view(await _wait_for_next_action(session, payment.id))


async def _start(
    client: Client, task_queue: str, payment: Payment, rules: PaymentRules, brand: str
) -> None:
    method = payment.method or "card"
    inp = DepositInput(
        payment_id=payment.id,
        trader_id=payment.trader_id,
        brand_id=payment.brand_id,
        method=method,
        to_account=payment.target_kind == "account",
        expiry=rules.expiry_for(method),
    )
    await start_payment_workflow(
        client,
        task_queue,
        WORKFLOW_NAME,
        inp,
        payment=payment,
        brand=brand,
        stage=DepositStatus.CREATED.value,
        what="deposit",
    )


async def _wait_for_next_action(session: AsyncSession, payment_id: str) -> Payment:
    """Briefly waits until the PSP answered (next action stored, or already decided)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + NEXT_ACTION_WAIT
    while True:
        payment = await session.get(Payment, payment_id, populate_existing=True)
        assert payment is not None
        await release(session)
        if payment.status != DepositStatus.CREATED or loop.time() >= deadline:
            return payment
        await asyncio.sleep(NEXT_ACTION_POLL)


# ---------------------------------------------------------------- portal: reads


@router.get("/portal/me/payments", response_model=PaymentPage, tags=["portal: money"])
async def my_payments(
    me: TraderDep,
    session: SessionDep,
    kind: Literal["deposit", "withdrawal", "transfer"] | None = None,
    status_: Annotated[str | None, Query(alias="status", max_length=30)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> PaymentPage:
    rows, total = await _page(session, [Payment.trader_id == me.id], kind, status_, limit, offset)
    return PaymentPage(
        items=[payment_view(p) for p in rows], total=total, limit=limit, offset=offset
    )


@router.get("/portal/me/payments/{payment_id}", response_model=PaymentView, tags=["portal: money"])
async def my_payment(payment_id: str, me: TraderDep, session: SessionDep) -> PaymentView:
    payment = await session.get(Payment, payment_id)
    if payment is None or payment.trader_id != me.id:
        raise Problem(404, "Unknown payment", f"no payment {payment_id!r}")
    return payment_view(payment)


# ---------------------------------------------------------------- back office: reads


@router.get("/backoffice/payments", response_model=StaffPaymentPage, tags=["finance"])
async def brand_payments(
    principal: StaffReader,
    session: SessionDep,
    kind: Literal["deposit", "withdrawal", "transfer"] | None = None,
    status_: Annotated[str | None, Query(alias="status", max_length=30)] = None,
    trader_id: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> StaffPaymentPage:
    conditions: list[Any] = [Payment.brand_id.in_(principal.brand_ids)]
    if trader_id:
        conditions.append(Payment.trader_id == trader_id)
    rows, total = await _page(session, conditions, kind, status_, limit, offset)
    return StaffPaymentPage(
        items=[staff_payment_view(p) for p in rows], total=total, limit=limit, offset=offset
    )


@router.get("/backoffice/payments/{payment_id}", response_model=StaffPaymentView, tags=["finance"])
async def brand_payment(
    payment_id: str, principal: StaffReader, session: SessionDep
) -> StaffPaymentView:
    payment = await session.get(Payment, payment_id)
    if payment is None or not principal.can_see_brand(payment.brand_id):
        raise Problem(404, "Unknown payment", f"no payment {payment_id!r}")
    return staff_payment_view(payment)


async def _page(
    session: AsyncSession,
    conditions: list[Any],
    kind: str | None,
    status_: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Payment], int]:
    if kind:
        conditions.append(Payment.kind == kind)
    if status_:
        conditions.append(Payment.status == status_)
    total = await session.scalar(select(func.count()).select_from(Payment).where(*conditions))
    rows = (
        await session.scalars(
            select(Payment)
            .where(*conditions)
            .order_by(Payment.created_at.desc(), Payment.id.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return list(rows), int(total or 0)
