"""Double-entry ledger rules: account kinds and codes, balances, two-phase holds, FX conversion.

Pure: no I/O. The database service (`fxcrm.ledger.service`) applies these rules inside one
transaction with the account rows locked.

Model (after TigerBeetle): an account keeps four running totals in minor units, debits and credits,
posted and pending. A transfer moves a positive amount from its debit account to its credit account
in one currency. A pending transfer reserves the amount; posting it (in full or in part) moves the
posted amount into the posted totals and releases the rest; voiding releases it all.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from fxcrm.domain.money import CURRENCY_SCALE

# ---------------------------------------------------------------- errors


class LedgerError(Exception):
    """A refused ledger operation; nothing was written. `code` is machine-readable."""

    code = "ledger_error"


class InvalidAmount(LedgerError):
    code = "invalid_amount"


class InvalidTransfer(LedgerError):
    """A transfer that makes no sense whatever the balances (e.g. to the same account)."""

    code = "invalid_transfer"


class CurrencyMismatch(LedgerError):
    code = "currency_mismatch"


class BrandMismatch(LedgerError):
    code = "brand_mismatch"


class UnknownAccount(LedgerError):
    code = "unknown_account"


class UnknownTransfer(LedgerError):
    code = "unknown_transfer"


class InsufficientFunds(LedgerError):
    code = "insufficient_funds"


class IdempotencyConflict(LedgerError):
    """The idempotency key is already used by a transfer (or account) with different fields."""

    code = "idempotency_conflict"


class TransferNotPending(LedgerError):
    """Post or void of a transfer that is not (or no longer) pending."""

    code = "transfer_not_pending"


class PendingExpired(LedgerError):
    code = "pending_expired"


class NotReversible(LedgerError):
    """Only posted money can be reversed, and only once."""

    code = "not_reversible"


# ---------------------------------------------------------------- accounts


class NormalBalance(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


class AccountKind(StrEnum):
    CLIENT_WALLET = "client_wallet"
    CLIENT_TRADING = "client_trading"
    CLIENT_RECEIVABLE = "client_receivable"
    PSP_CLEARING = "psp_clearing"
    IB_PAYABLE = "ib_payable"
    BROKER_REVENUE = "broker_revenue"
    BROKER_EXPENSE = "broker_expense"
    FX = "fx"
    SUSPENSE = "suspense"


@dataclass(frozen=True)
class AccountRule:
    normal_balance: NormalBalance
    must_not_go_negative: bool


# What we owe clients and partners is credit-normal (a liability); what is owed to us or held at a
# PSP is debit-normal (an asset). Only client money may never go below zero: a wallet cannot be
# overdrawn. Receivables, clearing, FX, suspense and the broker's own accounts swing both ways.
ACCOUNT_RULES: dict[AccountKind, AccountRule] = {
    AccountKind.CLIENT_WALLET: AccountRule(NormalBalance.CREDIT, True),
    AccountKind.CLIENT_TRADING: AccountRule(NormalBalance.CREDIT, True),
    AccountKind.CLIENT_RECEIVABLE: AccountRule(NormalBalance.DEBIT, False),
    AccountKind.PSP_CLEARING: AccountRule(NormalBalance.DEBIT, False),
    AccountKind.IB_PAYABLE: AccountRule(NormalBalance.CREDIT, False),
    AccountKind.BROKER_REVENUE: AccountRule(NormalBalance.CREDIT, False),
    AccountKind.BROKER_EXPENSE: AccountRule(NormalBalance.DEBIT, False),
    AccountKind.FX: AccountRule(NormalBalance.DEBIT, False),
    AccountKind.SUSPENSE: AccountRule(NormalBalance.DEBIT, False),
}


def check_currency(currency: str) -> str:
    code = currency.upper()
    if code not in CURRENCY_SCALE:
        raise CurrencyMismatch(f"unsupported currency {currency!r}")
    return code


# Account codes: unique within a brand, readable in statements and logs.
def client_wallet_code(trader_id: str, currency: str) -> str:
    return f"client:{trader_id}:wallet:{check_currency(currency)}"


def client_trading_code(trader_id: str, server_id: str, login: int | str) -> str:
    return f"client:{trader_id}:trading:{server_id}:{login}"


def client_receivable_code(trader_id: str, currency: str) -> str:
    return f"client:{trader_id}:receivable:{check_currency(currency)}"


def psp_clearing_code(psp: str, currency: str) -> str:
    return f"psp:{psp}:clearing:{check_currency(currency)}"


def ib_payable_code(partner_id: str, currency: str) -> str:
    return f"ib:{partner_id}:payable:{check_currency(currency)}"


def broker_revenue_code(currency: str) -> str:
    return f"broker:revenue:{check_currency(currency)}"


def broker_expense_code(currency: str) -> str:
    return f"broker:expense:{check_currency(currency)}"


def fx_code(currency: str) -> str:
    return f"fx:{check_currency(currency)}"


def suspense_code(currency: str) -> str:
    return f"suspense:{check_currency(currency)}"


# ---------------------------------------------------------------- transfers


class TransferKind(StrEnum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    TRANSFER = "transfer"
    FX = "fx"
    FEE = "fee"
    COMMISSION = "commission"
    CHARGEBACK = "chargeback"
    CORRECTION = "correction"
    REVERSAL = "reversal"
    TRADING_PNL = "trading_pnl"  # realized profit, commission and swap of closed deals
    PLATFORM_OPERATION = "platform_operation"  # a dealer's balance operation outside fxcrm


class TransferPhase(StrEnum):
    """How a transfer row acts on balances (TigerBeetle's flags)."""

    SINGLE = "single"  # posted at once
    PENDING = "pending"  # reserves; resolved later by a POST or VOID row
    POST = "post"  # posts (part of) a pending transfer
    VOID = "void"  # releases a pending transfer


class TransferState(StrEnum):
    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"


@dataclass(frozen=True)
class Balances:
    """Running totals of one account, in minor units. All four are never negative."""

    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0

    def posted(self, normal: NormalBalance) -> int:
        """The posted balance on the account's normal side (positive = the usual direction)."""
        if normal is NormalBalance.DEBIT:
            return self.debits_posted - self.credits_posted
        return self.credits_posted - self.debits_posted

    def available(self, normal: NormalBalance) -> int:
        """Posted balance less pending amounts that would reduce it; pending increases don't
        count until posted (a withdrawal hold blocks funds, an unconfirmed deposit gives none)."""
        if normal is NormalBalance.DEBIT:
            return self.posted(normal) - self.credits_pending
        return self.posted(normal) - self.debits_pending


@dataclass(frozen=True)
class AccountState:
    normal_balance: NormalBalance
    must_not_go_negative: bool
    balances: Balances


def check_amount(amount: int) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidAmount("amounts are integers in minor units")
    if amount <= 0:
        raise InvalidAmount(f"amount must be positive, got {amount}")
    return amount


def debit(balances: Balances, amount: int, phase: TransferPhase) -> Balances:
    """The debit side of a SINGLE or PENDING transfer."""
    if phase is TransferPhase.PENDING:
        return replace(balances, debits_pending=balances.debits_pending + amount)
    return replace(balances, debits_posted=balances.debits_posted + amount)


def credit(balances: Balances, amount: int, phase: TransferPhase) -> Balances:
    if phase is TransferPhase.PENDING:
        return replace(balances, credits_pending=balances.credits_pending + amount)
    return replace(balances, credits_posted=balances.credits_posted + amount)


def resolve_debit(balances: Balances, pending: int, posted: int) -> Balances:
    """Release a pending debit of `pending` and post `posted` of it (0 for a void)."""
    return replace(
        balances,
        debits_pending=balances.debits_pending - pending,
        debits_posted=balances.debits_posted + posted,
    )


def resolve_credit(balances: Balances, pending: int, posted: int) -> Balances:
    return replace(
        balances,
        credits_pending=balances.credits_pending - pending,
        credits_posted=balances.credits_posted + posted,
    )


def check_not_negative(code: str, account: AccountState, after: Balances) -> None:
    """Refuse a change that leaves a protected account's available balance below zero."""
    if account.must_not_go_negative and after.available(account.normal_balance) < 0:
        have = account.balances.available(account.normal_balance)
        raise InsufficientFunds(f"account {code} has {have} available (minor units)")


def check_post_amount(pending_amount: int, post_amount: int | None) -> int:
    """A pending transfer posts in full (None) or in part, never more than was reserved."""
    if post_amount is None:
        return pending_amount
    check_amount(post_amount)
    if post_amount > pending_amount:
        raise InvalidAmount(f"cannot post {post_amount}: only {pending_amount} is pending")
    return post_amount


# ---------------------------------------------------------------- FX conversion


@dataclass(frozen=True)
class FxQuote:
    """A conversion of `source_amount` at the mid `rate` (target per source unit), less a spread.

    gross = source * rate, rounded half-even to the target scale (what the broker's FX position
    receives); net = source * rate * (1 - spread), rounded the same way (what the client gets);
    spread_amount = gross - net exactly, so the client's amount plus the broker's revenue always add
    up to the gross leg: nothing is lost to rounding beyond the one rounding of gross.
    """

    source_currency: str
    target_currency: str
    rate: Decimal
    spread: Decimal
    source_amount: int
    gross_amount: int
    net_amount: int
    spread_amount: int

    def as_record(self) -> dict[str, str | int]:
        return {
            "source_currency": self.source_currency,
            "target_currency": self.target_currency,
            "rate": str(self.rate),
            "spread": str(self.spread),
            "source_amount": self.source_amount,
            "gross_amount": self.gross_amount,
            "net_amount": self.net_amount,
            "spread_amount": self.spread_amount,
        }


def _to_target_minor(value: Decimal, source_scale: int, target_scale: int) -> int:
    # value is in source minor units * rate; move to target minor units, then round once.
    exact = value.scaleb(target_scale - source_scale)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def fx_quote(
    source_amount: int, source_currency: str, target_currency: str, rate: Decimal, spread: Decimal
) -> FxQuote:
    check_amount(source_amount)
    src, dst = check_currency(source_currency), check_currency(target_currency)
    if src == dst:
        raise CurrencyMismatch("an FX conversion needs two different currencies")
    if not isinstance(rate, Decimal) or not isinstance(spread, Decimal):
        raise InvalidAmount("rate and spread must be Decimals")
    if rate <= 0:
        raise InvalidAmount(f"rate must be positive, got {rate}")
    if not Decimal(0) <= spread < Decimal(1):
        raise InvalidAmount(f"spread must be in [0, 1), got {spread}")
    s_scale, t_scale = CURRENCY_SCALE[src], CURRENCY_SCALE[dst]
    gross = _to_target_minor(Decimal(source_amount) * rate, s_scale, t_scale)
    net = _to_target_minor(Decimal(source_amount) * rate * (1 - spread), s_scale, t_scale)
    if net <= 0:
        raise InvalidAmount("the converted amount rounds to zero")
    return FxQuote(src, dst, rate, spread, source_amount, gross, net, gross - net)
