"""Temporal Schedules fxcrm runs on: the daily PSP reconciliation of every configured provider.

`ensure_reconciliation_schedules` is idempotent: an existing schedule is updated to the current
spec, a missing one created. Each schedule (`psp-reconciliation-{psp}`) starts
ScheduledReconciliationWorkflow at RECONCILE_AT (UTC) every day, which reconciles yesterday.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.client import ScheduleOverlapPolicy as Overlap

from fxcrm.workflows.reconciliation_types import (
    ScheduledReconciliation,
    reconciliation_schedule_id,
)

# 02:30 UTC: late enough for providers to have closed yesterday's report.
RECONCILE_AT = (2, 30)


def reconciliation_schedule(psp: str, task_queue: str) -> Schedule:
    hour, minute = RECONCILE_AT
    return Schedule(
        action=ScheduleActionStartWorkflow(
            "ScheduledReconciliationWorkflow",
            ScheduledReconciliation(psp=psp),
            id=f"{reconciliation_schedule_id(psp)}-scheduled",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(hour=[ScheduleRange(hour)], minute=[ScheduleRange(minute)])
            ]
        ),
        # A missed day (server down) is still run when it comes back, within a day.
        policy=SchedulePolicy(overlap=Overlap.BUFFER_ONE, catchup_window=timedelta(days=1)),
    )


async def ensure_reconciliation_schedules(
    client: Client, psps: list[str], task_queue: str
) -> list[str]:
    created = []
    for psp in psps:
        schedule_id = reconciliation_schedule_id(psp)
        schedule = reconciliation_schedule(psp, task_queue)
        try:
            await client.create_schedule(schedule_id, schedule)
        except ScheduleAlreadyRunningError:

            def replace(_: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=new)

            await client.get_schedule_handle(schedule_id).update(replace)
        created.append(schedule_id)
    return created
