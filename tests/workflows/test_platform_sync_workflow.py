"""PlatformSyncWorkflow's round shape with fake activities, on the time-skipping test server: deal
rounds read the short tail, the long overlap is swept on its own period, accounts are mirrored on
theirs (beside the deal rounds, not in each of them)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from temporalio import activity, workflow
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from fxcrm.activities.trading_pnl import PnlPosted
from fxcrm.workflows.platform_sync import PlatformSyncWorkflow
from fxcrm.workflows.platform_sync_types import (
    AccountsSynced,
    IngestInput,
    IngestResult,
    ServerRef,
    SyncState,
)
from tests.conftest import temporal_test_server


class FakeSync:
    def __init__(self) -> None:
        self.overlaps: list[int] = []
        self.accounts = 0
        self.pnl_before_accounts = 0
        self.pnl_calls = 0
        # Per server, what its successive ingest calls insert (then nothing).
        self.inserted: dict[str, list[int]] = {}

    def activities(self) -> list[object]:
        @activity.defn(name="ingest_deals")
        async def ingest_deals(inp: IngestInput) -> IngestResult:
            self.overlaps.append(inp.overlap_seconds)
            planned = self.inserted.get(inp.server_id)
            inserted = planned.pop(0) if planned else 0
            return IngestResult(
                read=inserted, inserted=inserted, until=datetime.now(UTC), caught_up=True
            )

        @activity.defn(name="sync_accounts")
        async def sync_accounts(ref: ServerRef) -> AccountsSynced:
            self.accounts += 1
            return AccountsSynced(accounts=0, alerts_raised=0, alerts_cleared=0)

        @activity.defn(name="post_trading_pnl")
        async def post_trading_pnl(ref: ServerRef) -> PnlPosted:
            # A backlog takes two calls; the mirror waits for both.
            self.pnl_calls += 1
            caught_up = self.pnl_calls % 2 == 0
            if caught_up:
                self.pnl_before_accounts += 1
            return PnlPosted(deals=1, transfers=0, posted_upto=self.pnl_calls, caught_up=caught_up)

        return [ingest_deals, sync_accounts, post_trading_pnl]


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=temporal_test_server()
    ) as environment:
        yield environment


async def test_tail_every_round_sweep_and_accounts_on_their_own_period(
    env: WorkflowEnvironment,
) -> None:
    fake = FakeSync()
    queue = f"sync-{uuid.uuid4()}"
    state = SyncState(
        server_id="mt5-demo",
        interval_seconds=1,
        overlap_seconds=300,
        tail_overlap_seconds=10,
        sweep_every_seconds=20,
        accounts_every_seconds=10,
    )
    async with Worker(
        env.client, task_queue=queue, workflows=[PlatformSyncWorkflow], activities=fake.activities()
    ):
        handle = await env.client.start_workflow(
            PlatformSyncWorkflow.run, state, id=f"platform-sync-{uuid.uuid4()}", task_queue=queue
        )
        await env.sleep(65)
        synced = await handle.query(PlatformSyncWorkflow.get_state)
        await handle.terminate("test done")
    tails = [o for o in fake.overlaps if o == 10]
    sweeps = [o for o in fake.overlaps if o != 10]
    assert len(tails) >= 30  # about one round a second
    # The first sweep reads the overlap (plus the tail); each later one also the time since the
    # sweep before, so a deal up to 300 s late is read whatever the rounds in between did.
    assert sweeps[0] == 310
    assert 3 <= len(sweeps) <= 4
    assert all(sweep >= 300 + 20 + 10 for sweep in sweeps[1:])
    assert 6 <= fake.accounts <= 8  # every 10 s, not every round
    # Realized P/L reaches the ledger before every mirror compares balances with it.
    assert fake.pnl_before_accounts in {fake.accounts, fake.accounts + 1}
    assert synced.swept_at is not None and synced.accounts_synced_at is not None


@workflow.defn(name="IbAccrualWorkflow", sandboxed=False)
class FakeAccrual:
    def __init__(self) -> None:
        self.wakes = 0

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal
    def wake(self) -> None:
        self.wakes += 1

    @workflow.query
    def woken(self) -> int:
        return self.wakes


async def test_rounds_that_insert_deals_wake_the_accrual(env: WorkflowEnvironment) -> None:
    """Only a catch-up that inserted deals signals `ib-accrual-{server}`; a server without an
    accrual workflow syncs on regardless."""
    fake = FakeSync()
    queue = f"sync-{uuid.uuid4()}"
    server = f"mt5-{uuid.uuid4().hex[:8]}"
    lonely = f"mt5-{uuid.uuid4().hex[:8]}"
    fake.inserted = {server: [0, 3, 0, 0, 5], lonely: [4, 0, 2]}
    state = SyncState(server_id=server, interval_seconds=1, sweep_every_seconds=3600)
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[PlatformSyncWorkflow, FakeAccrual],
        activities=fake.activities(),
    ):
        accrual = await env.client.start_workflow(
            FakeAccrual.run, id=f"ib-accrual-{server}", task_queue=queue
        )
        sync = await env.client.start_workflow(
            PlatformSyncWorkflow.run, state, id=f"platform-sync-{server}", task_queue=queue
        )
        alone = await env.client.start_workflow(
            PlatformSyncWorkflow.run,
            SyncState(server_id=lonely, interval_seconds=1, sweep_every_seconds=3600),
            id=f"platform-sync-{lonely}",
            task_queue=queue,
        )
        await env.sleep(20)
        woken = await accrual.query(FakeAccrual.woken)
        lonely_state = await alone.query(PlatformSyncWorkflow.get_state)
        for handle in (sync, alone, accrual):
            await handle.terminate("test done")
    assert woken == 2
    # Its wakes found nobody, and it went on.
    assert lonely_state.deals_ingested == 6 and len(fake.overlaps) > 20
