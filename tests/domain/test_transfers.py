"""Pure transfer rules and the rate table: endpoints, KYC level, legs, inverses and crosses."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fxcrm.domain.fx_rates import DEFAULT_SPREAD, StaticRateSource, UnsupportedPair
from fxcrm.domain.payments import KycLevel, PaymentError, PaymentRules
from fxcrm.domain.transfers import (
    Endpoint,
    EndpointKind,
    Role,
    check_endpoints,
    quote,
    required_kyc_level,
    transfer_legs,
)

WALLET_USD = Endpoint(EndpointKind.WALLET, "USD")
WALLET_EUR = Endpoint(EndpointKind.WALLET, "EUR")
ACCOUNT = Endpoint(EndpointKind.ACCOUNT, "USD", "acc-1")


def test_same_source_and_target_is_refused() -> None:
    for same in (WALLET_USD, ACCOUNT):
        with pytest.raises(PaymentError) as refused:
            check_endpoints(same, same)
        assert refused.value.code == "same_source_and_target"
    check_endpoints(WALLET_USD, WALLET_EUR)
    check_endpoints(WALLET_USD, ACCOUNT)
    check_endpoints(ACCOUNT, Endpoint(EndpointKind.ACCOUNT, "USD", "acc-2"))


def test_money_out_of_an_account_needs_the_stricter_level() -> None:
    rules = PaymentRules(deposit_kyc_level=KycLevel.VERIFIED, withdrawal_kyc_level=KycLevel.ACTIVE)
    assert required_kyc_level(rules, WALLET_USD) == KycLevel.VERIFIED
    assert required_kyc_level(rules, ACCOUNT) == KycLevel.ACTIVE
    lenient = PaymentRules(
        deposit_kyc_level=KycLevel.VERIFIED, withdrawal_kyc_level=KycLevel.REGISTERED
    )
    assert required_kyc_level(lenient, ACCOUNT) == KycLevel.VERIFIED


def test_legs_same_currency_and_across() -> None:
    assert [(leg.debit, leg.credit, leg.amount) for leg in transfer_legs(500, "USD", None)] == [
        (Role.SOURCE, Role.TARGET, 500)
    ]
    fx = quote(100_000, "USD", "EUR", Decimal("0.9"), Decimal("0.01"))
    legs = transfer_legs(100_000, "USD", fx)
    assert [(leg.name, leg.currency, leg.amount) for leg in legs] == [
        ("sell", "USD", 100_000),
        ("buy", "EUR", 89_100),
        ("spread", "EUR", 900),
    ]
    with pytest.raises(ValueError):
        transfer_legs(1, "USD", fx)


def test_an_amount_that_converts_to_nothing_is_refused() -> None:
    with pytest.raises(PaymentError) as refused:
        quote(1, "USD", "EUR", Decimal("0.001"), Decimal(0))
    assert refused.value.code == "amount_too_small"


def test_rate_table_direct_inverse_and_cross() -> None:
    rates = StaticRateSource({("EUR", "USD"): Decimal("1.25"), ("USD", "JPY"): Decimal("150")})
    assert rates.price("EUR", "USD").rate == Decimal("1.25")
    assert rates.price("USD", "EUR").rate == Decimal("0.8")
    assert rates.price("EUR", "JPY").rate == Decimal("187.5")  # through USD
    assert rates.price("USD", "EUR").spread == DEFAULT_SPREAD
    with pytest.raises(UnsupportedPair):
        rates.price("EUR", "GBP")
    with pytest.raises(UnsupportedPair):
        rates.price("USD", "USD")
