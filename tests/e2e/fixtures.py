"""Stack fixtures shared by the API and end-to-end tests: a real Temporal dev server and the whole stack."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from fxcrm.adapters.simulators.mt5 import Mt5SimulatorThread
from fxcrm.adapters.simulators.tls import ensure_self_signed_cert
from fxcrm.core.temporal import BRAND, STAGE, TRADER_ID
from tests.conftest import temporal_cli
from tests.e2e.faults import SlowResponses
from tests.e2e.stack import Stack, running_stack


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=temporal_cli(),
        search_attributes=[TRADER_ID, BRAND, STAGE],
        dev_server_extra_args=[
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
        ],
    ) as env:
        yield env


@pytest.fixture(scope="session")
def e2e_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return ensure_self_signed_cert(tmp_path_factory.mktemp("e2e-certs"))


@pytest.fixture(scope="session")
def e2e_mt5(e2e_tls: tuple[Path, Path]) -> Iterator[Mt5SimulatorThread]:
    certfile, keyfile = e2e_tls
    sim = Mt5SimulatorThread(certfile=certfile, keyfile=keyfile)
    sim.app = SlowResponses(sim.app)  # type: ignore[assignment]
    with sim:
        yield sim


@pytest.fixture(scope="session")
async def stack(
    database_url: str,
    temporal_env: WorkflowEnvironment,
    e2e_mt5: Mt5SimulatorThread,
    e2e_tls: tuple[Path, Path],
) -> AsyncIterator[Stack]:
    async with running_stack(database_url, temporal_env.client, e2e_mt5, e2e_tls[0]) as running:
        yield running


@pytest.fixture
async def stack_without_worker(
    database_url: str,
    temporal_env: WorkflowEnvironment,
    e2e_mt5: Mt5SimulatorThread,
    e2e_tls: tuple[Path, Path],
) -> AsyncIterator[Stack]:
    """The stack with no worker of its own: the test runs it as a process (stack.start_worker)."""
    async with running_stack(
        database_url, temporal_env.client, e2e_mt5, e2e_tls[0], in_process_worker=False
    ) as running:
        yield running
