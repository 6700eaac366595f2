"""Users, deals and positions as the trade server keeps them, and their wire form."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from fxcrm.adapters.simulators.mt5.config import Mt5SimGroup
from fxcrm.adapters.simulators.mt5.protocol import ENTRY_IN


@dataclass
class SimUser:
    login: int
    group: str
    leverage: int
    rights: int
    registration: int  # server time, seconds
    passwords: dict[str, str]
    balance: Decimal = Decimal(0)
    credit: Decimal = Decimal(0)
    agent: int = 0
    last_pass_change: int = 0
    profile: dict[str, str] = field(default_factory=dict)
    api_data: list[dict[str, str]] = field(default_factory=list)


@dataclass(slots=True)  # a market run keeps millions of these
class SimDeal:
    deal: int
    login: int
    action: int
    entry: int
    time_msc: int  # server time, milliseconds
    profit: Decimal = Decimal(0)
    comment: str = ""
    symbol: str = ""
    volume: int = 0  # 1/10000 lot
    volume_ext: int = 0  # 1/1e8 lot
    price: Decimal = Decimal(0)
    commission: Decimal = Decimal(0)
    storage: Decimal = Decimal(0)
    position_id: int = 0
    order: int = 0
    dealer: int = 0
    digits: int = 0
    currency_digits: int = 2
    contract_size: Decimal = Decimal(0)
    reason: int = 0  # EnDealReason (server side): 0 client, 3 SL, 4 TP, 5 stop-out


@dataclass
class SimPosition:
    position: int
    login: int
    symbol: str
    action: int  # 0 buy, 1 sell
    volume: int  # 1/10000 lot
    price_open: Decimal
    price_current: Decimal
    time_create_msc: int
    margin: Decimal
    digits: int = 5
    contract_size: Decimal = Decimal(100_000)
    profit: Decimal = Decimal(0)
    storage: Decimal = Decimal(0)
    commission: Decimal = Decimal(0)
    currency_digits: int = 2


def to_wire(value: Any) -> Any:
    """Every number as a JSON string, as the real server sends them."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return {key: to_wire(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(item) for item in value]
    return value


def deal_record(deal: SimDeal) -> dict[str, Any]:
    return {
        "Deal": deal.deal,
        "ExternalID": "",
        "Login": deal.login,
        "Dealer": deal.dealer,
        "Order": deal.order,
        "Action": deal.action,
        "Entry": deal.entry,
        "Reason": deal.reason,
        "Digits": deal.digits,
        "DigitsCurrency": deal.currency_digits,
        "ContractSize": deal.contract_size,
        "Time": deal.time_msc // 1000,
        "TimeMsc": deal.time_msc,
        "Symbol": deal.symbol,
        "Price": deal.price,
        "PriceSL": Decimal(0),
        "PriceTP": Decimal(0),
        "PricePosition": Decimal(0),
        "Volume": deal.volume,
        "VolumeExt": deal.volume_ext,
        "VolumeClosed": deal.volume if deal.entry != ENTRY_IN else 0,
        "Profit": deal.profit,
        "Value": Decimal(0),
        "Storage": deal.storage,
        "Commission": deal.commission,
        "RateProfit": Decimal(1),
        "RateMargin": Decimal(1),
        "ExpertID": 0,
        "PositionID": deal.position_id,
        "Comment": deal.comment,
        "Flags": 0,
        "ModificationFlags": 0,
        "Gateway": "",
        "ApiData": [],
    }


def position_record(position: SimPosition) -> dict[str, Any]:
    return {
        "Position": position.position,
        "ExternalID": "",
        "Login": position.login,
        "Dealer": 0,
        "Symbol": position.symbol,
        "Action": position.action,
        "Digits": position.digits,
        "DigitsCurrency": position.currency_digits,
        "Reason": 0,
        "ContractSize": position.contract_size,
        "TimeCreate": position.time_create_msc // 1000,
        "TimeUpdate": position.time_create_msc // 1000,
        "TimeCreateMsc": position.time_create_msc,
        "TimeUpdateMsc": position.time_create_msc,
        "PriceOpen": position.price_open,
        "PriceCurrent": position.price_current,
        "PriceSL": Decimal(0),
        "PriceTP": Decimal(0),
        "Volume": position.volume,
        "VolumeExt": position.volume * 10_000,
        "Profit": position.profit,
        "Storage": position.storage,
        "RateProfit": Decimal(1),
        "RateMargin": Decimal(1),
        "ExpertID": 0,
        "ExpertPositionID": 0,
        "Comment": "",
        "ApiData": [],
    }


def group_record(group: Mt5SimGroup, company: str) -> dict[str, Any]:
    return {
        "Group": group.name,
        "Server": 0,
        "Company": company,
        "Currency": group.currency,
        "CurrencyDigits": group.currency_digits,
        "MarginCall": group.margin_call,
        "MarginStopOut": group.margin_stop_out,
        # Not MT5 fields: the simulator's leverage policy and login range, shown for debugging.
        "LeverageMin": group.leverage_min,
        "LeverageMax": group.leverage_max,
        "LoginMin": group.login_min,
        "LoginMax": group.login_max,
    }
