"""Money as an exact decimal amount with an ISO currency, and its integer minor-unit form."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from pydantic import BaseModel, ConfigDict, field_validator

from fxcrm.domain.bounds import MAX_INT64

# Scale (decimal places) per currency: how many minor units make one major unit.
CURRENCY_SCALE: dict[str, int] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CHF": 2,
    "AUD": 2,
    "CAD": 2,
    "JPY": 0,
    "USDT": 6,
    "BTC": 8,
}


# The ledger stores minor units as signed 64-bit integers.
MAX_MINOR = MAX_INT64


class AmountError(ValueError):
    """An amount that cannot be money; `code` says why: not_finite, too_many_decimals or
    amount_too_large."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def minor_to_decimal(minor: int, currency: str) -> Decimal:
    """The decimal amount of `minor` units of `currency` (12345 USD cents: 123.45), without
    building a Money (read paths format many of them)."""
    return Decimal(minor).scaleb(-CURRENCY_SCALE[currency.upper()])


class Money(BaseModel):
    """An amount in one currency. Never a float: built from str, int or Decimal."""

    model_config = ConfigDict(frozen=True)

    amount: Decimal
    currency: str

    @field_validator("amount", mode="before")
    @classmethod
    def _no_float(cls, value: object) -> object:
        if isinstance(value, float):
            raise ValueError("money amounts must not be floats")
        return value

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        code = value.upper()
        if code not in CURRENCY_SCALE:
            raise ValueError(f"unsupported currency {value!r}")
        return code

    @classmethod
    def of(cls, amount: str | int | Decimal, currency: str) -> Money:
        try:
            return cls(amount=Decimal(amount), currency=currency)
        except InvalidOperation as exc:
            raise ValueError(f"not a decimal amount: {amount!r}") from exc

    @property
    def scale(self) -> int:
        return CURRENCY_SCALE[self.currency]

    def to_minor(self) -> int:
        """Integer minor units. Refuses (AmountError) amounts that are not finite, finer than the
        currency's scale, or beyond what the ledger stores.

        Works on the digits, not decimal arithmetic: a context rounds or traps at 28 digits, and
        "1e26" in cents already has 29.
        """
        sign, digits, exponent = self.amount.as_tuple()
        if not isinstance(exponent, int):
            raise AmountError("not_finite", f"{self.amount} is not a finite amount")
        if not any(digits):
            return 0
        shift = exponent + self.scale  # the last digit's power of ten, in minor units
        if shift < 0:
            if any(digits[shift:]):
                raise AmountError(
                    "too_many_decimals",
                    f"{self.amount} has more than {self.scale} decimals for {self.currency}",
                )
            digits, shift = digits[:shift], 0
        if len(digits) + shift > len(str(MAX_MINOR)):
            raise AmountError("amount_too_large", f"{self.amount} {self.currency} is too large")
        minor = int("".join(map(str, digits))) * 10**shift
        if minor > MAX_MINOR:
            raise AmountError("amount_too_large", f"{self.amount} {self.currency} is too large")
        return -minor if sign else minor

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> Money:
        return cls(amount=minor_to_decimal(minor, currency), currency=currency)

    def rounded(self) -> Money:
        quantum = Decimal(1).scaleb(-self.scale)
        return Money(amount=self.amount.quantize(quantum, ROUND_HALF_EVEN), currency=self.currency)

    def __str__(self) -> str:
        return f"{self.amount:f} {self.currency}"  # "0.00000005 BTC", never "5E-8 BTC"
