"""IbAccrualWorkflow (`ib-accrual-{server}`): IB commissions accrued from the ingested deals.

Runs forever beside `platform-sync-{server}`: accrues every deal past the accrual cursor until
caught up, pauses `interval_seconds` (a `wake` signal cuts the pause short), and starts again, so
an IB sees a deal's commission seconds after the deal was ingested. The activity is exactly once
behind its cursor, so a retried or repeated round accrues nothing twice. Continues as new when
Temporal suggests it or after `iterations_before_new_run` rounds.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from fxcrm.activities.ib_accrual import IbAccrualActivities
    from fxcrm.workflows.ib_accrual_types import AccrualState, AccrueInput

# The database being away is retried for as long as it takes; the accrual catches up.
ACCRUAL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)


def accrual_workflow_id(server_id: str) -> str:
    return f"ib-accrual-{server_id}"


@workflow.defn
class IbAccrualWorkflow:
    def __init__(self) -> None:
        self._state: AccrualState | None = None
        self._wake = False

    @workflow.run
    async def run(self, state: AccrualState) -> None:
        self._state = state
        for _ in range(state.iterations_before_new_run):
            # A wake that arrives while deals are being accrued skips the next pause.
            self._wake = False
            await self._catch_up()
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._wake, timeout=timedelta(seconds=state.interval_seconds)
                )
            if workflow.info().is_continue_as_new_suggested():
                break
        state.runs += 1
        workflow.continue_as_new(state)

    async def _catch_up(self) -> None:
        state = self.state
        while True:
            result = await workflow.execute_activity_method(
                IbAccrualActivities.accrue_deals,
                AccrueInput(server_id=state.server_id, max_deals=state.max_deals),
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(minutes=1),
                retry_policy=ACCRUAL_RETRY,
            )
            state.deals_read += result.read
            state.accrued += result.accrued
            state.upto = result.upto
            if result.caught_up:
                return

    @workflow.signal
    def wake(self) -> None:
        """New deals are in (or an operator asks): accrue now instead of after the pause."""
        self._wake = True

    @workflow.query
    def get_state(self) -> AccrualState:
        return self.state

    @property
    def state(self) -> AccrualState:
        assert self._state is not None
        return self._state
