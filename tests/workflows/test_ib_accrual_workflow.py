"""IbAccrualWorkflow's loop with a fake activity on the time-skipping test server: a backlog is
accrued call after call until caught up, then the workflow pauses; a `wake` signal ends the pause
at once; it continues as new and keeps its totals."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio import activity
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from fxcrm.workflows.ib_accrual import IbAccrualWorkflow, accrual_workflow_id
from fxcrm.workflows.ib_accrual_types import AccrualState, AccrueInput, AccrueResult
from tests.conftest import temporal_test_server


class FakeAccrual:
    """Each call reads `per_call` deals of a backlog; `backlog` can grow between calls."""

    def __init__(self, backlog: int, per_call: int = 10) -> None:
        self.backlog = backlog
        self.per_call = per_call
        self.upto = 0
        self.calls = 0

    def activities(self) -> list[object]:
        @activity.defn(name="accrue_deals")
        async def accrue_deals(inp: AccrueInput) -> AccrueResult:
            self.calls += 1
            read = min(self.per_call, self.backlog - self.upto)
            self.upto += read
            return AccrueResult(
                read=read,
                accrued=2 * read,
                excluded=0,
                upto=self.upto,
                caught_up=self.upto == self.backlog,
            )

        return [accrue_deals]


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=temporal_test_server()
    ) as environment:
        yield environment


async def test_catches_up_then_pauses_and_continues_as_new(env: WorkflowEnvironment) -> None:
    fake = FakeAccrual(backlog=35)
    queue = f"accrual-{uuid.uuid4()}"
    state = AccrualState(server_id="mt5-x", interval_seconds=10, iterations_before_new_run=2)
    async with Worker(
        env.client, task_queue=queue, workflows=[IbAccrualWorkflow], activities=fake.activities()
    ):
        handle = await env.client.start_workflow(
            IbAccrualWorkflow.run,
            state,
            id=accrual_workflow_id(f"x-{uuid.uuid4().hex[:6]}"),
            task_queue=queue,
        )
        await env.sleep(1)
        assert fake.calls == 4  # 10 + 10 + 10 + 5: one call after another, no pause between
        await env.sleep(45)
        # Then one call per pause of 10 s, across continue-as-new every two rounds.
        assert 7 <= fake.calls <= 9
        seen = await handle.query(IbAccrualWorkflow.get_state)
        await handle.terminate("test done")
    assert seen.deals_read == 35 and seen.accrued == 70 and seen.upto == 35
    assert seen.runs >= 2


async def test_wake_skips_the_pause(env: WorkflowEnvironment) -> None:
    fake = FakeAccrual(backlog=5)
    queue = f"accrual-{uuid.uuid4()}"
    state = AccrualState(server_id="mt5-x", interval_seconds=3600)
    async with Worker(
        env.client, task_queue=queue, workflows=[IbAccrualWorkflow], activities=fake.activities()
    ):
        handle = await env.client.start_workflow(
            IbAccrualWorkflow.run,
            state,
            id=accrual_workflow_id(f"x-{uuid.uuid4().hex[:6]}"),
            task_queue=queue,
        )
        for _ in range(100):
            if (await handle.query(IbAccrualWorkflow.get_state)).upto == 5:
                break
            await asyncio.sleep(0.05)
        assert fake.calls == 1
        fake.backlog = 12  # new deals ingested; the sync (or an operator) wakes the accrual
        await handle.signal(IbAccrualWorkflow.wake)
        for _ in range(100):
            if (await handle.query(IbAccrualWorkflow.get_state)).upto == 12:
                break
            await asyncio.sleep(0.05)
        seen = await handle.query(IbAccrualWorkflow.get_state)
        await handle.terminate("test done")
    # Accrued without waiting out the hour (the test server skips time only in env.sleep).
    assert seen.upto == 12 and fake.calls == 2
