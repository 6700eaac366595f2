"""Simulator configuration: managers and their rights, groups, symbols, the server clock."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, Field

from fxcrm.core.config import DEV_MT5_PASSWORD


class Mt5SimManager(BaseModel):
    """A manager account with the permission flags that decide what it may do over the Web API."""

    login: int
    password: str
    webapi: bool = True
    accountant: bool = True  # may post trade/balance
    edit_users: bool = True  # may add and update users and change passwords
    group_masks: str = "*"  # groups it may see and touch, MT5 mask syntax
    allowed_ips: list[str] = Field(default_factory=list)  # addresses or networks; empty: any


class Mt5SimGroup(BaseModel):
    name: str
    currency: str = "USD"
    currency_digits: int = 2
    leverage_min: int = 1
    leverage_max: int = 500
    login_min: int
    login_max: int
    margin_call: Decimal = Decimal(100)
    margin_stop_out: Decimal = Decimal(50)
    hedging: bool = True  # margin mode: hedging (several positions per symbol) or netting


class Mt5SimSymbol(BaseModel):
    name: str
    digits: int = 5
    contract_size: Decimal = Decimal(100_000)


# Development-only manager passwords (the simulator is never a production system).
VIEWER_PASSWORD = "Viewer#2026"  # noqa: S105
RETAIL_DESK_PASSWORD = "Retail#2026"  # noqa: S105
NO_WEBAPI_PASSWORD = "NoWebApi#2026"  # noqa: S105


def default_managers() -> list[Mt5SimManager]:
    return [
        # fxcrm's own manager: everything allowed.
        Mt5SimManager(login=1000, password=DEV_MT5_PASSWORD),
        # Read-only dealer: no Accountant right, no edit right.
        Mt5SimManager(login=1001, password=VIEWER_PASSWORD, accountant=False, edit_users=False),
        # Desk limited to the retail groups.
        Mt5SimManager(login=1002, password=RETAIL_DESK_PASSWORD, group_masks="real\\retail\\*"),
        # Web API access not granted on the server.
        Mt5SimManager(login=1003, password=NO_WEBAPI_PASSWORD, webapi=False),
    ]


def _group(
    name: str, logins: tuple[int, int], leverage_max: int, currency: str = "USD"
) -> Mt5SimGroup:
    return Mt5SimGroup(
        name=name,
        currency=currency,
        leverage_max=leverage_max,
        login_min=logins[0],
        login_max=logins[1],
    )


def default_groups() -> list[Mt5SimGroup]:
    """The groups the demo brand opens accounts in (fxcrm.domain.brand), plus a few others."""
    return [
        _group("real\\retail\\std", (500_000, 599_999), 500),
        _group("real\\retail\\highrisk", (600_000, 609_999), 100),
        _group("real\\retail\\eu", (610_000, 619_999), 30, "EUR"),
        _group("real\\pro\\std", (700_000, 799_999), 500),
        _group("real\\pro\\highrisk", (800_000, 809_999), 100),
        _group("demo\\retail\\std", (2_000_000, 2_999_999), 1000),
        _group("demo\\contest", (3_000_000, 3_000_999), 100),
    ]


def default_symbols() -> list[Mt5SimSymbol]:
    return [
        Mt5SimSymbol(name="EURUSD"),
        Mt5SimSymbol(name="GBPUSD"),
        Mt5SimSymbol(name="USDJPY", digits=3),
        Mt5SimSymbol(name="XAUUSD", digits=2, contract_size=Decimal(100)),
        Mt5SimSymbol(name="US500", digits=2, contract_size=Decimal(1)),
    ]


class Mt5SimConfig(BaseModel):
    server_name: str = "fxcrm-MT5-Simulator"
    company: str = "fxcrm Demo Broker Ltd"
    build: int = 4755
    # Brokers run the trade server on their own clock (often EET, UTC+2/+3); the wire carries it.
    server_utc_offset_hours: float = 2.0
    managers: list[Mt5SimManager] = Field(default_factory=default_managers)
    groups: list[Mt5SimGroup] = Field(default_factory=default_groups)
    symbols: list[Mt5SimSymbol] = Field(default_factory=default_symbols)
    max_balance_op: Decimal = Decimal(1_000_000_000)
    state_file: Path | None = None  # JSON, kept across restarts when set
    require_cookie: bool = False  # newer builds: refuse session calls that do not carry the cookie
    session_idle_seconds: float = 600.0
    # Test switch: answer cli_rand wrongly, like a server that does not know the password.
    fake_cli_rand_answer: bool = False
