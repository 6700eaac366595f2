"""Simulator configuration: managers, trader groups (each with a maximum leverage), symbols."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, Field

from fxcrm.core.config import DEV_CTRADER_PASSWORD

# Development-only manager credentials (the simulator is never a production system).
DEV_CTRADER_MANAGER_LOGIN = 30017
DEV_CTRADER_BROKER_NAME = "fxcrm-demo"


class CTraderSimManager(BaseModel):
    login: int
    password: str
    may_change_balance: bool = True  # without it changebalance answers 403


class CTraderSimGroup(BaseModel):
    id: int
    name: str
    description: str = ""
    max_leverage: int = 500  # 1:N; leverageInCents above N*100 is refused


class CTraderSimSymbol(BaseModel):
    name: str
    contract_size: Decimal = Decimal(100_000)  # base units per lot: CSV volumes are in units
    digits: int = 5


def default_managers() -> list[CTraderSimManager]:
    return [CTraderSimManager(login=DEV_CTRADER_MANAGER_LOGIN, password=DEV_CTRADER_PASSWORD)]


def default_groups() -> list[CTraderSimGroup]:
    """The groups the demo brand opens accounts in (fxcrm.domain.brand), plus a demo group."""
    return [
        CTraderSimGroup(id=1, name="real\\retail\\std", max_leverage=500),
        CTraderSimGroup(id=2, name="real\\retail\\highrisk", max_leverage=100),
        CTraderSimGroup(id=3, name="real\\pro\\std", max_leverage=500),
        CTraderSimGroup(id=4, name="real\\pro\\highrisk", max_leverage=100),
        CTraderSimGroup(id=5, name="demo\\retail\\std", max_leverage=1000),
    ]


def default_symbols() -> list[CTraderSimSymbol]:
    return [
        CTraderSimSymbol(name="EURUSD"),
        CTraderSimSymbol(name="GBPUSD"),
        CTraderSimSymbol(name="USDJPY", digits=3),
        CTraderSimSymbol(name="XAUUSD", contract_size=Decimal(100), digits=2),
        CTraderSimSymbol(name="US500", contract_size=Decimal(1), digits=2),
    ]


class CTraderSimConfig(BaseModel):
    broker_name: str = DEV_CTRADER_BROKER_NAME
    managers: list[CTraderSimManager] = Field(default_factory=default_managers)
    groups: list[CTraderSimGroup] = Field(default_factory=default_groups)
    symbols: list[CTraderSimSymbol] = Field(default_factory=default_symbols)
    currencies: list[str] = Field(default_factory=lambda: ["USD", "EUR", "GBP"])
    money_digits: int = 2
    first_login: int = 7_100_001
    token_ttl_seconds: float = 3600.0
    max_report_days: float = 2.0  # closedPositions windows beyond this answer 400
    max_balance_op: Decimal = Decimal(1_000_000_000)
    state_file: Path | None = None  # JSON, kept across restarts when set
