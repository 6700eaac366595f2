"""Money leaves fxcrm as plain decimal text, never in exponent notation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import BaseModel

from fxcrm.domain.ib.settlement import Carry
from fxcrm.domain.money import Money
from fxcrm.domain.money_text import AmountText, amount_text
from fxcrm.ib.reports import explain


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1000").normalize(), "1000"),  # read back from a ScaledDecimal column: "1E+3"
        (Decimal("1E+3"), "1000"),
        (Money.from_minor(5, "BTC").amount, "0.00000005"),  # str() says "5E-8"
        (Decimal(0).quantize(Decimal("0.00000001")), "0.00000000"),  # str() says "0E-8"
        (Money.from_minor(100_000, "USD").amount, "1000.00"),
        (Decimal("-12.50"), "-12.50"),
        (Decimal("-0.00"), "0.00"),
        (7, "7"),
    ],
)
def test_amount_text_is_plain(value: Decimal | int, text: str) -> None:
    assert amount_text(value) == text


def test_not_a_number_is_not_an_amount() -> None:
    for value in (Decimal("NaN"), Decimal("Infinity")):
        with pytest.raises(ValueError, match="not an amount"):
            amount_text(value)


def test_response_field_serializes_as_plain_text() -> None:
    class View(BaseModel):
        balance: AmountText
        margin_level: AmountText | None = None

    view = View(balance=Decimal("1E+3"))
    assert view.model_dump_json() == '{"balance":"1000","margin_level":null}'
    assert view.model_dump()["balance"] == Decimal(1000)  # still a Decimal in Python


def test_ib_carry_evidence_is_plain() -> None:
    carry = Carry(amount=Decimal(0).quantize(Decimal("0.00000001")))
    assert carry.as_json()["amount"] == "0.00000000"


def test_money_and_commission_explanations_read_plainly() -> None:
    assert str(Money.from_minor(5, "BTC")) == "0.00000005 BTC"
    sentence = explain("per_lot", {"lots": "0.01", "rate": "0"}, Decimal("0E-8"), "USD")
    assert sentence.endswith("= 0.00000000 USD")
