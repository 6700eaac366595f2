"""Pure rules of internal transfers: which moves make sense, the KYC level they need, and the
ledger legs that carry them (with the FX legs when the currencies differ).

A transfer moves a trader's own money between their wallets (one per currency) and their trading
accounts; nothing enters or leaves the broker. The legs mirror fxcrm.ledger.convert_currency, but
are written as one linked group of PENDING transfers, so the workflow can hold the money first and
post or void it all once the platforms have answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from fxcrm.domain import ledger as ledger_rules
from fxcrm.domain.ledger import FxQuote
from fxcrm.domain.payments import KYC_ORDER, KycLevel, PaymentError, PaymentRules


class EndpointKind(StrEnum):
    WALLET = "wallet"
    ACCOUNT = "account"  # a trading account on a platform


@dataclass(frozen=True)
class Endpoint:
    kind: EndpointKind
    currency: str
    account_id: str | None = None  # trading_accounts.id for an account

    def same_as(self, other: Endpoint) -> bool:
        if self.kind is EndpointKind.ACCOUNT:
            return other.kind is EndpointKind.ACCOUNT and self.account_id == other.account_id
        return other.kind is EndpointKind.WALLET and self.currency == other.currency


def check_endpoints(source: Endpoint, target: Endpoint) -> None:
    if source.same_as(target):
        raise PaymentError("same_source_and_target", "the source and the target are the same")


def required_kyc_level(rules: PaymentRules, source: Endpoint) -> KycLevel:
    """Funding a trading account or converting in the wallet needs the level that permits
    deposits (the money becomes tradable, as a deposit would). Money out of a trading account also
    needs the withdrawal level: in the wallet it is one step from leaving the broker."""
    levels = [rules.deposit_kyc_level]
    if source.kind is EndpointKind.ACCOUNT:
        levels.append(rules.withdrawal_kyc_level)
    return max(levels, key=KYC_ORDER.index)


def quote(
    amount: int, source_currency: str, target_currency: str, rate: Decimal, spread: Decimal
) -> FxQuote:
    """The conversion at a recorded rate; an amount that converts to nothing is refused."""
    try:
        return ledger_rules.fx_quote(amount, source_currency, target_currency, rate, spread)
    except ledger_rules.InvalidAmount as exc:
        raise PaymentError("amount_too_small", str(exc)) from exc


class Role(StrEnum):
    """Which ledger account a leg touches; the activity maps roles to account ids."""

    SOURCE = "source"  # the source wallet or trading-account mirror
    TARGET = "target"
    FX_SOURCE = "fx_source"  # fx:{source currency}
    FX_TARGET = "fx_target"
    REVENUE = "revenue"  # broker:revenue:{target currency}: the spread


@dataclass(frozen=True)
class Leg:
    name: str  # part of the leg's idempotency key
    debit: Role
    credit: Role
    amount: int  # minor units of `currency`
    currency: str


def transfer_legs(amount: int, currency: str, fx: FxQuote | None) -> list[Leg]:
    """The ledger legs of a transfer of `amount` (minor units of `currency`)."""
    if fx is None:
        return [Leg("move", Role.SOURCE, Role.TARGET, amount, currency)]
    if fx.source_amount != amount or fx.source_currency != currency:
        raise ValueError("the quote is for another amount")
    legs = [
        Leg("sell", Role.SOURCE, Role.FX_SOURCE, amount, currency),
        Leg("buy", Role.FX_TARGET, Role.TARGET, fx.net_amount, fx.target_currency),
    ]
    if fx.spread_amount > 0:
        legs.append(
            Leg("spread", Role.FX_TARGET, Role.REVENUE, fx.spread_amount, fx.target_currency)
        )
    return legs
