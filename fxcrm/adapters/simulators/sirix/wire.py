"""Request parameters and answer records on the simulator's wire (Leverate's JSON shapes)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from fxcrm.adapters.platforms.sirix import LOTS_PER_VOLUME
from fxcrm.adapters.simulators.sirix import protocol as p
from fxcrm.adapters.simulators.sirix.records import (
    SimClosedPosition,
    SimOpenPosition,
    SimTransaction,
    SimUser,
)
from fxcrm.adapters.simulators.sirix.state import SirixSimState


class Params:
    """A JSON object read with case-insensitive keys: .NET model binding ignores key case, and
    public clients send both `userID` and `UserID`."""

    def __init__(self, body: object) -> None:
        if body is None:
            body = {}
        if not isinstance(body, Mapping):
            raise p.SirixError(p.INVALID_REQUEST, "The body must be a JSON object")
        self._values = {str(k).lower(): v for k, v in body.items()}

    def get(self, name: str, default: Any = None) -> Any:
        value = self._values.get(name.lower())
        return default if value is None else value

    def has(self, name: str) -> bool:
        return self._values.get(name.lower()) is not None

    def obj(self, name: str) -> Params:
        return Params(self.get(name, {}))

    def integer(self, name: str) -> int:
        value = self.get(name)
        if isinstance(value, bool) or value is None:
            raise p.SirixError(p.INVALID_REQUEST, f"{name} is required")
        try:
            return int(str(value))
        except ValueError as exc:
            raise p.SirixError(p.INVALID_REQUEST, f"{name} must be an integer") from exc

    def optional_int(self, name: str) -> int | None:
        return self.integer(name) if self.has(name) else None

    def decimal(self, name: str, default: Decimal | None = None) -> Decimal:
        value = self.get(name)
        if value is None:
            if default is not None:
                return default
            raise p.SirixError(p.INVALID_REQUEST, f"{name} is required")
        try:
            number = Decimal(str(value))
        except InvalidOperation as exc:
            raise p.SirixError(p.INVALID_AMOUNT, f"{name} must be a number") from exc
        if not number.is_finite():
            raise p.SirixError(p.INVALID_AMOUNT, f"{name} must be finite")
        return number

    def text(self, name: str, default: str = "") -> str:
        value = self.get(name)
        return default if value is None else str(value)

    def optional_bool(self, name: str) -> bool | None:
        value = self.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1")
        return bool(value)

    def local_time(self, name: str, state: SirixSimState) -> datetime:
        """A time parameter as the server's wall clock; one with an offset is converted first."""
        text = self.text(name)
        if not text:
            raise p.SirixError(p.INVALID_REQUEST, f"{name} is required")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise p.SirixError(p.INVALID_REQUEST, f"{name} is not a date") from exc
        return state.local(parsed) if parsed.tzinfo else parsed

    def strings(self, name: str) -> list[str]:
        value = self.get(name, [])
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list):
            raise p.SirixError(p.INVALID_REQUEST, f"{name} must be a list")
        return [str(item) for item in value]


def wire_time(state: SirixSimState, moment: datetime) -> str:
    return state.local(moment).isoformat(timespec="milliseconds")


def _volume(lots: Decimal) -> float:
    return float(lots * LOTS_PER_VOLUME)


def _side(side: str) -> str:
    return "Buy" if side == "buy" else "Sell"


def user_record(state: SirixSimState, user: SimUser) -> dict[str, Any]:
    details = {
        "FullName": user.full_name,
        "Phone": "",
        "Email": "",
        "Source": "",
        "Comment": "",
        "Country": "",
        "State": "",
        "City": "",
        "Address": "",
        "ZipCode": "",
        **user.details,
        "CreationTime": wire_time(state, user.created),
    }
    return {
        "UserID": user.user_id,
        "GroupName": user.group,
        "FullName": user.full_name,
        "Currency": user.currency,
        "IsEnabled": user.is_enabled,
        "IsArchived": user.is_archived,
        "DisableTrading": user.disable_trading,
        "Tradability": user.tradability,
        "TradingState": user.trading_state,
        "MarginRequirements": {
            "Leverage": user.leverage,
            "MarginCoefficient": user.margin_coefficient,
            "UseAccountMarginRequirements": user.use_account_margin,
        },
        "UserDetails": details,
    }


def open_record(state: SirixSimState, row: SimOpenPosition) -> dict[str, Any]:
    return {
        "PositionID": row.position_id,
        "UserID": row.user_id,
        "GroupName": state.user(row.user_id).group,
        "Symbol": row.symbol,
        "ActionType": _side(row.side),
        "Volume": _volume(row.lots),
        "OpenRate": row.open_rate,
        "CurrentRate": row.current_rate,
        "OpenTime": wire_time(state, row.open_time),
        "Profit": state.floating(row),
        "Commission": row.commission,
        "Swap": row.swap,
    }


def closed_record(state: SirixSimState, row: SimClosedPosition) -> dict[str, Any]:
    user = state.users.get(row.user_id)
    return {
        "OrderID": row.order_id,
        "PositionID": row.position_id,
        "UserID": row.user_id,
        "GroupName": user.group if user else "",
        "Symbol": row.symbol,
        "ActionType": _side(row.side),
        "Volume": _volume(row.lots),
        "OpenRate": row.open_rate,
        "CloseRate": row.close_rate,
        "OpenTime": wire_time(state, row.open_time),
        "CloseTime": wire_time(state, row.close_time),
        "Profit": row.profit,
        "Commission": row.commission,
        "Swap": row.swap,
        "CloseReason": row.close_reason,
    }


def transaction_record(state: SirixSimState, row: SimTransaction) -> dict[str, Any]:
    return {
        "OrderID": row.order_id,
        "UserID": row.user_id,
        "Type": row.kind,
        "SubType": row.sub_type,
        "Amount": row.amount,
        "Comment": row.comment,
        "Time": wire_time(state, row.time),
    }


def to_json(value: Any) -> Any:
    """Doubles on the wire, as Leverate sends them."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value
