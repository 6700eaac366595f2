"""Internal transfers in the trader portal: wallet ↔ trading account, account → account, and
conversions between wallets.

The API validates and records the request (with the conversion quote, when the currencies
differ), then starts TransferWorkflow; it never calls a platform. Free margin is the platform's
to check: the workflow's withdrawal is refused there. The available balance checked here is a
courtesy to the trader: two concurrent requests can both pass it, and the workflow's ledger hold
refuses the second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fxcrm.api.deps import SessionDep, SettingsDep, TemporalDep, TraderDep, release
from fxcrm.api.errors import Problem
from fxcrm.api.openapi import REQUIRES_IDEMPOTENCY_KEY, problems
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
from fxcrm.domain import ledger as ledger_rules
from fxcrm.domain.fx_rates import DEFAULT_SOURCE, RateSource, UnsupportedPair
from fxcrm.domain.money import CURRENCY_SCALE, Money
from fxcrm.domain.money_text import AmountText, amount_text
from fxcrm.domain.payments import (
    PaymentError,
    PaymentRules,
    TransferStatus,
    parse_amount,
)
from fxcrm.domain.transfers import (
    Endpoint,
    EndpointKind,
    check_endpoints,
    quote,
    required_kyc_level,
)
from fxcrm.ledger import account_by_code
from fxcrm.models import Payment, Trader, TradingAccount
from fxcrm.models.base import new_id
from fxcrm.workflows.transfer_types import TransferInput, TransferStage, transfer_workflow_id

router = APIRouter(prefix="/portal", tags=["transfers"])
WORKFLOW_NAME = "TransferWorkflow"


async def get_rates(request: Request) -> RateSource:
    """The configured rate source: a price feed set as app.state.fx_rates, else the table."""
    rates: RateSource = getattr(request.app.state, "fx_rates", DEFAULT_SOURCE)
    return rates


RatesDep = Annotated[RateSource, Depends(get_rates)]


class AccountRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: str = Field(min_length=1, max_length=32)


class TransferRequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: str = Field(min_length=1, max_length=40, description="decimal string, e.g. '100.50'")
    currency: str = Field(min_length=3, max_length=8, description="currency of the source")
    source: Literal["wallet"] | AccountRef
    target: Literal["wallet"] | AccountRef
    target_currency: str | None = Field(default=None, min_length=3, max_length=8)


class Side(BaseModel):
    kind: str  # wallet | account
    account_id: str | None
    currency: str


class TransferView(BaseModel):
    payment_id: str
    workflow_id: str
    status: str
    amount: AmountText
    currency: str
    source: Side
    target: Side
    target_amount: AmountText | None
    fx_rate: str | None
    spread: str | None
    failure_code: str | None
    failure_reason: str | None
    created_at: datetime
    completed_at: datetime | None


def _view(payment: Payment) -> TransferView:
    target_currency = payment.target_currency or payment.currency
    fx = (payment.details or {}).get("fx") or {}
    return TransferView(
        payment_id=payment.id,
        workflow_id=payment.workflow_id,
        status=payment.status,
        amount=Money.from_minor(payment.amount, payment.currency).amount,
        currency=payment.currency,
        source=Side(
            kind=payment.source_kind,
            account_id=payment.source_account_id,
            currency=payment.currency,
        ),
        target=Side(
            kind=payment.target_kind,
            account_id=payment.target_account_id,
            currency=target_currency,
        ),
        target_amount=(
            Money.from_minor(payment.target_amount, target_currency).amount
            if payment.target_amount is not None
            else None
        ),
        fx_rate=payment.fx_rate,
        spread=fx.get("spread"),
        failure_code=payment.failure_code,
        failure_reason=payment.failure_reason,
        created_at=payment.created_at,
        completed_at=payment.completed_at,
    )


# ---------------------------------------------------------------- validation


@dataclass
class Checked:
    """A valid request, ready to be stored as a payment."""

    money: Money
    source: Endpoint
    target: Endpoint
    target_amount: int | None = None
    fx_rate: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _currency(raw: str, rules: PaymentRules) -> str:
    code = raw.upper()
    if code not in CURRENCY_SCALE or code not in rules.currencies:
        raise PaymentError("unsupported_currency", f"{raw!r} is not supported")
    return code


async def _endpoint(
    session: AsyncSession,
    trader_id: str,
    side: Literal["wallet"] | AccountRef,
    currency: str,
    rules: PaymentRules,
) -> tuple[Endpoint, TradingAccount | None]:
    """One side of the transfer; `currency` is the one asked for ("" for an account: its own)."""
    if isinstance(side, AccountRef):
        account = await own_open_account(session, trader_id, side.account_id, currency)
        return Endpoint(EndpointKind.ACCOUNT, account.currency, account.id), account
    return Endpoint(EndpointKind.WALLET, _currency(currency, rules)), None


async def _available(session: AsyncSession, brand_id: str, code: str) -> int:
    try:
        account = await account_by_code(session, brand_id, code)
    except ledger_rules.UnknownAccount:
        return 0  # never funded
    return account.balances.available(account.normal_balance)


async def _check(
    session: AsyncSession,
    trader: Trader,
    rules: PaymentRules,
    body: TransferRequestBody,
    rates: RateSource,
) -> Checked:
    money = parse_amount(body.amount, body.currency)
    _currency(money.currency, rules)
    source, source_account = await _endpoint(session, trader.id, body.source, money.currency, rules)
    wanted = body.target_currency or ("" if isinstance(body.target, AccountRef) else money.currency)
    target, _ = await _endpoint(session, trader.id, body.target, wanted, rules)
    check_endpoints(source, target)

    check_kyc(trader, required_kyc_level(rules, source), "transfers")

    amount = money.to_minor()
    code = (
        ledger_rules.client_trading_code(trader.id, source_account.server_id, source_account.login)
        if source_account is not None and source_account.login is not None
        else ledger_rules.client_wallet_code(trader.id, money.currency)
    )
    if await _available(session, trader.brand_id, code) < amount:
        raise PaymentError("insufficient_funds", f"not enough available for {money}")

    checked = Checked(money=money, source=source, target=target)
    if target.currency != source.currency:
        try:
            price = rates.price(source.currency, target.currency)
        except UnsupportedPair as exc:
            raise PaymentError("unsupported_currency_pair", str(exc)) from exc
        fx = quote(amount, source.currency, target.currency, price.rate, price.spread)
        checked.target_amount = fx.net_amount
        checked.fx_rate = amount_text(price.rate)
        checked.details = {"fx": fx.as_record(), "rate_source": price.source}
    return checked


# ---------------------------------------------------------------- routes


@router.post(
    "/me/transfers",
    status_code=status.HTTP_201_CREATED,
    response_model=TransferView,
    openapi_extra={REQUIRES_IDEMPOTENCY_KEY: True},
    responses=problems(503),
)
async def request_transfer(
    body: TransferRequestBody,
    me: TraderDep,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    rates: RatesDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> TransferView:
    """201 with the new transfer; the same request again (same Idempotency-Key and body) is a 200
    with the same transfer, as for deposits and withdrawals."""
    key, digest, existing = await earlier_request(session, me.id, idempotency_key, body, "transfer")
    if existing is not None:
        response.status_code = status.HTTP_200_OK
    else:
        trader, _, rules = await trader_with_rules(session, me.id)
        try:
            checked = await _check(session, trader, rules, body, rates)
        except PaymentError as exc:
            raise refused(exc, "Transfer") from exc
        payment = _payment(trader, key, digest, checked)
        existing = await insert_payment(session, payment)
        if existing is not None:
            response.status_code = status.HTTP_200_OK  # a concurrent retry stored it first
        else:
            existing = payment
            after = _view(payment).model_dump(mode="json", exclude={"created_at"})
            await audit_requested(session, payment, me.actor, after)
            await session.commit()
    view = _view(existing)
    if existing.status == TransferStatus.PENDING:
        # New, or stored by an attempt that may have failed to start it: start it (a running
        # or finished workflow is left as it is).
        code = await brand_code(session, existing.brand_id)
        await release(session)
        await start_payment_workflow(
            temporal,
            settings.task_queue,
            WORKFLOW_NAME,
            TransferInput(
                payment_id=existing.id, trader_id=existing.trader_id, brand_id=existing.brand_id
            ),
            payment=existing,
            brand=code,
            stage=TransferStage.PENDING.value,
            what="transfer",
        )
    return view


def _payment(trader: Trader, key: str, digest: str, checked: Checked) -> Payment:
    payment_id = new_id()
    return Payment(
        id=payment_id,
        workflow_id=transfer_workflow_id(payment_id),
        brand_id=trader.brand_id,
        trader_id=trader.id,
        kind="transfer",
        status=TransferStatus.PENDING.value,
        idempotency_key=key,
        request_hash=digest,
        currency=checked.money.currency,
        amount=checked.money.to_minor(),
        source_kind=checked.source.kind.value,
        source_account_id=checked.source.account_id,
        target_kind=checked.target.kind.value,
        target_account_id=checked.target.account_id,
        target_currency=checked.target.currency,
        target_amount=checked.target_amount,
        fx_rate=checked.fx_rate,
        details=checked.details,
    )


@router.get("/me/transfers", response_model=list[TransferView])
async def my_transfers(me: TraderDep, session: SessionDep) -> list[TransferView]:
    rows = (
        await session.scalars(
            select(Payment)
            .where(Payment.trader_id == me.id, Payment.kind == "transfer")
            .order_by(Payment.created_at.desc())
            .limit(100)
        )
    ).all()
    return [_view(p) for p in rows]


@router.get("/me/transfers/{payment_id}", response_model=TransferView)
async def my_transfer(payment_id: str, me: TraderDep, session: SessionDep) -> TransferView:
    payment = await session.get(Payment, payment_id)
    if payment is None or payment.trader_id != me.id or payment.kind != "transfer":
        raise Problem(404, "Not found", "no such transfer")
    return _view(payment)
