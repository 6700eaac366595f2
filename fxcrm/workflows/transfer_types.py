"""Pydantic types that cross Temporal for the transfer workflow: input, plan, settlement, state."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field


def transfer_workflow_id(payment_id: str) -> str:
    return f"transfer-{payment_id}"


class TransferStage(StrEnum):
    PENDING = "pending"
    HOLDING = "holding"  # ledger legs reserved (pending)
    WITHDRAWING = "withdrawing"  # platform debit of the source trading account
    DEPOSITING = "depositing"  # platform credit of the target trading account
    COMPENSATING = "compensating"  # target refused: crediting the source back
    COMPLETED = "completed"
    FAILED = "failed"


class TransferInput(BaseModel):
    payment_id: str
    trader_id: str
    brand_id: str


class PaymentRef(BaseModel):
    payment_id: str


class PlatformLeg(BaseModel):
    """One balance operation on a trading account, in the account's currency."""

    account_id: str
    server_id: str
    login: int
    amount: Decimal
    ref: str  # from platform_ref(): the operation's identity on the platform


class TransferPlan(BaseModel):
    """What the hold activity reserved and what the platforms must do next."""

    payment_id: str
    since: datetime  # the payment's creation: platform look-ups for earlier attempts start here
    withdraw: PlatformLeg | None = None  # debit of the source trading account
    deposit: PlatformLeg | None = None  # credit of the target trading account
    refund: PlatformLeg | None = None  # credit back to the source, if the target refuses


Outcome = Literal["completed", "failed", "stranded"]


class SettleInput(BaseModel):
    """completed: post the held legs; failed: void them (nothing moved, or moved back);
    stranded: the source was debited on its platform and could not be credited back: void the
    legs, book the source's loss to suspense and alert finance."""

    payment_id: str
    outcome: Outcome
    failure_code: str | None = None
    failure_reason: str | None = None
    tickets: dict[str, str] = Field(default_factory=dict)  # platform tickets by step


class StageChange(BaseModel):
    at: datetime
    stage: TransferStage
    note: str


class TransferState(BaseModel):
    payment_id: str
    stage: TransferStage = TransferStage.PENDING
    failure_code: str | None = None
    failure_reason: str | None = None
    tickets: dict[str, str] = Field(default_factory=dict)
    history: list[StageChange] = Field(default_factory=list)


class TransferResult(BaseModel):
    payment_id: str
    status: str  # fxcrm.domain.payments.TransferStatus
    failure_code: str | None = None
