"""Fixtures: the cTrader Web Services simulator in a background thread, and clients for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from fxcrm.adapters.platforms.ctrader import CTraderWebServicesClient
from fxcrm.adapters.simulators.ctrader import (
    DEV_CTRADER_BROKER_NAME,
    DEV_CTRADER_MANAGER_LOGIN,
    DEV_CTRADER_PASSWORD,
    CTraderSimConfig,
    CTraderSimulatorThread,
)

MANAGER = DEV_CTRADER_MANAGER_LOGIN
MANAGER_PASSWORD = DEV_CTRADER_PASSWORD
BROKER = DEV_CTRADER_BROKER_NAME
CONTRACT_SIZES = {"XAUUSD": Decimal(100), "US500": Decimal(1)}


@pytest.fixture(scope="session")
def ctrader_server() -> Iterator[CTraderSimulatorThread]:
    """One simulator thread for the run; tests get it with a fresh state (`ctrader_sim`)."""
    with CTraderSimulatorThread(CTraderSimConfig()) as sim:
        yield sim


@pytest.fixture
def ctrader_sim(ctrader_server: CTraderSimulatorThread) -> CTraderSimulatorThread:
    """The simulator with a fresh state: no traders, no tokens."""
    ctrader_server.reset(CTraderSimConfig())
    return ctrader_server


def make_client(
    sim: CTraderSimulatorThread,
    *,
    login: int = MANAGER,
    password: str = MANAGER_PASSWORD,
    **options: Any,
) -> CTraderWebServicesClient:
    return CTraderWebServicesClient(
        sim.base_url,
        login,
        password,
        broker_name=BROKER,
        timeout=5.0,
        contract_sizes=CONTRACT_SIZES,
        **options,
    )


@pytest.fixture
async def ctrader_client(
    ctrader_sim: CTraderSimulatorThread,
) -> AsyncIterator[CTraderWebServicesClient]:
    client = make_client(ctrader_sim)
    yield client
    await client.close()
