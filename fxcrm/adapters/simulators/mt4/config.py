"""Simulator configuration: API keys and their rights, groups, symbols, the server clock."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, Field

from fxcrm.core.config import DEV_MT4_KEY_ID, DEV_MT4_SECRET

# Development-only keys (the simulator is never a production system).
DEV_MT4_READONLY_KEY_ID = "fxcrm-dev-readonly"
DEV_MT4_READONLY_SECRET = "mt4-bridge-readonly-secret-2026"  # noqa: S105

# Rights a key may hold: read everything, create/update users and passwords, move money.
RIGHT_READ = "read"
RIGHT_USERS = "users"
RIGHT_MONEY = "money"
ALL_RIGHTS = frozenset({RIGHT_READ, RIGHT_USERS, RIGHT_MONEY})


class Mt4SimKey(BaseModel):
    """An API key of the bridge; each is bound to one manager login on the MT4 server."""

    key_id: str
    secret: str
    manager_login: int = 1
    rights: set[str] = Field(default_factory=lambda: set(ALL_RIGHTS))


class Mt4SimGroup(BaseModel):
    name: str
    currency: str = "USD"
    default_leverage: int = 100
    max_leverage: int = 500  # a bridge extension: ConGroup has no leverage limit, brokers do
    margin_call: Decimal = Decimal(100)
    margin_stopout: Decimal = Decimal(50)
    enable: int = 1


class Mt4SimSymbol(BaseModel):
    name: str
    digits: int = 5
    contract_size: Decimal = Decimal(100_000)


def default_keys() -> list[Mt4SimKey]:
    return [
        Mt4SimKey(key_id=DEV_MT4_KEY_ID, secret=DEV_MT4_SECRET, manager_login=1),
        Mt4SimKey(
            key_id=DEV_MT4_READONLY_KEY_ID,
            secret=DEV_MT4_READONLY_SECRET,
            manager_login=2,
            rights={RIGHT_READ},
        ),
    ]


def default_groups() -> list[Mt4SimGroup]:
    """The groups the demo brand opens accounts in, plus a demo group."""
    return [
        Mt4SimGroup(name="real\\retail\\std", max_leverage=500),
        Mt4SimGroup(name="real\\retail\\highrisk", max_leverage=100),
        Mt4SimGroup(name="real\\pro\\std", max_leverage=500),
        Mt4SimGroup(name="real\\pro\\highrisk", max_leverage=100),
        Mt4SimGroup(name="demo\\retail\\std", max_leverage=1000),
    ]


def default_symbols() -> list[Mt4SimSymbol]:
    return [
        Mt4SimSymbol(name="EURUSD"),
        Mt4SimSymbol(name="GBPUSD"),
        Mt4SimSymbol(name="USDJPY", digits=3),
        Mt4SimSymbol(name="XAUUSD", digits=2, contract_size=Decimal(100)),
    ]


class Mt4SimConfig(BaseModel):
    server_name: str = "fxcrm-MT4-Simulator"
    company: str = "fxcrm Demo Broker Ltd"
    build: int = 1440
    # MT4 servers run on the broker's clock (EET, UTC+2 in winter); the wire carries it.
    server_utc_offset_hours: float = 2.0
    keys: list[Mt4SimKey] = Field(default_factory=default_keys)
    groups: list[Mt4SimGroup] = Field(default_factory=default_groups)
    symbols: list[Mt4SimSymbol] = Field(default_factory=default_symbols)
    first_login: int = 410_001  # MT4 numbers logins server-wide, not per group
    first_order: int = 1_000_001
    # The manager session closes after this long without a request (ping to keep it).
    session_timeout_seconds: float = 120.0
    max_skew_seconds: int = 300
    max_balance_op: Decimal = Decimal(1_000_000_000)
    state_file: Path | None = None  # JSON, kept across restarts when set
