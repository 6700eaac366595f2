"""PSP reconciliation: ReconciliationWorkflow (`psp-reconciliation-{psp}-{day}`) compares one UTC day
of a provider's settlement report with the ledger; ScheduledReconciliationWorkflow is what the daily
Temporal Schedule (`psp-reconciliation-{psp}`, fxcrm.schedules) starts: it works out "yesterday"
from the schedule's own time and runs the day's workflow as a child.

Why a starter: a schedule's action has a fixed input and a fixed workflow id, but the day to
reconcile changes every day and is part of the id. The day comes from the search attribute
TemporalScheduledStartTime that Temporal sets on scheduled runs (deterministic: it is in the
history), so a run started late by a catch-up still reconciles the day it was scheduled for.
"""

from __future__ import annotations

from datetime import date, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from fxcrm.activities.reconciliation import ReconciliationActivities
    from fxcrm.workflows.reconciliation_types import (
        ReconcileInput,
        ReconciliationInput,
        ReconciliationResult,
        ReportRequest,
        ScheduledReconciliation,
        SettlementReport,
        reconciliation_workflow_id,
    )

SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")

# A PSP that is down is retried with backoff for hours; the run finishes when it answers.
PSP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=5)
)
DB_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))


@workflow.defn
class ReconciliationWorkflow:
    @workflow.run
    async def run(self, inp: ReconciliationInput) -> ReconciliationResult:
        report = await self._report(inp.psp, inp.day)
        # The neighbouring days: a payment credited near midnight may be booked on the other side.
        nearby = []
        for other in (inp.day - timedelta(days=1), inp.day + timedelta(days=1)):
            nearby.extend((await self._report(inp.psp, other)).lines)
        return await workflow.execute_activity_method(
            ReconciliationActivities.reconcile_day,
            ReconcileInput(psp=inp.psp, day=inp.day, report=report, nearby=nearby),
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=DB_RETRY,
        )

    async def _report(self, psp: str, day: date) -> SettlementReport:
        return await workflow.execute_activity_method(
            ReconciliationActivities.fetch_settlement_report,
            ReportRequest(psp=psp, day=day),
            start_to_close_timeout=timedelta(minutes=5),
            schedule_to_close_timeout=timedelta(hours=12),
            retry_policy=PSP_RETRY,
        )


def scheduled_day(scheduled: date, days_back: int) -> date:
    return scheduled - timedelta(days=days_back)


@workflow.defn
class ScheduledReconciliationWorkflow:
    @workflow.run
    async def run(self, inp: ScheduledReconciliation) -> ReconciliationResult | None:
        at = workflow.info().typed_search_attributes.get(SCHEDULED_START) or workflow.now()
        day = scheduled_day(at.date(), inp.days_back)
        try:
            return await workflow.execute_child_workflow(
                ReconciliationWorkflow.run,
                ReconciliationInput(psp=inp.psp, day=day),
                id=reconciliation_workflow_id(inp.psp, day),
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            )
        except WorkflowAlreadyStartedError:
            # Finance started this day already: that run does the work.
            workflow.logger.info("reconciliation of %s %s already running", inp.psp, day)
            return None
