"""A client's amount: one parser refuses what cannot be money with a code, never a crash."""

from __future__ import annotations

import pytest

from fxcrm.domain.payments import PaymentError, parse_amount


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("1e26", "amount_too_large"),
        ("100000000000000000000000000000", "amount_too_large"),
        ("1e999999999", "amount_too_large"),
        ("0.001", "too_many_decimals"),
        ("1e-999999999", "too_many_decimals"),
        ("NaN", "malformed_amount"),
        ("Infinity", "malformed_amount"),
        ("ten", "malformed_amount"),
        ("0", "amount_not_positive"),
        ("-5", "amount_not_positive"),
    ],
)
def test_refused_amounts(raw: str, code: str) -> None:
    with pytest.raises(PaymentError) as refused:
        parse_amount(raw, "USD")
    assert refused.value.code == code


def test_accepted_amounts() -> None:
    assert parse_amount("10.50", "usd").to_minor() == 1050
    assert parse_amount("92233720368547758.07", "USD").to_minor() == 2**63 - 1
