"""Monthly IB settlement: IbSettlementWorkflow (`ib-settlement-{brand}-{period}`) closes a brand's
period, then settles every IB of it (fxcrm.activities.ib_settlement); the monthly Temporal
Schedule (`ib-settlement-{brand}`, fxcrm.schedules) starts ScheduledIbSettlementWorkflow, which
works out the previous month from the scheduled time and runs the period's workflow as a child,
skipping a period that has already run (the child's id is the business key).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from fxcrm.activities.ib_settlement import IbSettlementActivities
    from fxcrm.domain.ib.settlement import period_of, previous_period
    from fxcrm.workflows.ib_settlement_types import (
        IbSettlementInput,
        IbSettlementResult,
        ScheduledIbSettlement,
        ib_settlement_workflow_id,
    )

SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
DB_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))


@workflow.defn
class IbSettlementWorkflow:
    @workflow.run
    async def run(self, inp: IbSettlementInput) -> IbSettlementResult:
        # Refuses (non-retryable) an open or future period, or one a later settlement covered.
        closed = await workflow.execute_activity_method(
            IbSettlementActivities.close_ib_period,
            inp,
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=DB_RETRY,
        )
        return await workflow.execute_activity_method(
            IbSettlementActivities.settle_ib_period,
            closed,
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=DB_RETRY,
        )


def settlement_period(scheduled_month: str) -> str:
    """The schedule fires in the month after the period it settles."""
    return previous_period(scheduled_month)


@workflow.defn
class ScheduledIbSettlementWorkflow:
    @workflow.run
    async def run(self, inp: ScheduledIbSettlement) -> IbSettlementResult | None:
        at = workflow.info().typed_search_attributes.get(SCHEDULED_START) or workflow.now()
        period = settlement_period(period_of(at))
        try:
            return await workflow.execute_child_workflow(
                IbSettlementWorkflow.run,
                IbSettlementInput(brand=inp.brand, period=period),
                id=ib_settlement_workflow_id(inp.brand, period),
                # A period that ran (or runs) is not run again; a failed run may be retried.
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            )
        except WorkflowAlreadyStartedError:
            workflow.logger.info("IB settlement of %s %s already ran", inp.brand, period)
            return None
