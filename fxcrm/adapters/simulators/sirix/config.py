"""Simulator configuration: the API token, groups with their leverage limits, symbols, the clock."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, Field

# The development-only Leverate API token lives with the other dev secrets (refused in production).
# Real tokens are issued by Leverate per broker and look alike ("t1_..."); never commit one.
from fxcrm.core.config import DEV_SIRIX_TOKEN

__all__ = ["DEV_SIRIX_TOKEN"]

# The trade server's clock, as Leverate reports it; the wire carries local times of this zone.
SERVER_TIMEZONE = "Asia/Jerusalem"


class SirixSimGroup(BaseModel):
    name: str
    currency: str = "USD"
    max_leverage: int = 500
    default_leverage: int = 100


class SirixSimSymbol(BaseModel):
    name: str
    digits: int = 5
    contract_size: Decimal = Decimal(100_000)


def _group(name: str, max_leverage: int, default: int = 100) -> SirixSimGroup:
    return SirixSimGroup(name=name, max_leverage=max_leverage, default_leverage=default)


def default_groups() -> list[SirixSimGroup]:
    """The groups the demo brand opens accounts in (fxcrm.domain.brand), plus a demo group."""
    return [
        _group("real\\retail\\std", 500),
        _group("real\\retail\\highrisk", 100),
        _group("real\\pro\\std", 500),
        _group("real\\pro\\highrisk", 100),
        _group("demo\\retail\\std", 1000),
    ]


def default_symbols() -> list[SirixSimSymbol]:
    return [
        SirixSimSymbol(name="EURUSD"),
        SirixSimSymbol(name="GBPUSD"),
        SirixSimSymbol(name="USDJPY", digits=3),
        SirixSimSymbol(name="XAUUSD", digits=2, contract_size=Decimal(100)),
        SirixSimSymbol(name="US500", digits=2, contract_size=Decimal(1)),
    ]


class SirixSimConfig(BaseModel):
    tokens: list[str] = Field(default_factory=lambda: [DEV_SIRIX_TOKEN])
    timezone: str = SERVER_TIMEZONE
    groups: list[SirixSimGroup] = Field(default_factory=default_groups)
    symbols: list[SirixSimSymbol] = Field(default_factory=default_symbols)
    first_user_id: int = 1_000_001
    first_order_id: int = 50_000_001
    max_balance_op: Decimal = Decimal(1_000_000_000)
    state_file: Path | None = None  # JSON, kept across restarts when set
