"""What every platform simulator offers the market engine that trades on it.

The engine (fxcrm.adapters.simulators.market) decides what traders do: open, partially close and
close positions on FX, metals, indices and crypto at plausible prices and spreads, with swaps,
commissions and stop-outs. Each simulator's state implements `SimulatedPlatform`, turning a
`SimFill` into its own records (MT5 deals, cTrader closed-position rows, Match-Trader positions,
Sirix orders, MT4 TradeRecords) and moving the account balance by profit + commission + swap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol


@dataclass(frozen=True)
class SimAccountInfo:
    login: int
    currency: str
    balance: Decimal
    leverage: int
    hedging: bool  # hedged (several positions per symbol) or netting


@dataclass(frozen=True)
class SimFill:
    """One deal: an entry into or an exit out of a position, at a price, at a time (UTC)."""

    login: int
    position_id: int
    symbol: str
    side: Literal["buy", "sell"]  # the side of this deal (an exit has the position's opposite side)
    entry: Literal["in", "out", "inout", "out_by"]
    lots: Decimal
    price: Decimal
    time: datetime
    contract_size: Decimal
    profit: Decimal = Decimal(0)  # realized, account currency, on exits
    commission: Decimal = Decimal(0)  # negative: charged
    swap: Decimal = Decimal(0)  # accumulated swap realized on exit
    reason: Literal["client", "stop_out", "sl", "tp"] = "client"


class SimulatedPlatform(Protocol):
    platform: str

    def sim_accounts(self) -> list[SimAccountInfo]:
        """Trading accounts that may trade (enabled, trading allowed)."""
        ...

    def sim_apply_fill(self, fill: SimFill) -> str:
        """Record the deal, update the position and the balance; returns the platform's deal id."""
        ...

    def sim_mark_prices(self, prices: dict[str, Decimal]) -> None:
        """Latest mid prices, so the simulator's equity, margin and floating profit move."""
        ...
