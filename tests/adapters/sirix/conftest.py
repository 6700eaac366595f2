"""Fixtures: the Sirix REST simulator in a background thread, and fxcrm's client for it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from fxcrm.adapters.platforms.base import NewAccountSpec
from fxcrm.adapters.platforms.sirix import SirixClient
from fxcrm.adapters.simulators.market.contract import SimFill
from fxcrm.adapters.simulators.sirix import DEV_SIRIX_TOKEN, SirixSimState, SirixSimulatorThread

TOKEN = DEV_SIRIX_TOKEN


@pytest.fixture(scope="session")
def sirix_server() -> Iterator[SirixSimulatorThread]:
    """One simulator thread for the run (plain HTTP: TLS is the MT5 tests' business)."""
    with SirixSimulatorThread() as sim:
        yield sim


@pytest.fixture
def sirix_sim(sirix_server: SirixSimulatorThread) -> SirixSimulatorThread:
    """The simulator with a fresh state: no users, no positions, no money."""
    sirix_server.reset()
    return sirix_server


@pytest.fixture
def sirix_state(sirix_sim: SirixSimulatorThread) -> SirixSimState:
    return sirix_sim.state


def make_client(sim: SirixSimulatorThread, token: str = TOKEN, **options: Any) -> SirixClient:
    return SirixClient(sim.base_url, token, timeout=5.0, **options)


@pytest.fixture
async def sirix_client(sirix_sim: SirixSimulatorThread) -> AsyncIterator[SirixClient]:
    client = make_client(sirix_sim)
    yield client
    await client.close()


def spec(client_id: str | None = None, **changes: Any) -> NewAccountSpec:
    values: dict[str, object] = {
        "group": "real\\retail\\std",
        "leverage": 100,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "country": "CY",
        "phone": "+35799000000",
        "client_id": client_id or uuid.uuid4().hex,
        "main_password": "Trader2026a",
        "investor_password": "Invest2026b",
    }
    values.update(changes)
    return NewAccountSpec.model_validate(values)


def fill(
    login: int,
    position_id: int,
    entry: str,
    side: str,
    lots: str,
    price: str,
    time: datetime,
    **money: str,
) -> SimFill:
    return SimFill(
        login=login,
        position_id=position_id,
        symbol=str(money.pop("symbol", "EURUSD")),
        side=side,  # type: ignore[arg-type]
        entry=entry,  # type: ignore[arg-type]
        lots=Decimal(lots),
        price=Decimal(price),
        time=time,
        contract_size=Decimal(100_000),
        **{key: Decimal(value) for key, value in money.items()},  # type: ignore[arg-type]
    )
