"""Fixtures: the MT5 Web API simulator over HTTPS in a background thread, and clients for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from fxcrm.adapters.platforms.mt5 import Mt5WebApiClient
from fxcrm.adapters.simulators.mt5 import (
    Mt5SimConfig,
    Mt5SimGroup,
    Mt5SimulatorThread,
)
from fxcrm.adapters.simulators.tls import ensure_self_signed_cert
from fxcrm.core.config import DEV_MT5_PASSWORD

MANAGER = 1000
MANAGER_PASSWORD = DEV_MT5_PASSWORD
SERVER_OFFSET_HOURS = 3.0  # EEST: the trade-server clock is three hours ahead of UTC
TINY_GROUP = "demo\\tiny"  # a two-login range, to exhaust it


def sim_config() -> Mt5SimConfig:
    config = Mt5SimConfig(server_utc_offset_hours=SERVER_OFFSET_HOURS)
    config.groups.append(
        Mt5SimGroup(name=TINY_GROUP, leverage_max=100, login_min=9000, login_max=9001)
    )
    return config


@pytest.fixture(scope="session")
def mt5_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(certfile, keyfile): one self-signed certificate for the whole run."""
    return ensure_self_signed_cert(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def mt5_server(mt5_tls: tuple[Path, Path]) -> Iterator[Mt5SimulatorThread]:
    """One HTTPS simulator thread for the run; tests get it with a fresh state (`mt5_sim`)."""
    certfile, keyfile = mt5_tls
    with Mt5SimulatorThread(sim_config(), certfile=certfile, keyfile=keyfile) as sim:
        yield sim


@pytest.fixture
def mt5_sim(mt5_server: Mt5SimulatorThread) -> Mt5SimulatorThread:
    """The simulator with a fresh state: no users, no deals, no sessions."""
    mt5_server.reset(sim_config())
    return mt5_server


def make_client(
    sim: Mt5SimulatorThread,
    cafile: Path,
    *,
    login: int = MANAGER,
    password: str = MANAGER_PASSWORD,
    **options: Any,
) -> Mt5WebApiClient:
    return Mt5WebApiClient(
        sim.base_url,
        manager_login=login,
        password=password,
        server_utc_offset_hours=SERVER_OFFSET_HOURS,
        verify=cafile,  # pins the simulator's self-signed certificate
        timeout=5.0,
        **options,
    )


@pytest.fixture
async def mt5_client(
    mt5_sim: Mt5SimulatorThread, mt5_tls: tuple[Path, Path]
) -> AsyncIterator[Mt5WebApiClient]:
    client = make_client(mt5_sim, mt5_tls[0])
    yield client
    await client.close()
