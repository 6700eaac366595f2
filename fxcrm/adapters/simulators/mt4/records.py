"""The Manager API records the bridge serves: UserRecord and TradeRecord (field names kept)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# UserRecord text fields a client may set (char arrays on the server: lengths enforced).
USER_TEXT_FIELDS: dict[str, int] = {
    "name": 127,
    "country": 31,
    "city": 31,
    "state": 31,
    "zipcode": 15,
    "address": 95,
    "phone": 31,
    "email": 47,
    "comment": 63,
    "id": 31,
    "status": 15,
}
USER_FLAG_FIELDS = ("enable", "enable_change_password", "enable_read_only")


@dataclass
class UserRec:
    login: int
    group: str
    leverage: int
    regdate: int  # server time
    password: str = ""  # kept, never served
    password_investor: str = ""
    enable: int = 1
    enable_change_password: int = 1
    enable_read_only: int = 0
    name: str = ""
    country: str = ""
    city: str = ""
    state: str = ""
    zipcode: str = ""
    address: str = ""
    phone: str = ""
    email: str = ""
    comment: str = ""
    id: str = ""
    status: str = ""
    lastdate: int = 0
    agent_account: int = 0
    balance: Decimal = Decimal(0)
    prevbalance: Decimal = Decimal(0)
    credit: Decimal = Decimal(0)

    def wire(self) -> dict[str, Any]:
        record = to_wire(dataclasses.asdict(self))
        # The Manager API never hands passwords back.
        record["password"] = ""
        record.pop("password_investor")
        return record


@dataclass
class TradeRec:
    order: int
    login: int
    cmd: int
    open_time: int  # server time
    symbol: str = ""
    digits: int = 0
    volume: int = 0  # 1/100 lot
    open_price: Decimal = Decimal(0)
    sl: Decimal = Decimal(0)
    tp: Decimal = Decimal(0)
    close_time: int = 0  # 0 while open
    close_price: Decimal = Decimal(0)  # the current price while open
    commission: Decimal = Decimal(0)
    commission_agent: Decimal = Decimal(0)
    storage: Decimal = Decimal(0)
    profit: Decimal = Decimal(0)
    taxes: Decimal = Decimal(0)
    magic: int = 0
    comment: str = ""
    # Simulator bookkeeping, not on the wire.
    contract_size: Decimal = Decimal(100_000)
    position_id: int = 0  # the market engine's position id
    idempotency_key: str = ""

    @property
    def is_open(self) -> bool:
        return self.close_time == 0 and self.cmd < 6

    def wire(self) -> dict[str, Any]:
        record = to_wire(dataclasses.asdict(self))
        for internal in ("contract_size", "position_id", "idempotency_key"):
            record.pop(internal)
        return record


def to_wire(value: Any) -> Any:
    """Decimals as doubles, as the Manager API records hold them."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    return value


def from_plain(cls: type[Any], data: dict[str, Any]) -> Any:
    """Rebuild a record from saved JSON, Decimal fields back from strings."""
    values = {}
    for item in dataclasses.fields(cls):
        if item.name in data:
            raw = data[item.name]
            values[item.name] = Decimal(raw) if item.type == "Decimal" else raw
    return cls(**values)
