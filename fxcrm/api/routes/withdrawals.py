"""Withdrawals: the trader asks (and may cancel while finance decides), finance sees the queue and
decides. The API checks what it can from the database and starts or signals
`withdrawal-{payment}`; the workflow re-checks the platform's free margin, holds, pays, releases.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError

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
    check_kyc,
    earlier_request,
    insert_payment,
    own_open_account,
    refused,
    start_payment_workflow,
    trader_with_rules,
)
from fxcrm.core.audit import Actor
from fxcrm.domain import ledger as ledger_rules
from fxcrm.domain.masking import mask_email, mask_name
from fxcrm.domain.money import Money
from fxcrm.domain.money_text import amount_text
from fxcrm.domain.payments import (
    FINAL_STATUSES,
    PaymentError,
    PaymentRules,
    WithdrawalStatus,
    approvals_required,
    check_withdrawal,
    parse_amount,
)
from fxcrm.domain.withdrawals import METHODS, destination_instrument, instrument_fingerprint
from fxcrm.ledger import AccountView
from fxcrm.models import (
    AccountMirror,
    LedgerAccount,
    Payment,
    PaymentApproval,
    Trader,
    TradingAccount,
)
from fxcrm.models.base import new_id, utcnow
from fxcrm.workflows.withdrawal_types import (
    CancelRequest,
    Decision,
    SourceAccount,
    WithdrawalInput,
    withdrawal_workflow_id,
)

router = APIRouter(tags=["withdrawals"])
WORKFLOW_NAME = "WithdrawalWorkflow"
FinanceDep = Annotated[Principal, Depends(require("finance", "admin"))]
PII_ROLES = {"admin"}  # finance recognises a client; it does not need to read their data


class AccountSourceBody(BaseModel):
    account_id: str = Field(min_length=1, max_length=32)


class DestinationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    card_token: str | None = Field(default=None, min_length=4, max_length=100)
    crypto_address: str | None = Field(default=None, min_length=10, max_length=120)
    crypto_network: str | None = Field(default=None, min_length=2, max_length=30)
    iban: str | None = Field(default=None, min_length=15, max_length=42)
    bic: str | None = Field(default=None, min_length=8, max_length=11)
    account_holder: str | None = Field(default=None, min_length=2, max_length=140)
    provider_account: str | None = Field(default=None, min_length=2, max_length=100)


class WithdrawalRequest(BaseModel):
    amount: str = Field(max_length=40)  # a decimal string: never a JSON number (float)
    currency: str = Field(min_length=3, max_length=8)
    source: Literal["wallet"] | AccountSourceBody
    method: str = Field(min_length=1, max_length=20)
    destination: DestinationBody


class WithdrawalView(BaseModel):
    id: str
    workflow_id: str
    status: str
    amount: str
    currency: str
    method: str | None
    source: str  # wallet | account
    source_account_id: str | None
    risk_flags: list[str]
    approvals_required: int
    failure_code: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class ApprovalView(BaseModel):
    approver_id: str
    decision: str
    reason: str | None
    at: datetime


class QueueItem(WithdrawalView):
    brand_id: str
    trader_id: str
    trader_name: str
    trader_email: str
    approvals: list[ApprovalView]
    approvals_so_far: int
    age_seconds: int


class DecisionBody(BaseModel):
    decision: Literal["approve", "reject"]
    reason: str = Field(min_length=3, max_length=500)


class Accepted(BaseModel):
    status: str = "accepted"
    payment_id: str
    approvals_so_far: int = 0
    approvals_required: int = 0


def _view(p: Payment) -> WithdrawalView:
    return WithdrawalView(
        id=p.id,
        workflow_id=p.workflow_id,
        status=p.status,
        amount=amount_text(Money.from_minor(p.amount, p.currency).amount),
        currency=p.currency,
        method=p.method,
        source=p.source_kind,
        source_account_id=p.source_account_id,
        risk_flags=list(p.risk_flags or []),
        approvals_required=p.approvals_required,
        failure_code=p.failure_code,
        failure_reason=p.failure_reason,
        created_at=p.created_at,
        updated_at=p.updated_at,
        completed_at=p.completed_at,
    )


# ---------------------------------------------------------------- checks


REQUIRED_FIELDS = {
    "card": ("card_token",),
    "crypto": ("crypto_address", "crypto_network"),
    "bank_wire": ("iban", "bic", "account_holder"),
    "local": ("provider_account",),
}


def check_destination(method: str, destination: DestinationBody) -> dict[str, str]:
    """The fields of the chosen method, all present; nothing of another method."""
    given = destination.model_dump(exclude_none=True)
    needed = REQUIRED_FIELDS[method]
    missing = [name for name in needed if not given.get(name, "").strip()]
    if missing:
        raise PaymentError("invalid_destination", f"a {method} payout needs {', '.join(missing)}")
    extra = sorted(set(given) - set(needed))
    if extra:
        raise PaymentError("invalid_destination", f"{', '.join(extra)} do not belong to {method}")
    if method == "bank_wire":
        iban = "".join(given["iban"].split()).upper()
        if not (iban[:2].isalpha() and iban[2:4].isdigit() and iban.isalnum()):
            raise PaymentError("invalid_destination", "the IBAN is malformed")
    return {name: value.strip() for name, value in given.items()}


async def _available_in_wallet(session: AsyncSession, trader: Trader, money: Money) -> Money:
    code = ledger_rules.client_wallet_code(trader.id, money.currency)
    row = await session.scalar(
        select(LedgerAccount).where(
            LedgerAccount.brand_id == trader.brand_id, LedgerAccount.code == code
        )
    )
    if row is None:
        return Money.from_minor(0, money.currency)
    return AccountView.model_validate(row).available


async def _available_in_account(
    session: AsyncSession, account: TradingAccount, money: Money
) -> Money:
    """What the database knows: the ledger mirror, and the last synced free margin. The platform
    itself is asked by the workflow (the API never calls a platform)."""
    assert account.login is not None
    code = ledger_rules.client_trading_code(account.trader_id, account.server_id, account.login)
    row = await session.scalar(
        select(LedgerAccount).where(
            LedgerAccount.brand_id == account.brand_id, LedgerAccount.code == code
        )
    )
    available = AccountView.model_validate(row).available if row is not None else None
    if available is None:
        return Money.from_minor(0, money.currency)
    mirror = await session.get(AccountMirror, (account.server_id, account.login))
    if mirror is not None and mirror.free_margin < available.amount:
        return Money(amount=max(mirror.free_margin, 0), currency=money.currency)
    return available


async def _validate(
    session: AsyncSession, trader: Trader, rules: PaymentRules, body: WithdrawalRequest
) -> tuple[Money, TradingAccount | None, dict[str, str]]:
    amount = parse_amount(body.amount, body.currency)
    if body.method not in METHODS:
        raise PaymentError("unsupported_method", f"withdrawals by {body.method!r} are unknown")
    check_kyc(trader, rules.withdrawal_kyc_level, "withdrawals")
    pending = await session.scalar(
        select(func.count())
        .select_from(Payment)
        .where(
            Payment.trader_id == trader.id,
            Payment.kind == "withdrawal",
            Payment.status.not_in([s.value for s in FINAL_STATUSES]),
        )
    )
    check_withdrawal(rules, amount, body.method, int(pending or 0))
    destination = check_destination(body.method, body.destination)
    account = None
    if isinstance(body.source, AccountSourceBody):
        account = await own_open_account(
            session, trader.id, body.source.account_id, amount.currency
        )
        available = await _available_in_account(session, account, amount)
    else:
        available = await _available_in_wallet(session, trader, amount)
    if available.amount < amount.amount:
        raise PaymentError(
            "insufficient_funds", f"{available} is available; {amount} was asked for"
        )
    return amount, account, destination


# ---------------------------------------------------------------- workflow client


async def _signal(client: Client, payment: Payment, name: str, arg: object) -> None:
    try:
        await client.get_workflow_handle(payment.workflow_id).signal(name, arg)
    except RPCError as exc:
        raise Problem(
            409, "Withdrawal is closed", f"the withdrawal is no longer running ({exc.message})"
        ) from exc


def _input(payment: Payment, account: TradingAccount | None) -> WithdrawalInput:
    source = None
    if account is not None:
        assert account.login is not None
        source = SourceAccount(
            account_id=account.id, server_id=account.server_id, login=account.login
        )
    return WithdrawalInput(
        payment_id=payment.id,
        trader_id=payment.trader_id,
        brand_id=payment.brand_id,
        currency=payment.currency,
        amount=payment.amount,
        source=source,
        created_at=payment.created_at,
    )


# ---------------------------------------------------------------- portal


@router.post(
    "/portal/me/withdrawals",
    status_code=status.HTTP_201_CREATED,
    response_model=WithdrawalView,
    tags=["portal: money"],
    openapi_extra={REQUIRES_IDEMPOTENCY_KEY: True},
    responses=problems(503),
)
async def create_withdrawal(
    body: WithdrawalRequest,
    me: TraderDep,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    psps: PspsDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> WithdrawalView:
    key, digest, existing = await earlier_request(
        session, me.id, idempotency_key, body, "withdrawal"
    )
    if existing is not None:
        return await _replay(existing, session, temporal, settings, response)

    trader, brand, rules = await trader_with_rules(session, me.id)
    try:
        amount, account, destination = await _validate(session, trader, rules, body)
    except PaymentError as exc:
        raise refused(exc, "Withdrawal") from exc

    payment_id = new_id()
    instrument = destination_instrument(body.method, dict(destination))
    payment = Payment(
        id=payment_id,
        brand_id=trader.brand_id,
        trader_id=trader.id,
        kind="withdrawal",
        status=WithdrawalStatus.REQUESTED.value,
        idempotency_key=key,
        request_hash=digest,
        workflow_id=withdrawal_workflow_id(payment_id),
        currency=amount.currency,
        amount=amount.to_minor(),
        source_kind="account" if account else "wallet",
        source_account_id=account.id if account else None,
        target_kind="psp",
        method=body.method,
        psp=psps.default,
        instrument=json.dumps(destination, sort_keys=True),
        instrument_fingerprint=(
            instrument_fingerprint(settings.secret_key.encode(), body.method, instrument)
            if instrument
            else None
        ),
        risk_flags=[],
        approvals_required=approvals_required(rules, amount),
        details={},
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
            "source": payment.source_kind,
            "source_account_id": payment.source_account_id,
        },
    )
    inp = _input(payment, account)
    view = _view(payment)
    code = brand.code
    await session.commit()  # the row exists before its workflow; the session holds nothing now
    await _start(temporal, settings.task_queue, payment, inp, code)
    return view


async def _replay(
    payment: Payment,
    session: AsyncSession,
    temporal: Client,
    settings: SettingsDep,
    response: Response,
) -> WithdrawalView:
    """The same request again: the same payment, started if the first attempt stored it and
    then failed to start it."""
    response.status_code = status.HTTP_200_OK
    view = _view(payment)
    if payment.status == WithdrawalStatus.REQUESTED:
        account = (
            await session.get(TradingAccount, payment.source_account_id)
            if payment.source_account_id
            else None
        )
        inp = _input(payment, account)
        code = await brand_code(session, payment.brand_id)
        await release(session)
        await _start(temporal, settings.task_queue, payment, inp, code)
    return view


async def _start(
    client: Client, task_queue: str, payment: Payment, inp: WithdrawalInput, brand: str
) -> None:
    await start_payment_workflow(
        client,
        task_queue,
        WORKFLOW_NAME,
        inp,
        payment=payment,
        brand=brand,
        stage=WithdrawalStatus.REQUESTED.value,
        what="withdrawal",
    )


async def _my_withdrawal(session: AsyncSession, trader_id: str, payment_id: str) -> Payment:
    payment = await session.get(Payment, payment_id)
    if payment is None or payment.trader_id != trader_id or payment.kind != "withdrawal":
        raise Problem(404, "Not found", "no such withdrawal")
    return payment


@router.get("/portal/me/withdrawals", response_model=list[WithdrawalView], tags=["portal: money"])
async def my_withdrawals(
    me: TraderDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[WithdrawalView]:
    rows = await session.scalars(
        select(Payment)
        .where(Payment.trader_id == me.id, Payment.kind == "withdrawal")
        .order_by(Payment.created_at.desc())
        .limit(limit)
    )
    return [_view(p) for p in rows]


@router.get(
    "/portal/me/withdrawals/{payment_id}", response_model=WithdrawalView, tags=["portal: money"]
)
async def my_withdrawal(payment_id: str, me: TraderDep, session: SessionDep) -> WithdrawalView:
    return _view(await _my_withdrawal(session, me.id, payment_id))


@router.post(
    "/portal/me/withdrawals/{payment_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    tags=["portal: money"],
)
async def cancel_withdrawal(
    payment_id: str, me: TraderDep, session: SessionDep, temporal: TemporalDep
) -> Accepted:
    payment = await _my_withdrawal(session, me.id, payment_id)
    if payment.status != WithdrawalStatus.AWAITING_APPROVAL:
        raise Problem(
            409, "Too late to cancel", f"the withdrawal is {payment.status}", code="not_cancellable"
        )
    await release(session)
    await _signal(temporal, payment, "cancel", CancelRequest(trader_id=me.id))
    return Accepted(payment_id=payment.id)


# ---------------------------------------------------------------- finance


@router.get("/backoffice/withdrawals", response_model=list[QueueItem], tags=["finance"])
async def withdrawal_queue(
    principal: FinanceDep,
    session: SessionDep,
    status_: Annotated[str, Query(alias="status", max_length=30)] = "awaiting_approval",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> list[QueueItem]:
    """Oldest first: the longest wait is decided first."""
    rows = (
        await session.execute(
            select(Payment, Trader)
            .join(Trader, Trader.id == Payment.trader_id)
            .where(
                Payment.brand_id.in_(principal.brand_ids),
                Payment.kind == "withdrawal",
                Payment.status == status_,
            )
            .order_by(Payment.created_at)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    ids = [payment.id for payment, _ in rows]
    approvals: dict[str, list[ApprovalView]] = {}
    if ids:
        for a in await session.scalars(
            select(PaymentApproval)
            .where(PaymentApproval.payment_id.in_(ids))
            .order_by(PaymentApproval.created_at)
        ):
            approvals.setdefault(a.payment_id, []).append(
                ApprovalView(
                    approver_id=a.approver_id, decision=a.decision, reason=a.reason, at=a.created_at
                )
            )
    show = principal.role in PII_ROLES
    now = utcnow()
    items = []
    for payment, trader in rows:
        name = f"{trader.first_name} {trader.last_name}"
        if not show:
            name = f"{mask_name(trader.first_name)} {mask_name(trader.last_name)}"
        given = approvals.get(payment.id, [])
        items.append(
            QueueItem(
                **_view(payment).model_dump(),
                brand_id=payment.brand_id,
                trader_id=trader.id,
                trader_name=name,
                trader_email=trader.email if show else mask_email(trader.email),
                approvals=given,
                approvals_so_far=sum(a.decision == "approve" for a in given),
                age_seconds=int((now - payment.created_at).total_seconds()),
            )
        )
    return items


@router.post(
    "/backoffice/withdrawals/{payment_id}/decisions",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    tags=["finance"],
)
async def decide(
    payment_id: str,
    body: DecisionBody,
    principal: FinanceDep,
    session: SessionDep,
    temporal: TemporalDep,
) -> Accepted:
    payment = await session.get(Payment, payment_id)
    if (
        payment is None
        or payment.kind != "withdrawal"
        or not principal.can_see_brand(payment.brand_id)
    ):
        raise Problem(404, "Not found", "no such withdrawal")
    if payment.status != WithdrawalStatus.AWAITING_APPROVAL:
        raise Problem(
            409, "No decision due", f"the withdrawal is {payment.status}", code="not_awaiting"
        )
    if principal.id == payment.trader_id:
        raise Problem(
            422,
            "Own withdrawal",
            "the requester may not decide their own withdrawal",
            code="requester_may_not_decide",
        )
    session.add(
        PaymentApproval(
            payment_id=payment.id,
            approver_id=principal.id,
            decision=body.decision,
            reason=body.reason,
        )
    )
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise Problem(
            409,
            "Already decided",
            "you have already decided this withdrawal; another approver is needed",
            code="already_decided",
        ) from None
    so_far = await session.scalar(
        select(func.count())
        .select_from(PaymentApproval)
        .where(PaymentApproval.payment_id == payment.id, PaymentApproval.decision == "approve")
    )
    required = payment.approvals_required
    await session.commit()
    await _signal(
        temporal,
        payment,
        "decision",
        Decision(
            approver_id=principal.id,
            role=principal.role,
            decision=body.decision,
            reason=body.reason,
        ),
    )
    return Accepted(
        payment_id=payment.id, approvals_so_far=int(so_far or 0), approvals_required=required
    )
