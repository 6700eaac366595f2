"""Money as text: plain decimal strings wherever an amount leaves fxcrm (API, audit, CSV).

`str(Decimal)` switches to exponent notation for values read back normalized ("1E+3" for 1000)
or with many decimals ("5E-8" for 5 satoshi, "0E-8" for a quantized zero): valid Decimal
syntax, but not what a dealer, a spreadsheet or a client's parser expects.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import PlainSerializer


def amount_text(value: Decimal | int) -> str:
    """ "1000", "0.00000005", "1000.00", "-12.5": every digit kept, no exponent, no "-0"."""
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"{amount} is not an amount")
    if amount.is_zero():
        amount = abs(amount)  # "-0" and "-0.00" read as a debit of nothing
    return format(amount, "f")


# A Decimal in a response model: stays a Decimal in Python, becomes plain text in JSON.
AmountText = Annotated[Decimal, PlainSerializer(amount_text, return_type=str, when_used="json")]
