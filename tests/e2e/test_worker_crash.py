"""Killing the worker mid-onboarding, while MT5 is creating the account, still ends with one account."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

from sqlalchemy import func, select

from fxcrm.models import TradingAccount
from tests.e2e.faults import SlowResponses
from tests.e2e.portal import onboarding, register, upload_both
from tests.e2e.stack import Stack, eventually, start_worker


async def test_worker_killed_while_account_is_created(
    stack_without_worker: Stack, tmp_path: Path
) -> None:
    stack = stack_without_worker
    slow = stack.mt5.app
    assert isinstance(slow, SlowResponses)
    log = tmp_path / "worker.log"
    worker = start_worker(stack, log)
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

        worker = start_worker(stack, log)

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
