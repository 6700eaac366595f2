"""Pure payment rules: statuses, a brand's limits, KYC gating, amount checks, withdrawal risk flags.

No I/O: the workflows, activities and API call these, and tests check them without a database.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from pydantic import BaseModel, Field

from fxcrm.domain.money import CURRENCY_SCALE, AmountError, Money


class PaymentError(ValueError):
    """Bad payment input: the API answers 422 with `code`, workflows fail non-retryably."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class DepositStatus(StrEnum):
    CREATED = "created"  # recorded, PSP payment not yet created
    PENDING = "pending"  # at the PSP: waiting for the client (3-D Secure, crypto, wire) or the PSP
    CREDITED = "credited"  # wallet credited; platform credit under way (trading-account target)
    COMPLETED = "completed"  # final: the money is where the trader asked
    CREDIT_FAILED = "credit_failed"  # final: platform refused; money kept in the wallet, alerted
    FAILED = "failed"  # final: declined; nothing posted
    EXPIRED = "expired"  # final: never confirmed in time; nothing posted
    CHARGED_BACK = "charged_back"  # after completion: the card holder disputed it
    REFUNDED = "refunded"  # after completion: returned to the instrument


class WithdrawalStatus(StrEnum):
    REQUESTED = "requested"  # recorded, checks and hold under way
    AWAITING_APPROVAL = "awaiting_approval"  # funds held; finance decides
    APPROVED = "approved"  # enough approvals; payout under way
    PAID = "paid"  # final: PSP paid out, hold posted
    REJECTED = "rejected"  # final: refused at the checks or by finance; hold voided, funds returned
    EXPIRED = "expired"  # final: no decision in time; hold voided, funds returned
    FAILED = "failed"  # final: the PSP could not pay; hold voided, funds returned


class TransferStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"  # final: nothing moved (or moved back)


FINAL_STATUSES = frozenset(
    {
        DepositStatus.COMPLETED,
        DepositStatus.CREDIT_FAILED,
        DepositStatus.FAILED,
        DepositStatus.EXPIRED,
        DepositStatus.CHARGED_BACK,
        DepositStatus.REFUNDED,
        WithdrawalStatus.PAID,
        WithdrawalStatus.REJECTED,
        WithdrawalStatus.EXPIRED,
        WithdrawalStatus.FAILED,
        TransferStatus.COMPLETED,
        TransferStatus.FAILED,
    }
)

# The only ways out of a final status, by (payment kind, status): money a deposit put in the
# trader's hands can come back after completion (a chargeback, or a refund finance asked for).
# A refunded deposit can still be disputed, and a refund under way when a dispute is booked can
# still complete.
AFTER_FINAL: dict[tuple[str, str], frozenset[str]] = {
    ("deposit", DepositStatus.COMPLETED): frozenset(
        {DepositStatus.CHARGED_BACK, DepositStatus.REFUNDED}
    ),
    ("deposit", DepositStatus.CREDIT_FAILED): frozenset(
        {DepositStatus.CHARGED_BACK, DepositStatus.REFUNDED}
    ),
    ("deposit", DepositStatus.REFUNDED): frozenset({DepositStatus.CHARGED_BACK}),
    ("deposit", DepositStatus.CHARGED_BACK): frozenset({DepositStatus.REFUNDED}),
}


def may_leave_final(kind: str, status: str, to: str) -> bool:
    """Whether a payment of `kind` in the final `status` may still move to `to` (AFTER_FINAL)."""
    return to in AFTER_FINAL.get((kind, status), frozenset())


class KycLevel(StrEnum):
    """How far a trader is through onboarding; each level permits more."""

    REGISTERED = "registered"
    VERIFIED = "verified"  # KYC approved by the provider or staff
    ACTIVE = "active"  # onboarding finished: screened, categorized, account opened


KYC_ORDER = [KycLevel.REGISTERED, KycLevel.VERIFIED, KycLevel.ACTIVE]
KYC_APPROVED = {"GREEN", "APPROVED"}


def kyc_level(status: str, kyc_status: str) -> KycLevel:
    """A trader's level from the trader row's `status` and `kyc_status`."""
    if status == "active":
        return KycLevel.ACTIVE
    if status in {"rejected", "expired", "blocked"}:
        return KycLevel.REGISTERED
    if kyc_status.upper() in KYC_APPROVED:
        return KycLevel.VERIFIED
    return KycLevel.REGISTERED


def kyc_allows(level: KycLevel, required: KycLevel) -> bool:
    return KYC_ORDER.index(level) >= KYC_ORDER.index(required)


class PaymentRules(BaseModel):
    """A brand's payment limits, in the payment's own currency (a brand that needs per-currency
    limits lists them in `per_currency`)."""

    currencies: list[str] = Field(default_factory=lambda: ["USD", "EUR"])
    deposit_methods: list[str] = Field(
        default_factory=lambda: ["card", "crypto", "bank_wire", "local"]
    )
    withdrawal_methods: list[str] = Field(
        default_factory=lambda: ["card", "crypto", "bank_wire", "local"]
    )
    deposit_kyc_level: KycLevel = KycLevel.VERIFIED
    withdrawal_kyc_level: KycLevel = KycLevel.VERIFIED
    min_deposit: Decimal = Decimal("10")
    max_deposit: Decimal = Decimal("50000")
    daily_deposit_limit: Decimal = Decimal("100000")
    min_withdrawal: Decimal = Decimal("10")
    max_withdrawal: Decimal = Decimal("50000")
    max_pending_withdrawals: int = 2
    max_withdrawals_per_day: int = 3  # more is flagged as velocity
    # At or above this amount two different approvers are needed, neither the requester.
    four_eyes_threshold: Decimal = Decimal("5000")
    approval_escalation_hours: int = 24
    approval_expiry_hours: int = 168
    # How long a deposit may wait for the PSP's confirmation, per method.
    deposit_expiry_minutes: dict[str, int] = Field(
        default_factory=lambda: {"card": 60, "crypto": 1440, "bank_wire": 10080, "local": 120}
    )
    # A withdrawal soon after a deposit with little trading in between is flagged.
    low_activity_days: int = 30
    low_activity_lots: Decimal = Decimal("1")

    def expiry_for(self, method: str) -> timedelta:
        return timedelta(minutes=self.deposit_expiry_minutes.get(method, 60))


def parse_amount(raw: str, currency: str) -> Money:
    """A client's amount: a decimal string, positive, not finer than the currency's minor unit."""
    code = currency.upper()
    if code not in CURRENCY_SCALE:
        raise PaymentError("unsupported_currency", f"currency {currency!r} is not supported")
    try:
        value = Decimal(raw)
    except (InvalidOperation, TypeError) as exc:
        raise PaymentError("malformed_amount", f"{raw!r} is not a decimal amount") from exc
    if not value.is_finite():
        raise PaymentError("malformed_amount", f"{raw!r} is not a finite amount")
    if value <= 0:
        raise PaymentError("amount_not_positive", "the amount must be greater than zero")
    money = Money(amount=value, currency=code)
    try:
        money.to_minor()
    except AmountError as exc:
        raise PaymentError(exc.code, str(exc)) from exc
    return money


def _check_limits(
    rules: PaymentRules,
    amount: Money,
    method: str,
    methods: list[str],
    minimum: Decimal,
    maximum: Decimal,
    what: str,
) -> None:
    """What deposits and withdrawals (`what`) both check: the brand's currencies and methods, and
    the amount's bounds."""
    if amount.currency not in rules.currencies:
        raise PaymentError(
            "unsupported_currency", f"{amount.currency} is not accepted by this brand"
        )
    if method not in methods:
        raise PaymentError("unsupported_method", f"{what}s by {method!r} are not offered")
    if amount.amount < minimum:
        raise PaymentError("below_minimum", f"the minimum {what} is {minimum}")
    if amount.amount > maximum:
        raise PaymentError("above_maximum", f"the maximum {what} is {maximum}")


def check_deposit(rules: PaymentRules, amount: Money, method: str, today_total: Decimal) -> None:
    """Limits of one deposit; `today_total` is what the trader deposited (or has pending) today."""
    _check_limits(
        rules,
        amount,
        method,
        rules.deposit_methods,
        rules.min_deposit,
        rules.max_deposit,
        "deposit",
    )
    if today_total + amount.amount > rules.daily_deposit_limit:
        raise PaymentError(
            "daily_limit", f"deposits are limited to {rules.daily_deposit_limit} a day"
        )


def check_withdrawal(rules: PaymentRules, amount: Money, method: str, pending: int) -> None:
    """Limits of one withdrawal; `pending` is how many of the trader's are not final yet."""
    _check_limits(
        rules,
        amount,
        method,
        rules.withdrawal_methods,
        rules.min_withdrawal,
        rules.max_withdrawal,
        "withdrawal",
    )
    if pending >= rules.max_pending_withdrawals:
        raise PaymentError(
            "too_many_pending",
            f"{pending} withdrawals are already pending (limit {rules.max_pending_withdrawals})",
        )


def approvals_required(rules: PaymentRules, amount: Money) -> int:
    return 2 if amount.amount >= rules.four_eyes_threshold else 1


class RiskFlag(StrEnum):
    NEW_DESTINATION = "new_destination"  # a method the client never deposited from
    LOW_ACTIVITY = "low_activity"  # deposit then withdraw with little or no trading
    NAME_MISMATCH = "name_mismatch"  # the destination's holder is not the client
    VELOCITY = "velocity"  # many withdrawals in a short time
    UNDERPAID = "underpaid"  # deposits: less arrived than asked


@dataclass(frozen=True)
class WithdrawalContext:
    destination_fingerprint: str | None
    deposited_fingerprints: frozenset[str]
    last_deposit_at: datetime | None
    lots_since_last_deposit: Decimal
    holder_name: str | None
    client_name: str
    withdrawals_last_24h: int
    now: datetime


def _name_tokens(name: str) -> set[str]:
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return {t for t in "".join(c if c.isalnum() else " " for c in plain).split() if len(t) > 1}


def withdrawal_risk_flags(rules: PaymentRules, ctx: WithdrawalContext) -> list[RiskFlag]:
    """Flags finance sees in its queue; they inform the decision, they do not make it."""
    flags: list[RiskFlag] = []
    if (
        ctx.destination_fingerprint is not None
        and ctx.destination_fingerprint not in ctx.deposited_fingerprints
    ):
        flags.append(RiskFlag.NEW_DESTINATION)
    if (
        ctx.last_deposit_at is not None
        and ctx.now - ctx.last_deposit_at <= timedelta(days=rules.low_activity_days)
        and ctx.lots_since_last_deposit < rules.low_activity_lots
    ):
        flags.append(RiskFlag.LOW_ACTIVITY)
    if ctx.holder_name:
        holder, client = _name_tokens(ctx.holder_name), _name_tokens(ctx.client_name)
        # Same person if the holder's names are the client's (initials and order aside).
        if not holder or len(holder & client) < min(2, len(holder)):
            flags.append(RiskFlag.NAME_MISMATCH)
    if ctx.withdrawals_last_24h >= rules.max_withdrawals_per_day:
        flags.append(RiskFlag.VELOCITY)
    return flags


# The prefixes of fxcrm's references on platform balance operations (activities.money.platform_ref):
# deposit, withdrawal and its re-credit, transfer out, in and back. The payment workflows post
# these operations to the ledger mirror themselves; the platform sync posts only the others (a
# dealer's, made on the platform).
FXCRM_REF_PREFIXES = frozenset({"dep", "wd", "wr", "to", "ti", "tr"})
# Match-Trader books a bonus as credit with this in front of the reference.
_BONUS_PREFIX = "bonus:"


def made_by_fxcrm(comment: str) -> bool:
    """Whether a platform balance operation carries one of fxcrm's references."""
    prefix, colon, rest = comment.removeprefix(_BONUS_PREFIX).partition(":")
    return bool(colon and rest) and prefix in FXCRM_REF_PREFIXES
