"""Money as an exact decimal amount with an ISO currency, and its integer minor-unit form."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from pydantic import BaseModel, ConfigDict, field_validator

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
        """Integer minor units; refuses amounts finer than the currency's scale."""
        quantum = Decimal(1).scaleb(-self.scale)
        if self.amount != self.amount.quantize(quantum):
            raise ValueError(
                f"{self.amount} has more than {self.scale} decimals for {self.currency}"
            )
        return int(self.amount.scaleb(self.scale))

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> Money:
        return cls(amount=minor_to_decimal(minor, currency), currency=currency)

    def rounded(self) -> Money:
        quantum = Decimal(1).scaleb(-self.scale)
        return Money(amount=self.amount.quantize(quantum, ROUND_HALF_EVEN), currency=self.currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
