"""What the simulated Match-Trader backend keeps, and the RFC 3339 / JSON forms of it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

# Manual deposit / withdrawal statuses (Broker API v1).
PENDING_STATUSES = ("NEW", "AWAITING_CONFIRMATION", "PROCESSING", "BOOKED", "PROCESSING_PAYMENT")
FINAL_FAILED_STATUSES = ("REJECTED", "FAILED", "FAILED_PAYMENT", "CANCELLED_BY_USER")
ACCESS_VALUES = ("FULL", "READ_ONLY", "NO_TRADING", "CLOSE_ONLY")


class MtrError(Exception):
    """A refused request: HTTP status, a machine-readable code and a message, as JSON."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.status = status
        self.code = code
        self.message = message or code


def rfc3339(moment: datetime) -> str:
    """UTC with milliseconds and a Z: 2024-01-13T09:20:04.651Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_rfc3339(text: str) -> datetime:
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise MtrError(400, "INVALID_DATE", f"time without offset: {text}")
    return value.astimezone(UTC)


@dataclass
class SimAccount:
    """The client's profile (one per email); it owns trading accounts."""

    uuid: str
    email: str
    password: str
    created: datetime
    personal: dict[str, str] = field(default_factory=dict)
    external_id: str | None = None


@dataclass
class SimTradingAccount:
    login: int
    uuid: str
    account_uuid: str
    offer_uuid: str
    group: str
    currency: str
    leverage: int
    created: datetime
    access: str = "FULL"
    balance: Decimal = Decimal(0)
    credit: Decimal = Decimal(0)


@dataclass
class SimManualOp:
    """A manual deposit or withdrawal through a payment gateway, with its status lifecycle."""

    uuid: str
    kind: str  # DEPOSIT | WITHDRAWAL
    login: int
    gateway_uuid: str
    amount: Decimal
    comment: str
    created: datetime
    status: str = "NEW"
    updated: datetime | None = None


@dataclass
class SimLedger:
    uuid: str
    login: int
    type: str  # DEPOSIT, WITHDRAWAL, CREDIT_IN, CREDIT_OUT, CLOSED_POSITION, COMMISSION, SWAP
    amount: Decimal  # signed: what it did to the balance (or the credit)
    comment: str
    time: datetime


@dataclass
class SimPosition:
    id: str
    login: int
    symbol: str
    side: str  # BUY | SELL
    volume: Decimal  # lots
    open_price: Decimal
    open_time: datetime
    contract_size: Decimal
    current_price: Decimal | None = None
    profit: Decimal = Decimal(0)
    commission: Decimal = Decimal(0)
    swap: Decimal = Decimal(0)


@dataclass
class SimClosedPosition:
    id: str  # one row per closing deal (partial closes make several rows per position)
    position_id: str
    login: int
    symbol: str
    side: str  # the position's side, BUY | SELL
    volume: Decimal  # lots closed by this deal
    open_price: Decimal
    close_price: Decimal
    open_time: datetime
    close_time: datetime
    profit: Decimal
    commission: Decimal
    swap: Decimal
    reason: str = "CLIENT"


def money(value: Decimal) -> float:
    """Money travels as JSON numbers on the Broker API."""
    return float(value)


def to_plain(record: Any) -> dict[str, Any]:
    """A record for the JSON state file: Decimal as str, datetime as RFC 3339."""
    out: dict[str, Any] = {}
    for key, value in dataclasses.asdict(record).items():
        if isinstance(value, Decimal):
            out[key] = str(value)
        elif isinstance(value, datetime):
            out[key] = rfc3339(value)
        else:
            out[key] = value
    return out


def from_plain(cls: type[Any], data: dict[str, Any]) -> Any:
    """Reverse of `to_plain`, led by the field annotations (strings under postponed evaluation)."""
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        if item.name not in data:
            continue
        value = data[item.name]
        kind = str(item.type)
        if value is not None and kind.startswith("Decimal"):
            value = Decimal(value)
        elif value is not None and kind.startswith("datetime"):
            value = parse_rfc3339(value)
        values[item.name] = value
    return cls(**values)
