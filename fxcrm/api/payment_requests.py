"""What the three payment requests (deposit, withdrawal, transfer) share: the Idempotency-Key
contract, refusals as problems, the trader's brand rules, the trader's own trading account, and
starting the payment's workflow once.

The Idempotency-Key contract (DESIGN.md, "Exactly once"): the header is required (400
`idempotency_key_required`); the same key with the same body is the same payment; the same key
with another body, or for another kind of payment, is a 422 `idempotency_conflict`; a payment
stored by an attempt that failed before its workflow started is started by the retry.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import structlog
from pydantic import BaseModel
from sqlalchemy import select
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

from fxcrm.api.errors import Problem
from fxcrm.core.audit import Actor, append_audit
from fxcrm.core.temporal import BRAND, STAGE, TRADER_ID
from fxcrm.domain.brand import BrandConfig
from fxcrm.domain.payments import KycLevel, PaymentError, PaymentRules, kyc_allows, kyc_level
from fxcrm.models import Brand, Payment, Trader, TradingAccount

log = structlog.get_logger(__name__)

KYC_LEVEL_TOO_LOW = "kyc_level_too_low"


# ---------------------------------------------------------------- refusals


def refused(exc: PaymentError, what: str) -> Problem:
    """A refused request (`what`: "Deposit", ...): 403 when the trader's KYC level is too low
    (the request is fine, the trader may not make it yet), else 422."""
    return Problem(
        403 if exc.code == KYC_LEVEL_TOO_LOW else 422,
        f"{what} refused",
        str(exc),
        type_=f"/problems/payments/{exc.code}",
        code=exc.code,
    )


def check_kyc(trader: Trader, required: KycLevel, what: str) -> None:
    """`what` ("deposits", ...) needs the trader at KYC level `required` at least."""
    level = kyc_level(trader.status, trader.kyc_status)
    if not kyc_allows(level, required):
        raise PaymentError(
            KYC_LEVEL_TOO_LOW,
            f"{what} need KYC level {required.value}; yours is {level.value}",
        )


# ---------------------------------------------------------------- Idempotency-Key


async def earlier_request(
    session: AsyncSession, trader_id: str, key: str | None, body: BaseModel, kind: str
) -> tuple[str, str, Payment | None]:
    """(the Idempotency-Key, the request's hash, the payment an earlier request with this key
    stored, if any)."""
    key = require_idempotency_key(key, kind)
    digest = request_hash(body)
    return key, digest, await stored_request(session, trader_id, key, digest, kind)


def require_idempotency_key(key: str | None, what: str) -> str:
    if not key or not key.strip():
        raise Problem(
            400,
            "Idempotency-Key required",
            f"send an Idempotency-Key header so that a retried request is not a second {what}",
            type_="/problems/payments/idempotency_key_required",
            code="idempotency_key_required",
        )
    return key


def request_hash(body: BaseModel) -> str:
    """The request's identity under its Idempotency-Key: a hash of its canonical JSON."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def stored_request(
    session: AsyncSession, trader_id: str, key: str, digest: str, kind: str
) -> Payment | None:
    """The payment an earlier request with this key stored, if any; a 422 if that request was
    another one."""
    payment = await session.scalar(
        select(Payment).where(Payment.trader_id == trader_id, Payment.idempotency_key == key)
    )
    if payment is not None and (payment.request_hash != digest or payment.kind != kind):
        raise Problem(
            422,
            "Idempotency-Key reused",
            "this Idempotency-Key was used for a different request",
            type_="/problems/payments/idempotency_conflict",
            code="idempotency_conflict",
            payment_id=payment.id,
        )
    return payment


async def insert_payment(session: AsyncSession, payment: Payment) -> Payment | None:
    """Stores a new payment: None once stored, or the payment a concurrent request with the same
    Idempotency-Key stored first (the caller answers as that request)."""
    identity = (payment.trader_id, payment.idempotency_key, payment.request_hash, payment.kind)
    session.add(payment)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raced = await stored_request(session, *identity)
        if raced is None:
            raise
        return raced
    return None


async def audit_requested(
    session: AsyncSession, payment: Payment, actor: Actor, after: dict[str, Any]
) -> None:
    await append_audit(
        session,
        actor=actor,
        action=f"{payment.kind}.requested",
        entity_type="payment",
        entity_id=payment.id,
        brand_id=payment.brand_id,
        after=after,
        workflow_id=payment.workflow_id,
        event_key=f"payment:{payment.id}:requested",
    )


# ---------------------------------------------------------------- the trader and their brand


async def trader_with_rules(
    session: AsyncSession, trader_id: str
) -> tuple[Trader, Brand, PaymentRules]:
    trader = await session.get(Trader, trader_id)
    brand = await session.get(Brand, trader.brand_id) if trader else None
    if trader is None or brand is None:
        raise Problem(404, "Not found", "trader not found")
    return trader, brand, BrandConfig.model_validate(brand.config).payments


async def brand_rules(session: AsyncSession, brand_id: str) -> PaymentRules:
    brand = await session.get(Brand, brand_id)
    return BrandConfig.model_validate(brand.config if brand else {}).payments


async def brand_code(session: AsyncSession, brand_id: str) -> str:
    return await session.scalar(select(Brand.code).where(Brand.id == brand_id)) or ""


async def own_open_account(
    session: AsyncSession, trader_id: str, account_id: str, currency: str = "", hint: str = ""
) -> TradingAccount:
    """The trader's open trading account `account_id`, in `currency` if one is given (`hint`: what
    to do instead, added to a currency mismatch)."""
    account = await session.get(TradingAccount, account_id)
    # Another trader's account looks like no account at all.
    if account is None or account.trader_id != trader_id:
        raise PaymentError("unknown_account", f"no trading account {account_id!r} of yours")
    if account.status != "open" or account.login is None:
        raise PaymentError("account_not_open", f"trading account {account_id} is not open")
    if currency and currency.upper() != account.currency:
        raise PaymentError(
            "currency_mismatch",
            f"trading account {account_id} is in {account.currency}, not {currency}{hint}",
        )
    return account


# ---------------------------------------------------------------- the workflow


async def start_payment_workflow(
    client: Client,
    task_queue: str,
    workflow: str,
    inp: Any,
    *,
    payment: Payment,
    brand: str,
    stage: str,
    what: str,
) -> None:
    """Starts the payment's workflow once: a retry finds the running one (conflict policy) or the
    finished one (reuse policy) and starts nothing. Temporal unreachable: a 503, and the stored
    payment is started by a retry with the same Idempotency-Key."""
    try:
        await client.start_workflow(
            workflow,
            inp,
            id=payment.workflow_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(TRADER_ID, payment.trader_id),
                    SearchAttributePair(BRAND, brand),
                    SearchAttributePair(STAGE, stage),
                ]
            ),
        )
    except WorkflowAlreadyStartedError:
        return  # closed already: the payment went its way
    except RPCError as exc:
        log.error(f"{what} workflow not started", payment_id=payment.id, error=exc.message)
        raise Problem(
            503,
            f"{what.capitalize()} not started",
            f"the {what} is recorded but could not start; retry with the same Idempotency-Key",
            code="workflow_unavailable",
        ) from exc
