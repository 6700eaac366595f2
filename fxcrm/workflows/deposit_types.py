"""What crosses Temporal for DepositWorkflow: its input, activity inputs and outputs, the queried
state. Amounts are decimal strings or Decimals, never floats; no card number ever appears here (the
instrument stays encrypted on the payment row and only the PSP activity reads it)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from fxcrm.adapters.psp.base import PaymentStatus

WORKFLOW_NAME = "DepositWorkflow"
SIGNAL_PSP_EVENT = "psp_event"  # generic: the withdrawal workflow takes the same signal
QUERY_STATE = "state"


def deposit_workflow_id(payment_id: str) -> str:
    return f"deposit-{payment_id}"


class DepositInput(BaseModel):
    payment_id: str
    trader_id: str
    brand_id: str
    method: str
    to_account: bool  # True: a trading account is the target; False: the wallet
    expiry: timedelta  # PaymentRules.expiry_for(method), fixed when the payment was asked for


class PaymentRef(BaseModel):
    payment_id: str


class PspPaymentOut(BaseModel):
    """The PSP's authoritative view of the payment (what create_payment / get_payment said)."""

    status: PaymentStatus
    provider_ref: str | None = None
    amount_received: Decimal | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    recorded_status: str  # the payment row's status after the activity (created|pending|failed)


class CreditInput(BaseModel):
    payment_id: str
    amount_received: Decimal | None = None  # what the PSP says arrived; None: the amount asked


class CreditOut(BaseModel):
    status: str  # credited (an account follows) or completed (wallet target)
    credited: Decimal
    is_ftd: bool
    # A trading-account target: where the platform credit goes, and from when to look for it.
    server_id: str | None = None
    login: int | None = None
    since: datetime | None = None


class CompleteInput(BaseModel):
    payment_id: str
    platform_ticket: str


class CreditFailedInput(BaseModel):
    payment_id: str
    reason: str


class FinishInput(BaseModel):
    payment_id: str
    status: str  # failed | expired
    failure_code: str
    reason: str


class StatusOut(BaseModel):
    status: str


class DepositState(BaseModel):
    payment_id: str
    status: str
    psp_status: str | None = None
    provider_ref: str | None = None
    failure_code: str | None = None
    events_seen: int = 0
    polls: int = 0
    history: list[dict[str, Any]] = Field(default_factory=list)


class DepositResult(BaseModel):
    payment_id: str
    status: str
    failure_code: str | None = None
