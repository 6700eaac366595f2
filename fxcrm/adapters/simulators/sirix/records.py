"""Users, positions and money moves as the simulated server keeps them (times in UTC inside)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass
class SimUser:
    user_id: int
    group: str
    leverage: int
    currency: str
    full_name: str
    passwords: dict[str, str]  # "main", "investor"
    created: datetime
    details: dict[str, str] = field(default_factory=dict)  # UserDetails as sent
    balance: Decimal = Decimal(0)
    credit: Decimal = Decimal(0)
    is_enabled: bool = True
    disable_trading: bool = False
    tradability: str = "Tradable"
    trading_state: str = "Enabled"
    is_archived: bool = False
    margin_coefficient: Decimal = Decimal(1)
    use_account_margin: bool = True


@dataclass
class SimOpenPosition:
    position_id: int
    user_id: int
    symbol: str
    side: str  # "buy" | "sell"
    lots: Decimal
    open_rate: Decimal
    open_time: datetime
    contract_size: Decimal
    current_rate: Decimal | None = None
    commission: Decimal = Decimal(0)  # charged at entry, not yet reported in a closed row
    swap: Decimal = Decimal(0)


@dataclass
class SimClosedPosition:
    order_id: int  # the closing order: unique per closed row (a partial close makes its own row)
    position_id: int
    user_id: int
    symbol: str
    side: str  # the position's side
    lots: Decimal
    open_rate: Decimal
    close_rate: Decimal
    open_time: datetime
    close_time: datetime
    profit: Decimal
    commission: Decimal
    swap: Decimal
    close_reason: str = "client"


@dataclass
class SimTransaction:
    order_id: int
    user_id: int
    kind: str  # "Deposit" | "Withdrawal"
    sub_type: int
    amount: Decimal  # signed: withdrawals negative
    comment: str
    time: datetime


Record = SimUser | SimOpenPosition | SimClosedPosition | SimTransaction


def to_plain(record: Record) -> dict[str, Any]:
    """JSON-ready: Decimal and datetime as strings."""
    plain: dict[str, Any] = {}
    for item in dataclasses.fields(record):
        value = getattr(record, item.name)
        if isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        plain[item.name] = value
    return plain


def from_plain(cls: type[Any], data: dict[str, Any]) -> Any:
    """Reverse of `to_plain`, led by the field annotations (strings under PEP 563)."""
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        if item.name not in data:
            continue
        value = data[item.name]
        kind = str(item.type)
        if value is not None and kind.startswith("Decimal"):
            value = Decimal(value)
        elif value is not None and kind.startswith("datetime"):
            value = datetime.fromisoformat(value)
        values[item.name] = value
    return cls(**values)
