"""Deposits and payment reads: the portal asks for a deposit (DepositWorkflow does the rest) and
reads its own payments; finance, support and auditors read their brands' payments."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, Header, Query, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

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
from fxcrm.core.audit import Actor, append_audit
from fxcrm.core.temporal import BRAND, STAGE, TRADER_ID
from fxcrm.domain.brand import BrandConfig
from fxcrm.domain.money import Money
from fxcrm.domain.payments import (
    DepositStatus,
    PaymentError,
    PaymentRules,
    check_deposit,
    kyc_allows,
    kyc_level,
    parse_amount,
)
from fxcrm.domain.withdrawals import instrument_fingerprint
from fxcrm.models import Brand, Payment, Trader, TradingAccount
from fxcrm.models.base import new_id
from fxcrm.workflows.deposit_types import (
    WORKFLOW_NAME,
    DepositInput,
    deposit_workflow_id,
)

router = APIRouter(tags=["payments"])
log = structlog.get_logger(__name__)
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
    return None if minor is None else str(Money.from_minor(minor, currency).amount)


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


def _refused(exc: PaymentError, status_code: int = 422) -> Problem:
    return Problem(
        status_code,
        "Deposit refused",
        str(exc),
        type_=f"/problems/payments/{exc.code}",
        code=exc.code,
    )


def _request_hash(body: DepositRequest) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# ---------------------------------------------------------------- portal: deposit


@router.post(
    "/portal/me/deposits",
    status_code=status.HTTP_201_CREATED,
    response_model=PaymentView,
    tags=["portal: money"],
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
    if not idempotency_key or not idempotency_key.strip():
        raise Problem(
            400,
            "Idempotency-Key required",
            "send an Idempotency-Key header so that a retried request is not a second deposit",
            type_="/problems/payments/idempotency_key_required",
            code="idempotency_key_required",
        )
    request_hash = _request_hash(body)
    existing = await _by_key(session, me.id, idempotency_key)
    if existing is not None:
        return await _replay(existing, request_hash, session, temporal, settings, response)

    trader = await session.get(Trader, me.id)
    brand = await session.get(Brand, trader.brand_id) if trader else None
    if trader is None or brand is None:
        raise Problem(404, "Not found", "trader not found")
    rules = BrandConfig.model_validate(brand.config).payments
    amount, account = await _validate(session, trader, rules, body)
    fingerprint = _fingerprint(settings.secret_key.encode(), body)

    payment_id = new_id()  # chosen here: the workflow id is derived from it
    payment = Payment(
        id=payment_id,
        brand_id=trader.brand_id,
        trader_id=trader.id,
        kind="deposit",
        status=DepositStatus.CREATED.value,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
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
    session.add(payment)
    try:
        await session.flush()
    except IntegrityError:
        # The same key raced in from a retry: answer as that request.
        await session.rollback()
        again = await _by_key(session, me.id, idempotency_key)
        if again is None:
            raise
        return await _replay(again, request_hash, session, temporal, settings, response)
    await append_audit(
        session,
        actor=Actor(type="trader", id=trader.id),
        action="deposit.requested",
        entity_type="payment",
        entity_id=payment.id,
        brand_id=payment.brand_id,
        after={
            "amount": str(amount.amount),
            "currency": amount.currency,
            "method": body.method,
            "target": payment.target_kind,
            "target_account_id": payment.target_account_id,
        },
        workflow_id=payment.workflow_id,
        event_key=f"payment:{payment.id}:requested",
    )
    inp = DepositInput(
        payment_id=payment.id,
        trader_id=trader.id,
        brand_id=trader.brand_id,
        method=body.method,
        to_account=account is not None,
        expiry=rules.expiry_for(body.method),
    )
    brand_code = brand.code
    await session.commit()  # the row exists before its workflow; the session holds nothing now
    await start_deposit(temporal, settings.task_queue, inp, brand_code)
    return payment_view(await _wait_for_next_action(session, payment.id))


async def _validate(
    session: AsyncSession, trader: Trader, rules: PaymentRules, body: DepositRequest
) -> tuple[Money, TradingAccount | None]:
    try:
        amount = parse_amount(body.amount, body.currency)
        if body.method not in {m.value for m in PaymentMethod}:
            raise PaymentError("unsupported_method", f"deposits by {body.method!r} are unknown")
    except PaymentError as exc:
        raise _refused(exc) from exc
    level = kyc_level(trader.status, trader.kyc_status)
    if not kyc_allows(level, rules.deposit_kyc_level):
        raise _refused(
            PaymentError(
                "kyc_level_too_low",
                f"deposits need KYC level {rules.deposit_kyc_level.value}; yours is {level.value}",
            ),
            403,
        )
    account = None
    if isinstance(body.target, AccountTarget):
        account = await session.get(TradingAccount, body.target.account_id)
        if account is None or account.trader_id != trader.id:
            raise _refused(PaymentError("unknown_account", "no such trading account of yours"))
        if account.status != "open" or account.login is None:
            raise _refused(PaymentError("account_not_open", "the trading account is not open"))
        if account.currency != amount.currency:
            raise _refused(
                PaymentError(
                    "currency_mismatch",
                    f"the account is in {account.currency}; deposit {account.currency} to it, "
                    "or deposit to the wallet and transfer",
                )
            )
    try:
        check_deposit(rules, amount, body.method, await _today_total(session, trader.id, amount))
    except PaymentError as exc:
        raise _refused(exc) from exc
    return amount, account


def _fingerprint(pepper: bytes, body: DepositRequest) -> str | None:
    """The instrument's fingerprint, the same function withdrawals use to compare destinations."""
    if body.instrument is None:
        return None
    try:
        return instrument_fingerprint(pepper, body.method, body.instrument)
    except PaymentError as exc:
        raise _refused(exc) from exc


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


async def _by_key(session: AsyncSession, trader_id: str, key: str) -> Payment | None:
    return await session.scalar(
        select(Payment).where(Payment.trader_id == trader_id, Payment.idempotency_key == key)
    )


async def _replay(
    payment: Payment,
    request_hash: str,
    session: AsyncSession,
    temporal: Client,
    settings: SettingsDep,
    response: Response,
) -> PaymentView:
    """The same Idempotency-Key again: the same body gets the same payment, another body a 422."""
    if payment.request_hash != request_hash or payment.kind != "deposit":
        raise Problem(
            422,
            "Idempotency-Key reused",
            "this Idempotency-Key was used for a different request",
            type_="/problems/payments/idempotency_conflict",
            code="idempotency_conflict",
            payment_id=payment.id,
        )
    response.status_code = status.HTTP_200_OK
    if payment.status == DepositStatus.CREATED:
        # The first attempt may have stored the row and then failed to start: start it now (a
        # workflow that is already running or done is left as it is).
        brand_code = await session.scalar(select(Brand.code).where(Brand.id == payment.brand_id))
        rules = await _rules(session, payment.brand_id)
        inp = DepositInput(
            payment_id=payment.id,
            trader_id=payment.trader_id,
            brand_id=payment.brand_id,
            method=payment.method or "card",
            to_account=payment.target_kind == "account",
            expiry=rules.expiry_for(payment.method or "card"),
        )
        await release(session)
        await start_deposit(temporal, settings.task_queue, inp, brand_code or "")
        return payment_view(await _wait_for_next_action(session, payment.id))
    return payment_view(payment)


async def _rules(session: AsyncSession, brand_id: str) -> PaymentRules:
    brand = await session.get(Brand, brand_id)
    return BrandConfig.model_validate(brand.config if brand else {}).payments


async def start_deposit(client: Client, task_queue: str, inp: DepositInput, brand: str) -> None:
    """Starts `deposit-{payment}` once: a retry finds the running one (conflict policy) or the
    finished one (reuse policy) and starts nothing."""
    try:
        await client.start_workflow(
            WORKFLOW_NAME,
            inp,
            id=deposit_workflow_id(inp.payment_id),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(TRADER_ID, inp.trader_id),
                    SearchAttributePair(BRAND, brand),
                    SearchAttributePair(STAGE, DepositStatus.CREATED.value),
                ]
            ),
        )
    except WorkflowAlreadyStartedError:
        return  # closed already: the payment went its way
    except RPCError as exc:
        log.error("deposit workflow not started", payment_id=inp.payment_id, error=exc.message)
        raise Problem(
            503,
            "Deposit not started",
            "the deposit is recorded but could not start; retry with the same Idempotency-Key",
            code="workflow_unavailable",
        ) from exc


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
    offset: Annotated[int, Query(ge=0)] = 0,
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
    offset: Annotated[int, Query(ge=0)] = 0,
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
