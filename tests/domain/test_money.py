"""Money never takes floats and converts to minor units exactly."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fxcrm.domain.money import AmountError, Money


def test_minor_units_per_currency() -> None:
    assert Money.of("10.25", "USD").to_minor() == 1025
    assert Money.of("150", "JPY").to_minor() == 150
    assert Money.of("0.00000001", "BTC").to_minor() == 1
    assert Money.from_minor(1025, "USD").amount == Decimal("10.25")


def test_floats_and_excess_precision_are_refused() -> None:
    with pytest.raises(ValueError):
        Money(amount=0.1, currency="USD")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Money.of("10.001", "USD").to_minor()
    with pytest.raises(ValueError):
        Money.of("1", "XYZ")


def test_huge_and_odd_amounts_are_refused_as_amount_errors() -> None:
    # Decimal arithmetic traps past 28 digits: these once raised decimal.InvalidOperation.
    for raw, code in [
        ("1e26", "amount_too_large"),
        ("92233720368547758.08", "amount_too_large"),  # 2**63 cents
        ("1" + "0" * 5000, "amount_too_large"),
        ("1e999999999", "amount_too_large"),
        ("1e-999999999", "too_many_decimals"),
        ("0.0000000000000000000000000000001", "too_many_decimals"),
    ]:
        with pytest.raises(AmountError) as refused:
            Money.of(raw, "USD").to_minor()
        assert refused.value.code == code, raw
    for raw in ("NaN", "-Infinity"):
        with pytest.raises(ValueError):
            Money.of(raw, "USD")


def test_minor_units_at_the_edges() -> None:
    assert Money.of("92233720368547758.07", "USD").to_minor() == 2**63 - 1
    assert Money.of("-92233720368547758.07", "USD").to_minor() == -(2**63 - 1)
    assert Money.of("12345678901234567.8900000000000000000000000000000", "USD").to_minor() == (
        1234567890123456789
    )
    assert Money.of("1E+2", "JPY").to_minor() == 100
    assert Money.of("0E+1000000", "USD").to_minor() == 0
    assert Money.of("-0.10", "USD").to_minor() == -10
