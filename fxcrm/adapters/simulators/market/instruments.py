"""What the simulated market trades: FX, metals, indices and crypto, with their trading conditions.

Figures are plausible retail-broker values, not quotes: a start price, a typical spread, a daily
volatility for the random walk, swaps in USD per lot per night, commission in USD per lot per side
(some symbols are commission-free with a wider spread) and a margin rate (1:500 on FX is 0.002).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

CENT = Decimal("0.01")

InstrumentKind = Literal["fx", "metal", "index", "crypto"]


@dataclass(frozen=True)
class Instrument:
    symbol: str
    kind: InstrumentKind
    base: str
    quote: str  # profit currency
    digits: int
    contract_size: Decimal
    start_price: Decimal
    spread_points: int  # typical spread, in 10^-digits
    daily_volatility: float  # standard deviation of one day's log return
    swap_long: Decimal  # USD per lot per night (negative: charged)
    swap_short: Decimal
    commission_per_lot: Decimal  # USD per lot per side, charged (a positive figure)
    margin_rate: Decimal  # initial margin = notional * max(margin_rate, 1 / leverage)

    @property
    def point(self) -> Decimal:
        return Decimal(1).scaleb(-self.digits)

    @property
    def trades_on_weekends(self) -> bool:
        return self.kind == "crypto"


def _fx(
    symbol: str,
    price: str,
    spread: int,
    vol: float,
    swap_long: str,
    swap_short: str,
    commission: str = "3.5",
    digits: int = 5,
) -> Instrument:
    return Instrument(
        symbol=symbol,
        kind="fx",
        base=symbol[:3],
        quote=symbol[3:],
        digits=digits,
        contract_size=Decimal(100_000),
        start_price=Decimal(price),
        spread_points=spread,
        daily_volatility=vol,
        swap_long=Decimal(swap_long),
        swap_short=Decimal(swap_short),
        commission_per_lot=Decimal(commission),
        margin_rate=Decimal("0.002"),
    )


DEFAULT_INSTRUMENTS: tuple[Instrument, ...] = (
    _fx("EURUSD", "1.08500", 8, 0.005, "-7.2", "2.1"),
    _fx("GBPUSD", "1.27000", 10, 0.006, "-4.8", "0.9"),
    _fx("USDJPY", "150.000", 9, 0.006, "11.5", "-24.0", digits=3),
    _fx("AUDUSD", "0.66000", 9, 0.007, "-3.1", "-0.6"),
    _fx("USDCHF", "0.88000", 12, 0.005, "6.8", "-14.2"),
    _fx("USDCAD", "1.36000", 14, 0.004, "-1.9", "-3.6"),
    # Commission-free with a wider spread, as on a "standard" account.
    _fx("EURGBP", "0.85500", 20, 0.004, "-6.5", "1.2", commission="0"),
    _fx("EURJPY", "162.500", 22, 0.006, "6.0", "-19.0", commission="0", digits=3),
    Instrument(
        symbol="XAUUSD",
        kind="metal",
        base="XAU",
        quote="USD",
        digits=2,
        contract_size=Decimal(100),
        start_price=Decimal("2300.00"),
        spread_points=25,
        daily_volatility=0.010,
        swap_long=Decimal("-32.0"),
        swap_short=Decimal("14.0"),
        commission_per_lot=Decimal("3.5"),
        margin_rate=Decimal("0.005"),
    ),
    Instrument(
        symbol="XAGUSD",
        kind="metal",
        base="XAG",
        quote="USD",
        digits=3,
        contract_size=Decimal(5000),
        start_price=Decimal("27.000"),
        spread_points=30,
        daily_volatility=0.018,
        swap_long=Decimal("-18.0"),
        swap_short=Decimal("5.0"),
        commission_per_lot=Decimal(0),
        margin_rate=Decimal("0.01"),
    ),
    Instrument(
        symbol="US500",
        kind="index",
        base="US500",
        quote="USD",
        digits=2,
        contract_size=Decimal(1),
        start_price=Decimal("5200.00"),
        spread_points=50,
        daily_volatility=0.010,
        swap_long=Decimal("-0.9"),
        swap_short=Decimal("0.3"),
        commission_per_lot=Decimal(0),
        margin_rate=Decimal("0.01"),
    ),
    Instrument(
        symbol="NAS100",
        kind="index",
        base="NAS100",
        quote="USD",
        digits=2,
        contract_size=Decimal(1),
        start_price=Decimal("18200.00"),
        spread_points=150,
        daily_volatility=0.013,
        swap_long=Decimal("-3.2"),
        swap_short=Decimal("1.0"),
        commission_per_lot=Decimal(0),
        margin_rate=Decimal("0.01"),
    ),
    Instrument(
        symbol="GER40",
        kind="index",
        base="GER40",
        quote="EUR",
        digits=2,
        contract_size=Decimal(1),
        start_price=Decimal("18000.00"),
        spread_points=120,
        daily_volatility=0.011,
        swap_long=Decimal("-2.5"),
        swap_short=Decimal("0.2"),
        commission_per_lot=Decimal(0),
        margin_rate=Decimal("0.01"),
    ),
    Instrument(
        symbol="BTCUSD",
        kind="crypto",
        base="BTC",
        quote="USD",
        digits=2,
        contract_size=Decimal(1),
        start_price=Decimal("65000.00"),
        spread_points=3000,
        daily_volatility=0.030,
        swap_long=Decimal("-45.0"),
        swap_short=Decimal("-45.0"),
        commission_per_lot=Decimal(0),
        margin_rate=Decimal("0.05"),
    ),
    Instrument(
        symbol="ETHUSD",
        kind="crypto",
        base="ETH",
        quote="USD",
        digits=2,
        contract_size=Decimal(1),
        start_price=Decimal("3200.00"),
        spread_points=250,
        daily_volatility=0.035,
        swap_long=Decimal("-2.5"),
        swap_short=Decimal("-2.5"),
        commission_per_lot=Decimal(0),
        margin_rate=Decimal("0.05"),
    ),
)

INSTRUMENTS: dict[str, Instrument] = {i.symbol: i for i in DEFAULT_INSTRUMENTS}


def money(value: Decimal) -> Decimal:
    """Round to cents, half up: what every fill carries."""
    return value.quantize(CENT, ROUND_HALF_UP)


class Rates:
    """Currency conversion from FX mid prices: direct pair, inverse pair, or through USD."""

    def __init__(self, instruments: Mapping[str, Instrument]) -> None:
        self._pairs: dict[tuple[str, str], str] = {
            (i.base, i.quote): i.symbol for i in instruments.values() if i.kind == "fx"
        }

    def rate(self, source: str, target: str, mids: Mapping[str, Decimal]) -> Decimal:
        """How many `target` one `source` is worth."""
        if source == target:
            return Decimal(1)
        direct = self._pairs.get((source, target))
        if direct is not None and direct in mids:
            return mids[direct]
        inverse = self._pairs.get((target, source))
        if inverse is not None and inverse in mids:
            return 1 / mids[inverse]
        if "USD" not in (source, target):
            return self.rate(source, "USD", mids) * self.rate("USD", target, mids)
        raise KeyError(f"no price to convert {source} to {target}")

    def convert(
        self, amount: Decimal, source: str, target: str, mids: Mapping[str, Decimal]
    ) -> Decimal:
        if source == target:
            return amount
        return amount * self.rate(source, target, mids)


def position_profit(
    instrument: Instrument,
    side: str,
    lots: Decimal,
    open_price: Decimal,
    close_price: Decimal,
    currency: str,
    mids: Mapping[str, Decimal],
    rates: Rates | None = None,
) -> Decimal:
    """Realized profit in the account currency, rounded to cents (the quote currency converted at
    the mid prices of the moment: USDJPY's yen become dollars at USDJPY itself)."""
    direction = 1 if side == "buy" else -1
    in_quote = (close_price - open_price) * lots * instrument.contract_size * direction
    converter = rates or Rates(INSTRUMENTS)
    return money(converter.convert(in_quote, instrument.quote, currency, mids))
