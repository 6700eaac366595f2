"""ReconciliationWorkflow with the real activities on SQLite, a scripted PSP and the local Temporal
dev server: breaks of every kind found and stored once, fees booked once, re-runs upsert, the
midnight tolerance, and the daily schedule computing yesterday."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from fxcrm.activities.reconciliation import CLEARED_ON_RERUN, ReconciliationActivities
from fxcrm.adapters.psp.base import SettlementType
from fxcrm.adapters.psp.registry import PspRegistry
from fxcrm.domain.ledger import psp_clearing_code
from fxcrm.models import LedgerTransfer
from fxcrm.models.payments import ReconciliationBreak, ReconciliationRun
from fxcrm.schedules import ensure_reconciliation_schedules
from fxcrm.workflows.reconciliation import ReconciliationWorkflow, ScheduledReconciliationWorkflow
from fxcrm.workflows.reconciliation_types import (
    ReconciliationInput,
    ReconciliationResult,
    ScheduledReconciliation,
    reconciliation_schedule_id,
    reconciliation_workflow_id,
)
from tests.e2e.stack import eventually
from tests.workflows.reconciliation_seed import (
    FakePsp,
    balance,
    invariants_ok,
    seed_deposit,
    seed_trader,
    settlement,
)

DAY = date(2024, 5, 14)
NOON = datetime(2024, 5, 14, 12, tzinfo=UTC)
PAYMENT, PAYOUT = SettlementType.PAYMENT, SettlementType.PAYOUT


class Env:
    def __init__(
        self, client: Client, queue: str, psp: FakePsp, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self.client, self.queue, self.psp, self.sessions = client, queue, psp, sessions

    async def reconcile(self, day: date) -> ReconciliationResult:
        return await self.client.execute_workflow(
            ReconciliationWorkflow.run,
            ReconciliationInput(psp=self.psp.provider, day=day),
            id=f"{reconciliation_workflow_id(self.psp.provider, day)}-{uuid.uuid4().hex[:6]}",
            task_queue=self.queue,
        )

    async def breaks(self, run_id: str) -> dict[str, ReconciliationBreak]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(ReconciliationBreak).where(ReconciliationBreak.run_id == run_id)
            )
            return {row.break_key: row for row in rows}


@pytest.fixture
async def env(
    temporal_env: WorkflowEnvironment, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Env]:
    psp = FakePsp(f"fake{uuid.uuid4().hex[:8]}")
    activities = ReconciliationActivities(sessions, PspRegistry({psp.provider: psp}, psp.provider))  # type: ignore[dict-item]
    queue = f"recon-{uuid.uuid4().hex[:8]}"
    async with Worker(
        temporal_env.client,
        task_queue=queue,
        workflows=[ReconciliationWorkflow, ScheduledReconciliationWorkflow],
        activities=[activities.fetch_settlement_report, activities.reconcile_day],
    ):
        yield Env(temporal_env.client, queue, psp, sessions)


async def test_breaks_of_every_kind_fees_and_reruns(env: Env) -> None:
    psp = env.psp.provider
    brand, trader = await seed_trader(env.sessions)
    ok = await seed_deposit(env.sessions, brand, trader, psp=psp, amount=10_000, credited_at=NOON)
    short = await seed_deposit(env.sessions, brand, trader, psp=psp, amount=5_000, credited_at=NOON)
    phantom = await seed_deposit(env.sessions, brand, trader, psp=psp, amount=700, credited_at=NOON)
    unplaced = await seed_deposit(
        env.sessions, brand, trader, psp=psp, amount=2_000, credited_at=NOON, to_account=True
    )
    env.psp.reports[DAY] = [
        settlement(f"pi_{ok[:12]}", PAYMENT, "100.00", "2.90", our_id=ok, at=NOON),
        settlement(f"pi_{short[:12]}", PAYMENT, "49.00", "1.00", our_id=short, at=NOON),
        settlement(f"pi_{unplaced[:12]}", PAYMENT, "20.00", our_id=unplaced, at=NOON),
        settlement("pi_stranger", PAYMENT, "33.00", our_id="not-ours", at=NOON),
        settlement("st_1", SettlementType.SETTLEMENT, "-50.00", at=NOON),
    ]

    first = await env.reconcile(DAY)
    assert (first.status, first.lines, first.matched) == ("breaks", 5, 2)
    assert first.fees_booked == 2
    found = await env.breaks(first.run_id)
    assert sorted(found) == sorted(
        [
            f"amount_mismatch:payment:{short}",
            f"missing_at_psp:payment:{phantom}",
            "missing_in_ledger:payment:not-ours",
            f"platform_mismatch:payment:{unplaced}",
        ]
    )
    assert first.breaks == 4
    mismatch = found[f"amount_mismatch:payment:{short}"]
    assert mismatch.payment_id == short
    assert mismatch.expected and mismatch.expected["amount"] == 5_000
    assert mismatch.actual and mismatch.actual["amount"] == 4_900

    # Again, as the schedule's retry or finance would: same run, same breaks, no second fee.
    again = await env.reconcile(DAY)
    assert again.run_id == first.run_id and again.breaks == 4 and again.fees_booked == 0
    assert len(await env.breaks(first.run_id)) == 4
    async with env.sessions() as session:
        runs = await session.scalar(
            select(func.count()).select_from(ReconciliationRun).where(ReconciliationRun.psp == psp)
        )
        fees = await session.scalar(
            select(func.count())
            .select_from(LedgerTransfer)
            .where(LedgerTransfer.idempotency_key.like(f"psp-fee:{psp}:%"))
        )
    assert (runs, fees) == (1, 2)
    # Clearing: deposits 177.00 credited, fees 3.90 booked.
    assert await balance(env.sessions, brand, psp_clearing_code(psp, "USD")) == 17_700 - 390

    # The PSP corrects its report: the amount break clears, the others stay.
    env.psp.reports[DAY][1] = settlement(
        f"pi_{short[:12]}", PAYMENT, "50.00", "1.00", our_id=short, at=NOON
    )
    third = await env.reconcile(DAY)
    assert third.breaks == 3
    cleared = (await env.breaks(first.run_id))[f"amount_mismatch:payment:{short}"]
    assert (cleared.status, cleared.resolution) == ("resolved", CLEARED_ON_RERUN)
    await invariants_ok(env.sessions)


async def test_a_credit_near_midnight_is_matched_across_days(env: Env) -> None:
    psp = env.psp.provider
    brand, trader = await seed_trader(env.sessions)
    late = datetime(2024, 5, 14, 23, 58, tzinfo=UTC)
    booked = datetime(2024, 5, 15, 0, 3, tzinfo=UTC)
    payment = await seed_deposit(
        env.sessions, brand, trader, psp=psp, amount=1_000, credited_at=late
    )
    env.psp.reports[DAY + timedelta(days=1)] = [
        settlement(f"pi_{payment[:12]}", PAYMENT, "10.00", our_id=payment, at=booked)
    ]
    day14 = await env.reconcile(DAY)
    assert (day14.status, day14.breaks) == ("clean", 0)
    assert DAY + timedelta(days=1) in env.psp.report_calls  # the neighbour day was read
    day15 = await env.reconcile(DAY + timedelta(days=1))
    assert (day15.status, day15.matched, day15.breaks) == ("clean", 1, 0)
    await invariants_ok(env.sessions)


async def test_payouts_of_withdrawals_are_matched(env: Env) -> None:
    from fxcrm.models import Payment

    psp = env.psp.provider
    brand, trader = await seed_trader(env.sessions)
    withdrawal = uuid.uuid4().hex
    async with env.sessions() as session, session.begin():
        session.add(
            Payment(
                id=withdrawal,
                brand_id=brand,
                trader_id=trader,
                kind="withdrawal",
                status="paid",
                idempotency_key=withdrawal,
                request_hash="0" * 64,
                workflow_id=f"withdrawal-{withdrawal}",
                currency="USD",
                amount=3_000,
                source_kind="wallet",
                target_kind="psp",
                psp=psp,
                provider_ref="po_1",
                completed_at=NOON,
            )
        )
    env.psp.reports[DAY] = [
        # Part refunded to the card the client deposited with, the rest paid out.
        settlement(
            "pi_dep", SettlementType.REFUND, "-10.00", our_id=f"wd-{withdrawal}-dep", at=NOON
        ),
        settlement("po_1", PAYOUT, "-20.00", "0.10", our_id=withdrawal, at=NOON),
    ]
    result = await env.reconcile(DAY)
    assert (result.status, result.matched, result.fees_booked) == ("clean", 1, 1)


async def test_the_daily_schedule_reconciles_yesterday(env: Env) -> None:
    psp = env.psp.provider
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    # Started as the schedule starts it (no scheduled time: the workflow's clock is used).
    result = await env.client.execute_workflow(
        ScheduledReconciliationWorkflow.run,
        ScheduledReconciliation(psp=psp),
        id=f"sched-{uuid.uuid4().hex[:8]}",
        task_queue=env.queue,
    )
    assert result is not None and result.day == yesterday
    # The real schedule: created (idempotently), triggered, reconciles yesterday too.
    env.psp.reports[yesterday] = []
    ids = await ensure_reconciliation_schedules(env.client, [psp], env.queue)
    assert ids == await ensure_reconciliation_schedules(env.client, [psp], env.queue)
    handle = env.client.get_schedule_handle(reconciliation_schedule_id(psp))
    try:
        async with env.sessions() as session:
            before = await session.scalar(
                select(ReconciliationRun.finished_at).where(
                    ReconciliationRun.psp == psp, ReconciliationRun.day == yesterday
                )
            )
        await handle.trigger()

        async def rerun_finished() -> bool:
            async with env.sessions() as session:
                finished = await session.scalar(
                    select(ReconciliationRun.finished_at).where(
                        ReconciliationRun.psp == psp, ReconciliationRun.day == yesterday
                    )
                )
            return finished is not None and finished != before

        await eventually(rerun_finished)
    finally:
        await handle.delete()
