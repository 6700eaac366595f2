"""Pydantic types that cross Temporal for the withdrawal workflow: input, signals, state, activity
inputs and outputs. Amounts are integer minor units of the payment's currency."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from fxcrm.domain.payments import WithdrawalStatus

# Who may decide a withdrawal; the requester never may, whatever the role.
APPROVER_ROLES = frozenset({"finance", "admin"})


def withdrawal_workflow_id(payment_id: str) -> str:
    return f"withdrawal-{payment_id}"


class SourceAccount(BaseModel):
    account_id: str
    server_id: str
    login: int


class WithdrawalInput(BaseModel):
    payment_id: str
    trader_id: str
    brand_id: str
    currency: str
    amount: int
    source: SourceAccount | None = None  # None: the wallet
    created_at: datetime  # a platform operation of ours is looked for from here


class Decision(BaseModel):
    """A finance decision, signalled by the API with the staff principal's identity."""

    approver_id: str
    role: str
    decision: str  # approve | reject
    reason: str = ""


class CancelRequest(BaseModel):
    trader_id: str
    reason: str = "cancelled by the client"


class Refusal(BaseModel):
    at: datetime
    signal: str
    actor_id: str
    reason: str


class Approval(BaseModel):
    approver_id: str
    role: str
    at: datetime
    reason: str = ""


class WithdrawalState(BaseModel):
    payment_id: str
    trader_id: str
    status: WithdrawalStatus = WithdrawalStatus.REQUESTED
    risk_flags: list[str] = Field(default_factory=list)
    approvals_required: int = 0
    approvals: list[Approval] = Field(default_factory=list)
    awaiting_since: datetime | None = None
    escalated: bool = False
    ended_at: datetime | None = None
    refunded: int = 0  # refunded to the client's cards
    payout_amount: int = 0  # by the chosen method
    payout_ref: str | None = None
    payout_status: str | None = None
    reason: str | None = None
    failure_code: str | None = None
    refusals: list[Refusal] = Field(default_factory=list)


# ---- activity inputs and outputs


class PaymentRef(BaseModel):
    payment_id: str


class FundsCheck(BaseModel):
    ok: bool
    reason: str | None = None


class HoldResult(BaseModel):
    risk_flags: list[str]
    approvals_required: int
    escalation_hours: int
    expiry_hours: int


class StatusChange(BaseModel):
    payment_id: str
    status: WithdrawalStatus
    reason: str | None = None
    failure_code: str | None = None
    actor_id: str | None = None  # staff id; None: the system
    actor_role: str | None = None


class AuditEntry(BaseModel):
    payment_id: str
    key: str  # the audit event key: written once
    action: str
    actor_id: str | None = None
    actor_role: str | None = None
    after: dict[str, str] = Field(default_factory=dict)


class RefundOrder(BaseModel):
    payment_id: str
    deposit_id: str
    provider_ref: str
    amount: int


class PayoutPlan(BaseModel):
    refunds: list[RefundOrder]
    payout: int


class RefundOutcome(BaseModel):
    ok: bool
    refund_ref: str | None = None
    failure_code: str | None = None


class PayoutOrder(BaseModel):
    payment_id: str
    amount: int


class PayoutOutcome(BaseModel):
    provider_ref: str | None
    status: str  # processing | paid | failed | returned
    failure_code: str | None = None
    failure_message: str | None = None

    @property
    def final(self) -> bool:
        return self.status in {"paid", "failed", "returned"}


class Release(BaseModel):
    """End of the hold: post `posted` minor units (what left to the client), release the rest;
    with `to_account`, the released money goes back from the wallet to the trading mirror."""

    payment_id: str
    posted: int
    to_account: bool


class Released(BaseModel):
    returned: int  # minor units given back
