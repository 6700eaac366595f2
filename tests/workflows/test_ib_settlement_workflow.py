"""IbSettlementWorkflow with the real activities on SQLite and the local Temporal dev server: a
closed period is paid once (a second run and the monthly starter pay nobody twice), an open
period fails the workflow with a typed non-retryable error, the monthly schedule is created
idempotently and settles the previous month."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from fxcrm.activities.ib_settlement import IbSettlementActivities
from fxcrm.domain.ib.settlement import period_of, previous_period
from fxcrm.schedules import ensure_ib_settlement_schedules
from fxcrm.workflows.ib_settlement import IbSettlementWorkflow, ScheduledIbSettlementWorkflow
from fxcrm.workflows.ib_settlement_types import (
    IbSettlementInput,
    ScheduledIbSettlement,
    ib_settlement_schedule_id,
    ib_settlement_workflow_id,
)
from tests.activities.test_ib_settlement import invariants_ok, new_world, transfers_of

Sessions = async_sessionmaker[AsyncSession]


class Env:
    def __init__(self, client: Client, queue: str, sessions: Sessions) -> None:
        self.client, self.queue, self.sessions = client, queue, sessions


@pytest.fixture
async def env(temporal_env: WorkflowEnvironment, sessions: Sessions) -> AsyncIterator[Env]:
    activities = IbSettlementActivities(sessions)
    queue = f"ib-settlement-{uuid.uuid4().hex[:8]}"
    async with Worker(
        temporal_env.client,
        task_queue=queue,
        workflows=[IbSettlementWorkflow, ScheduledIbSettlementWorkflow],
        activities=[activities.close_ib_period, activities.settle_ib_period],
    ):
        yield Env(temporal_env.client, queue, sessions)


async def test_settles_a_period_once_and_refuses_an_open_one(env: Env) -> None:
    world = await new_world(env.sessions, minimum_payout="10")
    await world.ib("a")
    await world.ib("b")
    await world.trader("t", "a")
    await world.trade("t", "a", "25.129", "2026-01")
    await world.trade("t", "b", "3", "2026-01", depth=2)
    inp = IbSettlementInput(brand=world.code, period="2026-01")
    workflow_id = ib_settlement_workflow_id(world.code, "2026-01")
    first = await env.client.execute_workflow(
        IbSettlementWorkflow.run, inp, id=workflow_id, task_queue=env.queue
    )
    assert (first.ibs, first.paid, first.carried, first.paid_total) == (2, 1, 1, "25.12")
    # Run again (finance's re-run, a backfill): the same settlements, no new transfer.
    second = await env.client.execute_workflow(
        IbSettlementWorkflow.run, inp, id=f"{workflow_id}-again", task_queue=env.queue
    )
    assert (second.paid, second.settled_now) == (1, 0)
    assert await transfers_of(env.sessions, world.brand_id, "2026-01") == 1
    assert await world.wallet("a") == Decimal("25.12")
    await invariants_ok(env.sessions)

    current = period_of(datetime.now(UTC))
    with pytest.raises(WorkflowFailureError) as failed:
        await env.client.execute_workflow(
            IbSettlementWorkflow.run,
            IbSettlementInput(brand=world.code, period=current),
            id=ib_settlement_workflow_id(world.code, current),
            task_queue=env.queue,
        )
    cause = failed.value.cause
    assert isinstance(cause, ActivityError) and isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "IbSettlementRefused" and cause.cause.non_retryable
    assert cause.cause.details == ("period_open",)


async def test_the_monthly_starter_settles_the_previous_month_once(env: Env) -> None:
    world = await new_world(env.sessions, minimum_payout="0")
    await world.ib("a")
    await world.trader("t", "a")
    last_month = previous_period(period_of(datetime.now(UTC)))
    await world.trade("t", "a", "7.5", last_month)
    # Started as the schedule starts it (no scheduled time: the workflow's clock is used).
    result = await env.client.execute_workflow(
        ScheduledIbSettlementWorkflow.run,
        ScheduledIbSettlement(brand=world.code),
        id=f"sched-{uuid.uuid4().hex[:8]}",
        task_queue=env.queue,
    )
    assert result is not None and (result.period, result.paid_total) == (last_month, "7.5")
    # The period's workflow ran: the starter skips it the next time.
    skipped = await env.client.execute_workflow(
        ScheduledIbSettlementWorkflow.run,
        ScheduledIbSettlement(brand=world.code),
        id=f"sched-{uuid.uuid4().hex[:8]}",
        task_queue=env.queue,
    )
    assert skipped is None
    assert await transfers_of(env.sessions, world.brand_id, last_month) == 1

    brands = [(world.code, 3)]
    ids = await ensure_ib_settlement_schedules(env.client, brands, env.queue)
    assert ids == await ensure_ib_settlement_schedules(env.client, brands, env.queue)
    handle = env.client.get_schedule_handle(ib_settlement_schedule_id(world.code))
    try:
        spec = (await handle.describe()).schedule.spec.calendars[0]
        assert [r.start for r in spec.day_of_month] == [3] and spec.hour[0].start == 3
    finally:
        await handle.delete()
