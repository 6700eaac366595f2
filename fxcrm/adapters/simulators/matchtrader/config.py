"""Simulator configuration: API keys, the trading system, offers (groups), payment gateways."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, Field

# Development-only Broker API key (the simulator is never a production system).
DEV_MATCHTRADER_API_KEY = "mtr-dev-broker-api-key-0123456789abcdef"

# The one trading system ("server") the simulator runs; fixed so configs and tests can name it.
SIM_SYSTEM_UUID = "6a1f0c2e-8b7d-4c55-9e3a-2d4f6b8a0c11"
SIM_PARTNER_ID = 0  # as on the shared sandbox

# Deterministic ids: the same offer keeps its uuid across restarts (state files refer to it).
_NAMESPACE = uuid.UUID("0f6a3d5c-1b2e-4f70-8a9b-c3d4e5f60718")


def stable_uuid(name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, name))


class MtrSimOffer(BaseModel):
    """An offer: what a trading account is opened under; it names the backend group."""

    uuid: str
    name: str
    group_name: str
    currency: str = "USD"
    leverage: int = 100  # default leverage of new trading accounts
    max_leverage: int = 500
    account_type: str = "REAL"  # REAL | DEMO
    system_uuid: str = SIM_SYSTEM_UUID


class MtrSimGateway(BaseModel):
    uuid: str
    name: str
    currency: str


class MtrSimSymbol(BaseModel):
    name: str
    contract_size: Decimal = Decimal(100_000)


def _offer(
    name: str, group: str, max_leverage: int, *, currency: str = "USD", demo: bool = False
) -> MtrSimOffer:
    return MtrSimOffer(
        uuid=stable_uuid(f"offer:{group}:{currency}"),
        name=name,
        group_name=group,
        currency=currency,
        leverage=min(100, max_leverage),
        max_leverage=max_leverage,
        account_type="DEMO" if demo else "REAL",
    )


def default_offers() -> list[MtrSimOffer]:
    """The demo brand's groups (fxcrm.domain.brand), an EUR offer and a demo offer."""
    return [
        _offer("Retail Standard", "real\\retail\\std", 500),
        _offer("Retail High Risk", "real\\retail\\highrisk", 100),
        _offer("Pro Standard", "real\\pro\\std", 500),
        _offer("Pro High Risk", "real\\pro\\highrisk", 100),
        _offer("Retail EU", "real\\retail\\eu", 30, currency="EUR"),
        _offer("Demo", "demo\\retail\\std", 1000, demo=True),
    ]


def default_gateways() -> list[MtrSimGateway]:
    return [
        MtrSimGateway(uuid=stable_uuid("gateway:USD"), name="Manual USD", currency="USD"),
        MtrSimGateway(uuid=stable_uuid("gateway:EUR"), name="Manual EUR", currency="EUR"),
    ]


def default_symbols() -> list[MtrSimSymbol]:
    return [
        MtrSimSymbol(name="EURUSD"),
        MtrSimSymbol(name="GBPUSD"),
        MtrSimSymbol(name="XAUUSD", contract_size=Decimal(100)),
        MtrSimSymbol(name="US500", contract_size=Decimal(1)),
    ]


class MatchTraderSimConfig(BaseModel):
    api_keys: list[str] = Field(default_factory=lambda: [DEV_MATCHTRADER_API_KEY])
    rate_limit_per_minute: int = 500  # per API key, sliding 60 s window
    system_uuid: str = SIM_SYSTEM_UUID
    offers: list[MtrSimOffer] = Field(default_factory=default_offers)
    gateways: list[MtrSimGateway] = Field(default_factory=default_gateways)
    symbols: list[MtrSimSymbol] = Field(default_factory=default_symbols)
    first_login: int = 100_001
    # Manual deposits and withdrawals: NEW at once, PROCESSING after half of this, then DONE.
    settle_seconds: float = 0.0
    max_operation_amount: Decimal = Decimal(1_000_000_000)
    max_page_size: int = 1000
    state_file: Path | None = None  # JSON, kept across restarts when set
