"""Where conversion rates come from: a small interface and a configured table.

A transfer across currencies is quoted once, when the trader asks, and the quote (mid rate, spread,
amounts) is recorded on the payment; the workflow converts at that recorded rate, never at a later
one. `make dev`, the tests and a broker without a feed use `DEFAULT_RATES`. Production plugs in a
price feed by implementing `RateSource` (e.g. an adapter that keeps the last tick of each pair) and
setting it as `app.state.fx_rates` on the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

# Mid rates: units of the second currency per unit of the first. Inverses and crosses via USD are
# derived, so one row per currency is enough.
DEFAULT_RATES: dict[tuple[str, str], Decimal] = {
    ("EUR", "USD"): Decimal("1.0850"),
    ("GBP", "USD"): Decimal("1.2700"),
    ("USD", "CHF"): Decimal("0.8800"),
    ("AUD", "USD"): Decimal("0.6600"),
    ("USD", "CAD"): Decimal("1.3600"),
    ("USD", "JPY"): Decimal("150.00"),
    ("USDT", "USD"): Decimal("1.0000"),
    ("BTC", "USD"): Decimal("60000"),
}
# What the broker keeps of a converted amount (0.5%): booked as broker revenue in the target currency.
DEFAULT_SPREAD = Decimal("0.005")
# Derived rates (inverses, crosses) keep this many significant digits.
RATE_DIGITS = 10
PIVOT = "USD"


class UnsupportedPair(ValueError):
    """No rate for the pair: the API answers 422."""


@dataclass(frozen=True)
class FxPrice:
    source_currency: str
    target_currency: str
    rate: Decimal  # mid: target units per source unit
    spread: Decimal  # fraction of the converted amount the broker keeps
    source: str  # where the rate came from, recorded with the quote


class RateSource(Protocol):
    def price(self, source_currency: str, target_currency: str) -> FxPrice: ...


def _significant(value: Decimal) -> Decimal:
    digits = RATE_DIGITS - value.adjusted() - 1
    return value.quantize(Decimal(1).scaleb(-digits)).normalize()


class StaticRateSource:
    """A fixed table of mid rates and one spread (dev, tests, brokers without a feed)."""

    def __init__(
        self,
        rates: dict[tuple[str, str], Decimal] | None = None,
        spread: Decimal = DEFAULT_SPREAD,
        name: str = "static-table",
    ) -> None:
        self._rates = dict(DEFAULT_RATES if rates is None else rates)
        self._spread = spread
        self._name = name

    def _mid(self, src: str, dst: str) -> Decimal | None:
        if (src, dst) in self._rates:
            return self._rates[(src, dst)]
        if (dst, src) in self._rates:
            return _significant(1 / self._rates[(dst, src)])
        return None

    def price(self, source_currency: str, target_currency: str) -> FxPrice:
        src, dst = source_currency.upper(), target_currency.upper()
        if src == dst:
            raise UnsupportedPair("a conversion needs two different currencies")
        rate = self._mid(src, dst)
        if rate is None and PIVOT not in (src, dst):
            to_pivot, from_pivot = self._mid(src, PIVOT), self._mid(PIVOT, dst)
            if to_pivot is not None and from_pivot is not None:
                rate = _significant(to_pivot * from_pivot)
        if rate is None:
            raise UnsupportedPair(f"no conversion rate for {src}/{dst}")
        return FxPrice(src, dst, rate, self._spread, self._name)


DEFAULT_SOURCE = StaticRateSource()
