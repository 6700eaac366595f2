"""Pydantic types that cross Temporal for chargebacks and refunds of deposits."""

from __future__ import annotations

import hashlib
from enum import StrEnum

from pydantic import BaseModel

from fxcrm.domain.money import Money


def chargeback_workflow_id(payment_id: str, event_key: str) -> str:
    return f"chargeback-{payment_id}-{event_key}"


def psp_refund_workflow_id(payment_id: str, event_key: str) -> str:
    """The PSP reporting a refund (finance's own, or one made at the PSP): the same reversal check
    as a chargeback, under a name that says what happened."""
    return f"psp-refund-{payment_id}-{event_key}"


def refund_workflow_id(payment_id: str, refund_id: str) -> str:
    return f"refund-{payment_id}-{refund_id}"


def refund_id_for(payment_id: str, idempotency_key: str) -> str:
    """A retried refund request with the same Idempotency-Key is the same refund."""
    digest = hashlib.sha256(f"{payment_id}:{idempotency_key}".encode()).hexdigest()
    return f"rf{digest[:30]}"


class ReversalInput(BaseModel):
    """A PSP event that may take a completed deposit's money back: a chargeback (dispute) or a
    refund the broker did not ask for through fxcrm. Only a hint: the PSP is asked again."""

    payment_id: str
    event_key: str
    event_type: str
    object_kind: str = "payment"
    amount: Money | None = None


class ReversalAction(StrEnum):
    CHARGEBACK = "chargeback"
    EXTERNAL_REFUND = "external_refund"  # refunded at the PSP, not through fxcrm
    NONE = "none"  # nothing (more) to book: a won dispute, our own refund, a stale event


class ReversalCase(BaseModel):
    payment_id: str
    action: ReversalAction
    amount: int = 0  # minor units of `currency`
    currency: str = ""
    key: str = ""  # ledger idempotency group: `chargeback:{payment}` or `refund-ext:...`
    reason: str = ""


class ReversalBooked(BaseModel):
    payment_id: str
    action: ReversalAction
    from_wallet: int  # minor units taken from the client's wallet
    to_receivable: int  # the rest, owed by the client (never a negative wallet)
    alerts: list[str]  # alert kinds raised


class RefundRequest(BaseModel):
    payment_id: str
    refund_id: str
    amount: int  # minor units of the payment's currency
    currency: str
    reason: str
    requested_by: str  # staff id


class RefundHeld(BaseModel):
    hold_id: str


class PspRefundOutcome(BaseModel):
    succeeded: bool
    provider_ref: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None


class RefundSettle(BaseModel):
    request: RefundRequest
    hold_id: str
    outcome: PspRefundOutcome


class RefundResult(BaseModel):
    refund_id: str
    status: str  # succeeded | failed
    failure_code: str | None = None
    payment_status: str | None = None
