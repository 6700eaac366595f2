"""Killing the worker mid-onboarding, while MT5 is creating the account, still ends with one account."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from fxcrm.adapters.simulators.mt5 import Mt5SimulatorThread
from fxcrm.models import TradingAccount
from tests.e2e.faults import SlowResponses
from tests.e2e.portal import onboarding, register, upload_both
from tests.e2e.stack import Stack, eventually, running_stack

ROOT = Path(__file__).resolve().parents[2]


def _start_worker(stack: Stack, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FXCRM_ENV": "test",
        "DATABASE_URL": stack.settings.database_url,
        "FXCRM_TEMPORAL_ADDRESS": stack.settings.temporal_address,
        "FXCRM_TASK_QUEUE": stack.settings.task_queue,
        "FXCRM_KYC_BASE_URL": stack.kyc_url,
        "FXCRM_SANCTIONS_PATHS": stack.settings.sanctions_paths,
        "FXCRM_LOG_JSON": "true",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "fxcrm.cli", "worker"],
        env=env,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
async def crash_stack(
    database_url: str,
    temporal_env: WorkflowEnvironment,
    e2e_mt5: Mt5SimulatorThread,
    e2e_tls: tuple[Path, Path],
) -> AsyncIterator[Stack]:
    async with running_stack(
        database_url, temporal_env.client, e2e_mt5, e2e_tls[0], in_process_worker=False
    ) as s:
        yield s


async def test_worker_killed_while_account_is_created(crash_stack: Stack, tmp_path: Path) -> None:
    stack = crash_stack
    slow = stack.mt5.app
    assert isinstance(slow, SlowResponses)
    log = tmp_path / "worker.log"
    worker = _start_worker(stack, log)
    try:
        trader_id, token = await register(stack.http)
        await upload_both(stack.http, token)
        # MT5 creates the user, then answers late: the worker dies before it hears back.
        seen_before = slow.seen_count
        slow.delay_paths["/api/user/add"] = 8.0
        await eventually(lambda: asyncio.sleep(0, slow.seen_count > seen_before), within=60)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        slow.delay_paths.clear()

        worker = _start_worker(stack, log)

        async def active() -> bool:
            return (await onboarding(stack.http, token))["stage"] == "active"

        await eventually(active, within=90)
    finally:
        slow.delay_paths.clear()
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
    users = [u for u in stack.mt5.state.users.values() if trader_id in repr(u)]
    assert len(users) == 1, log.read_text()[-3000:]
    async with stack.sessions() as session:
        rows = await session.scalar(
            select(func.count())
            .select_from(TradingAccount)
            .where(TradingAccount.trader_id == trader_id)
        )
    assert rows == 1
