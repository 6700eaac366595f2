"""PlatformSyncWorkflow (`platform-sync-{server}`): ingest closed deals, mirror accounts, raise alerts.

Runs forever: each round catches up on deals, then mirrors every account and checks alert
thresholds, then sleeps. It continues as new every few hundred rounds to keep its history short.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from fxcrm.activities.platform_sync import PlatformSyncActivities
    from fxcrm.workflows.platform_sync_types import IngestInput, ServerRef, SyncState

# A platform that is down is retried with backoff for as long as it takes; the sync catches up.
PLATFORM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)


def sync_workflow_id(server_id: str) -> str:
    return f"platform-sync-{server_id}"


@workflow.defn
class PlatformSyncWorkflow:
    def __init__(self) -> None:
        self._state: SyncState | None = None
        self._wake = False

    @workflow.run
    async def run(self, state: SyncState) -> None:
        self._state = state
        for _ in range(state.iterations_before_new_run):
            await self._catch_up_deals()
            await workflow.execute_activity_method(
                PlatformSyncActivities.sync_accounts,
                ServerRef(server_id=state.server_id),
                start_to_close_timeout=timedelta(minutes=5),
                heartbeat_timeout=timedelta(minutes=1),
                retry_policy=PLATFORM_RETRY,
            )
            self._wake = False
            await self._sleep(state.interval_seconds)
            if workflow.info().is_continue_as_new_suggested():
                break
        state.runs += 1
        workflow.continue_as_new(state)

    async def _catch_up_deals(self) -> None:
        state = self.state
        while True:
            result = await workflow.execute_activity_method(
                PlatformSyncActivities.ingest_deals,
                IngestInput(
                    server_id=state.server_id,
                    overlap_seconds=state.overlap_seconds,
                    max_deals=state.batch_limit,
                ),
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(minutes=1),
                retry_policy=PLATFORM_RETRY,
            )
            state.deals_ingested += result.inserted
            if result.caught_up:
                return

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: self._wake, timeout=timedelta(seconds=seconds))

    @workflow.signal
    def sync_now(self) -> None:
        """Skip the rest of the pause (after a back-office change, or from an operator)."""
        self._wake = True

    @workflow.query
    def get_state(self) -> SyncState:
        return self.state

    @property
    def state(self) -> SyncState:
        assert self._state is not None
        return self._state
