"""Fixtures: the MT4 bridge simulator in a background thread (plain HTTP) and clients for it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from fxcrm.adapters.platforms.mt4 import Mt4BridgeClient
from fxcrm.adapters.simulators.mt4 import (
    DEV_MT4_KEY_ID,
    DEV_MT4_SECRET,
    Mt4SimConfig,
    Mt4SimState,
    Mt4SimulatorThread,
)

SERVER_OFFSET_HOURS = 3.0  # EEST: the MT4 server clock runs three hours ahead of UTC
SESSION_TIMEOUT = 60.0


class FakeClock:
    """The simulator's wall clock, moved by hand (starts at the real time)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def sim_config(**overrides: Any) -> Mt4SimConfig:
    return Mt4SimConfig(
        server_utc_offset_hours=SERVER_OFFSET_HOURS,
        session_timeout_seconds=SESSION_TIMEOUT,
        **overrides,
    )


@pytest.fixture(scope="session")
def mt4_server() -> Iterator[Mt4SimulatorThread]:
    """One simulator thread for the run; tests get it with a fresh state (`mt4_sim`)."""
    with Mt4SimulatorThread(sim_config()) as sim:
        yield sim


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mt4_sim(mt4_server: Mt4SimulatorThread, clock: FakeClock) -> Mt4SimulatorThread:
    """The simulator with a fresh state (no users, trades or sessions) on a hand-moved clock."""
    mt4_server.reset(sim_config(), clock=clock)
    return mt4_server


@pytest.fixture
def mt4_state(mt4_sim: Mt4SimulatorThread) -> Mt4SimState:
    return mt4_sim.state


def make_client(
    sim: Mt4SimulatorThread,
    *,
    key_id: str = DEV_MT4_KEY_ID,
    secret: str = DEV_MT4_SECRET,
    **options: Any,
) -> Mt4BridgeClient:
    return Mt4BridgeClient(sim.base_url, key_id, secret, timeout=5.0, **options)


@pytest.fixture
async def mt4_client(mt4_sim: Mt4SimulatorThread) -> AsyncIterator[Mt4BridgeClient]:
    client = make_client(mt4_sim)
    yield client
    await client.close()
