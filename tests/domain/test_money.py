"""Money never takes floats and converts to minor units exactly."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fxcrm.domain.money import Money


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
