"""PlatformSyncWorkflow (`platform-sync-{server}`): ingest closed deals, mirror accounts, raise alerts.

Runs forever in rounds: each round catches up on deals from the cursor (a short tail overlap),
sweeps the long overlap when one is due (`SyncState`), starts an account mirror when one is due and
none is running, then sleeps `interval_seconds`. The account mirror runs beside the deal rounds, so
a slow or rate-limited account listing (Match-Trader allows 500 requests a minute, and one listing
costs a request per account) never holds back deal ingestion. A catch-up that inserted deals wakes
`ib-accrual-{server}`, so that IB commissions do not wait for its pause. It continues as new every
few hundred rounds to keep its history short.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from fxcrm.activities.platform_sync import PlatformSyncActivities
    from fxcrm.activities.trading_pnl import TradingPnlActivities
    from fxcrm.workflows.ib_accrual import accrual_workflow_id
    from fxcrm.workflows.platform_sync_types import IngestInput, ServerRef, SyncState

# A platform that is down is retried with backoff for as long as it takes; the sync catches up.
PLATFORM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
# Running workflows recorded rounds without the wake signal: they replay without it.
WAKE_ACCRUAL_PATCH = "wake-ib-accrual"


def sync_workflow_id(server_id: str) -> str:
    return f"platform-sync-{server_id}"


def _due(last: datetime | None, every_seconds: float, now: datetime) -> bool:
    return last is None or (now - last).total_seconds() >= every_seconds


@workflow.defn
class PlatformSyncWorkflow:
    def __init__(self) -> None:
        self._state: SyncState | None = None
        self._wake = False
        self._accounts_wanted = False

    @workflow.run
    async def run(self, state: SyncState) -> None:
        self._state = state
        accounts: asyncio.Task[None] | None = None
        for _ in range(state.iterations_before_new_run):
            await self._catch_up_deals(state.tail_overlap_seconds)
            now = workflow.now()
            if _due(state.swept_at, state.sweep_every_seconds, now):
                # Back over the overlap and over the time since the last sweep (the rounds in
                # between read only the tail), plus the tail for clock differences.
                since_last = (now - state.swept_at).total_seconds() if state.swept_at else 0.0
                state.swept_at = now
                await self._catch_up_deals(
                    state.overlap_seconds + math.ceil(since_last) + state.tail_overlap_seconds
                )
            if accounts is None or accounts.done():
                if accounts is not None:
                    await accounts  # a permanent failure fails the workflow, as before
                    accounts = None
                if self._accounts_wanted or _due(
                    state.accounts_synced_at, state.accounts_every_seconds, now
                ):
                    state.accounts_synced_at = now
                    self._accounts_wanted = False
                    accounts = asyncio.create_task(self._sync_accounts())
            self._wake = False
            await self._sleep(state.interval_seconds)
            if workflow.info().is_continue_as_new_suggested():
                break
        if accounts is not None:
            await accounts
        state.runs += 1
        workflow.continue_as_new(state)

    async def _catch_up_deals(self, overlap_seconds: int) -> None:
        """Reads from the cursor back `overlap_seconds` until caught up; the batches after the
        first start at the cursor the one before moved (less the tail)."""
        state = self.state
        overlap = overlap_seconds
        inserted = 0
        while True:
            result = await workflow.execute_activity_method(
                PlatformSyncActivities.ingest_deals,
                IngestInput(
                    server_id=state.server_id,
                    overlap_seconds=overlap,
                    max_deals=state.batch_limit,
                ),
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(minutes=1),
                retry_policy=PLATFORM_RETRY,
            )
            state.deals_ingested += result.inserted
            inserted += result.inserted
            if result.caught_up:
                break
            overlap = state.tail_overlap_seconds
        if inserted and workflow.patched(WAKE_ACCRUAL_PATCH):
            await self._wake_accrual()

    async def _wake_accrual(self) -> None:
        accrual = workflow.get_external_workflow_handle(accrual_workflow_id(self.state.server_id))
        # No accrual running for this server (not started, or ended): nothing to wake.
        with contextlib.suppress(ApplicationError):
            await accrual.signal("wake")

    async def _sync_accounts(self) -> None:
        # Realized P/L first, so that the ledger mirrors include every ingested deal when the
        # platform balances are compared with them.
        while True:
            posted = await workflow.execute_activity_method(
                TradingPnlActivities.post_trading_pnl,
                ServerRef(server_id=self.state.server_id),
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=PLATFORM_RETRY,
            )
            if posted.caught_up:
                break
        await workflow.execute_activity_method(
            PlatformSyncActivities.sync_accounts,
            ServerRef(server_id=self.state.server_id),
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=PLATFORM_RETRY,
        )

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: self._wake, timeout=timedelta(seconds=seconds))

    @workflow.signal
    def sync_now(self) -> None:
        """Skip the rest of the pause and mirror the accounts at once (after a back-office change,
        or from an operator)."""
        self._wake = True
        self._accounts_wanted = True

    @workflow.query
    def get_state(self) -> SyncState:
        return self.state

    @property
    def state(self) -> SyncState:
        assert self._state is not None
        return self._state
