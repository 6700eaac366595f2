"""Temporal Schedules fxcrm runs on: the daily PSP reconciliation of every configured provider, and
the monthly IB settlement of every brand (`ib-settlement-{brand}`, on BrandConfig.ib.settlement_day
at SETTLE_AT UTC, starting ScheduledIbSettlementWorkflow, which settles the previous month).

`ensure_reconciliation_schedules` is idempotent: an existing schedule is updated to the current
spec, a missing one created. Each schedule (`psp-reconciliation-{psp}`) starts
ScheduledReconciliationWorkflow at RECONCILE_AT (UTC) every day, which reconciles yesterday.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
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

from fxcrm.workflows.ib_settlement_types import ScheduledIbSettlement, ib_settlement_schedule_id
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


# ---------------------------------------------------------------- IB settlement, monthly per brand

# 03:00 UTC on the brand's settlement day: after the period's grace for late deals (2 h).
SETTLE_AT = (3, 0)


def ib_settlement_schedule(brand: str, settlement_day: int, task_queue: str) -> Schedule:
    hour, minute = SETTLE_AT
    return Schedule(
        action=ScheduleActionStartWorkflow(
            "ScheduledIbSettlementWorkflow",
            ScheduledIbSettlement(brand=brand),
            id=f"{ib_settlement_schedule_id(brand)}-scheduled",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    day_of_month=[ScheduleRange(settlement_day)],
                    hour=[ScheduleRange(hour)],
                    minute=[ScheduleRange(minute)],
                )
            ]
        ),
        # A missed run (server down) still runs when it comes back, within a week.
        policy=SchedulePolicy(overlap=Overlap.BUFFER_ONE, catchup_window=timedelta(days=7)),
    )


async def ensure_ib_settlement_schedules(
    client: Client, brands: list[tuple[str, int]], task_queue: str
) -> list[str]:
    """One schedule per (brand code, settlement day); idempotent like the reconciliation ones."""
    created = []
    for brand, day in brands:
        schedule_id = ib_settlement_schedule_id(brand)
        schedule = ib_settlement_schedule(brand, day, task_queue)
        try:
            await client.create_schedule(schedule_id, schedule)
        except ScheduleAlreadyRunningError:

            def replace(_: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=new)

            await client.get_schedule_handle(schedule_id).update(replace)
        created.append(schedule_id)
    return created


async def brand_settlement_days(
    sessions: async_sessionmaker[AsyncSession],
) -> list[tuple[str, int]]:
    """(brand code, settlement day) of every brand, from BrandConfig.ib."""
    from fxcrm.domain.brand import BrandConfig
    from fxcrm.models import Brand

    async with sessions() as session:
        brands = (await session.execute(select(Brand.code, Brand.config))).all()
    return [(code, BrandConfig.model_validate(config).ib.settlement_day) for code, config in brands]
