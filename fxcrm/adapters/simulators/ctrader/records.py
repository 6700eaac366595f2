"""What the simulated cTrader server keeps: traders, balance history, positions, closed deals."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


class CTraderError(Exception):
    """An error answer: HTTP status, `errorCode` and `description` in a JSON body.

    The real body format is not public [verify]; fxcrm's client reads errorCode words only.
    """

    def __init__(self, status: int, code: str, description: str = "") -> None:
        super().__init__(f"{status} {code} {description}")
        self.status = status
        self.code = code
        self.description = description or code


@dataclass
class SimTrader:
    login: int
    group: str
    leverage_in_cents: int
    access_rights: str
    account_type: str
    currency: str
    broker_name: str
    hashed_password: str
    margin_calculation: str
    registration_ms: int
    last_update_ms: int
    balance: Decimal = Decimal(0)
    bonus: Decimal = Decimal(0)  # non-withdrawable bonus
    name: str = ""
    last_name: str = ""
    description: str = ""
    swap_free: bool = False
    contact: dict[str, Any] = field(default_factory=dict)


@dataclass
class SimBalanceChange:
    id: int
    login: int
    type: str
    delta: Decimal  # signed, deposit currency
    balance: Decimal  # balance (or bonus, for bonus types) after the change
    time_ms: int
    external_id: str = ""
    comment: str = ""
    external_note: str = ""
    source: str = ""


@dataclass
class SimOpenPosition:
    position_id: int
    login: int
    symbol: str
    direction: str  # BUY | SELL
    volume: Decimal  # units of the base asset
    entry_price: Decimal
    open_ms: int
    contract_size: Decimal
    current_price: Decimal
    commission: Decimal = Decimal(0)
    swap: Decimal = Decimal(0)


@dataclass
class SimClosedRow:
    """One closing deal: a partial close repeats the position id with a new deal id."""

    deal_id: int
    login: int
    position_id: int
    open_ms: int
    close_ms: int
    entry_price: Decimal
    close_price: Decimal
    direction: str  # the position's direction
    volume: Decimal  # closed units
    symbol: str
    commission: Decimal
    swap: Decimal
    pnl: Decimal


def to_plain(record: Any) -> dict[str, Any]:
    return dataclasses.asdict(record)


def from_plain(cls: type[Any], data: dict[str, Any]) -> Any:
    """Rebuild a record from JSON, turning Decimal fields back from strings."""
    values = {}
    for item in dataclasses.fields(cls):
        if item.name in data:
            value = data[item.name]
            values[item.name] = Decimal(value) if item.type == "Decimal" else value
    return cls(**values)
