"""The one interface fxcrm uses for every payment service provider (the simulator, Stripe, ...).

Rules every implementation keeps (DESIGN.md "Exactly once", COMPLIANCE.md §4.1):
- `create_payment` and `create_payout` are idempotent on our id: a retry after a timeout returns the
  same payment, never a second one; the same id with different data is an error (code
  "idempotency_conflict"), never a silent second payment.
- A webhook is a hint: verify it over the raw bytes (`verify_webhook`), store it, de-duplicate on
  (provider, event_key), order by `created_at`, then re-fetch the authoritative state with
  `get_payment` / `get_payout` before acting on it.
- Amounts are `Money` (exact decimals); providers' minor units are converted at the edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, Field

from fxcrm.domain.money import Money


class PspError(Exception):
    """A provider refused or failed a request. `retryable` says whether the same call may succeed
    later (timeouts, 5xx, 429, locks); `code` is machine-readable ("idempotency_conflict",
    "card_declined", "not_found", "unsupported", ...)."""

    def __init__(
        self,
        message: str,
        retryable: bool = False,
        code: str | None = None,
        *,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code
        self.status_code = status_code


class PaymentMethod(StrEnum):
    CARD = "card"
    CRYPTO = "crypto"
    BANK_WIRE = "bank_wire"
    LOCAL = "local"  # a local instant bank transfer or e-wallet


class PaymentStatus(StrEnum):
    CREATED = "created"  # nothing asked of anyone yet (a hosted page not opened, ...)
    REQUIRES_ACTION = "requires_action"  # the client must act: 3-D Secure, send crypto, ...
    PROCESSING = "processing"  # money on its way: confirmations, a wire, a bank's answer
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"
    CHARGED_BACK = "charged_back"
    UNDERPAID = "underpaid"  # crypto or wire: less arrived than asked; finance decides


class PayoutStatus(StrEnum):
    PROCESSING = "processing"
    PAID = "paid"
    FAILED = "failed"
    RETURNED = "returned"  # paid, then sent back (bank returned it, transfer reversed)


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class CreatePayment(BaseModel):
    payment_id: str  # ours; also the Idempotency-Key
    amount: Money
    method: PaymentMethod
    customer_ref: str  # our trader id; never PII
    return_url: str | None = None  # where the 3-D Secure or hosted page sends the client back
    description: str | None = None
    # A provider token for the instrument: Stripe "pm_...", a simulator test card number, a
    # local bank code. None means a hosted page collects it.
    instrument: str | None = None
    network: str | None = None  # crypto: "TRC20", "ERC20", "bitcoin", ...


class BankInstructions(BaseModel):
    beneficiary: str
    iban: str
    bic: str
    reference: str  # the client must quote it, so finance can match the wire


class PaymentResult(BaseModel):
    provider: str
    provider_ref: str
    our_payment_id: str | None = None
    method: PaymentMethod
    status: PaymentStatus
    amount_requested: Money
    amount_received: Money | None = None  # crypto and wires may differ from what was asked
    amount_refunded: Money | None = None
    fee: Money | None = None
    redirect_url: str | None = None  # 3-D Secure or hosted page
    crypto_address: str | None = None
    crypto_network: str | None = None
    confirmations: int | None = None
    confirmations_required: int | None = None
    bank_instructions: BankInstructions | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict)


class RefundResult(BaseModel):
    provider_ref: str  # the refund's id at the provider
    payment_provider_ref: str
    our_refund_id: str
    amount: Money
    status: RefundStatus
    failure_code: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict)


class PayoutDestination(BaseModel):
    """Where a withdrawal goes; fill the fields of one kind."""

    kind: PaymentMethod  # card, crypto, bank_wire, local
    card_token: str | None = None  # card: the token of a card the client deposited with
    crypto_address: str | None = None
    crypto_network: str | None = None
    iban: str | None = None
    bic: str | None = None
    account_holder: str | None = None
    provider_account: str | None = None  # Stripe Connect "acct_..." and similar


class CreatePayout(BaseModel):
    payout_id: str  # ours; also the Idempotency-Key
    amount: Money
    destination: PayoutDestination
    customer_ref: str
    description: str | None = None


class PayoutResult(BaseModel):
    provider: str
    provider_ref: str
    our_payout_id: str | None = None
    status: PayoutStatus
    amount: Money
    fee: Money | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict)


class PspEvent(BaseModel):
    provider: str
    event_key: str  # the same for every redelivery of one event: the de-duplication key
    provider_ref: str  # the payment's (or payout's) id at the provider
    our_payment_id: str | None = None  # our payment or payout id, when the event carries it
    object_kind: str = "payment"  # "payment", "refund", "dispute", "payout"
    type: str  # the provider's own event type, e.g. "payment_intent.succeeded"
    status: PaymentStatus | None = None  # a hint; payouts and unknown events leave it None
    payout_status: PayoutStatus | None = None
    created_at: datetime  # the provider's time, UTC: order by this, not by arrival
    amount: Money | None = None


class SettlementType(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"
    CHARGEBACK = "chargeback"
    CHARGEBACK_REVERSAL = "chargeback_reversal"
    PAYOUT = "payout"  # a client withdrawal
    SETTLEMENT = "settlement"  # the provider paying its balance out to the broker's bank
    OTHER = "other"  # fees, adjustments: reconciliation shows them to finance as they are


class SettlementLine(BaseModel):
    """One booked movement on the provider's balance. gross + fee sign: gross is what moved for
    the client (negative for refunds, chargebacks, payouts), fee is what the provider kept (>= 0),
    net = gross - fee is what the broker's balance at the provider changed by."""

    provider_ref: str
    our_id: str | None = None
    type: SettlementType
    gross: Money
    fee: Money
    net: Money
    currency: str
    booked_at: datetime


class PaymentProvider(Protocol):
    provider: str

    async def create_payment(self, req: CreatePayment) -> PaymentResult:
        """Start a deposit; idempotent on `req.payment_id`. A decline is a FAILED result."""
        ...

    async def get_payment(self, provider_ref: str) -> PaymentResult:
        """The authoritative current state, straight from the provider."""
        ...

    async def refund(self, provider_ref: str, amount: Money, our_refund_id: str) -> RefundResult:
        """Refund (part of) a succeeded payment; idempotent on `our_refund_id`."""
        ...

    async def create_payout(self, req: CreatePayout) -> PayoutResult:
        """Start a withdrawal; idempotent on `req.payout_id`."""
        ...

    async def get_payout(self, provider_ref: str) -> PayoutResult: ...

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """True only if the signature over the exact raw bytes is valid (and fresh, if the
        provider signs a timestamp)."""
        ...

    def parse_webhook(self, raw_body: bytes) -> PspEvent:
        """Parse a verified webhook; ValueError on a malformed or unknown payload."""
        ...

    async def settlement_report(self, day: date) -> list[SettlementLine]:
        """Every movement the provider booked on `day` (UTC), for reconciliation."""
        ...

    async def close(self) -> None: ...
