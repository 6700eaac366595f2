"""AccountChangeWorkflow: an error from input the activity cannot use fails at once, not after ten
attempts while the dealer's request hangs (issue 9, item 5)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from fxcrm.workflows.account_change import AccountChangeWorkflow
from fxcrm.workflows.platform_sync_types import AccountChange, AccountChangeResult
from tests.conftest import temporal_test_server


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=temporal_test_server()
    ) as environment:
        yield environment


async def test_an_overflow_in_the_activity_is_not_retried(env: WorkflowEnvironment) -> None:
    attempts = 0

    @activity.defn(name="change_account")
    async def change_account(change: AccountChange) -> AccountChangeResult:
        nonlocal attempts
        attempts += 1
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    queue = f"account-change-{uuid.uuid4()}"
    change = AccountChange(
        server_id="mt5-demo",
        login=2**64,
        leverage=100,
        actor_id="staff-1",
        actor_role="dealer",
        reason="test",
        brand_ids=["b"],
    )
    async with Worker(
        env.client, task_queue=queue, workflows=[AccountChangeWorkflow], activities=[change_account]
    ):
        with pytest.raises(WorkflowFailureError):
            await env.client.execute_workflow(
                AccountChangeWorkflow.run,
                change,
                id=f"account-change-{uuid.uuid4()}",
                task_queue=queue,
            )
    assert attempts == 1
