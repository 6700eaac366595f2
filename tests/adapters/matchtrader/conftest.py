"""Fixtures: the Match-Trader Broker API simulator in a background thread, and clients for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from fxcrm.adapters.platforms.base import NewAccountSpec
from fxcrm.adapters.platforms.matchtrader import MatchTraderClient
from fxcrm.adapters.simulators.market.contract import SimFill
from fxcrm.adapters.simulators.matchtrader import (
    DEV_MATCHTRADER_API_KEY,
    MatchTraderSimConfig,
    MatchTraderSimulatorThread,
)

API_KEY = DEV_MATCHTRADER_API_KEY
RETAIL = "real\\retail\\std"
HIGHRISK = "real\\retail\\highrisk"
EU = "real\\retail\\eu"


@pytest.fixture(scope="session")
def mtr_server() -> Iterator[MatchTraderSimulatorThread]:
    """One simulator thread for the run; tests get it with a fresh state (`mtr_sim`)."""
    with MatchTraderSimulatorThread() as sim:
        yield sim


@pytest.fixture
def mtr_sim(mtr_server: MatchTraderSimulatorThread) -> MatchTraderSimulatorThread:
    mtr_server.reset(MatchTraderSimConfig())
    return mtr_server


def make_client(sim: MatchTraderSimulatorThread, **options: Any) -> MatchTraderClient:
    options.setdefault("timeout", 5.0)
    options.setdefault("poll_interval", 0.02)
    return MatchTraderClient(sim.base_url, options.pop("api_key", API_KEY), **options)


@pytest.fixture
async def mtr_client(mtr_sim: MatchTraderSimulatorThread) -> AsyncIterator[MatchTraderClient]:
    client = make_client(mtr_sim)
    yield client
    await client.close()


def account_spec(
    *,
    email: str = "ada@example.com",
    client_id: str = "7f1c6a52-3d0e-4b8a-9c11-5e2f4d6b8a90",
    group: str = RETAIL,
    leverage: int = 100,
) -> NewAccountSpec:
    return NewAccountSpec(
        group=group,
        leverage=leverage,
        first_name="Ada",
        last_name="Lovelace",
        email=email,
        country="GB",
        phone="+441234567890",
        client_id=client_id,
        main_password="Secret#2026",
        investor_password="Invest#2026",
    )


T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def fill(
    login: int,
    position_id: int,
    entry: str,
    *,
    side: str = "buy",
    lots: str = "1",
    price: str = "1.10000",
    minutes: float = 0,
    profit: str = "0",
    commission: str = "0",
    swap: str = "0",
    symbol: str = "EURUSD",
) -> SimFill:
    return SimFill(
        login=login,
        position_id=position_id,
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        entry=entry,  # type: ignore[arg-type]
        lots=Decimal(lots),
        price=Decimal(price),
        time=T0 + timedelta(minutes=minutes),
        contract_size=Decimal(100_000),
        profit=Decimal(profit),
        commission=Decimal(commission),
        swap=Decimal(swap),
    )
