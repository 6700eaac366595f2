"""ChargebackWorkflow and RefundWorkflow with the real activities on SQLite and a scripted PSP:
a chargeback the wallet covers, one it cannot (the rest to a tracked receivable, never a negative
wallet, alerts), replays that book nothing twice, refunds that post or release their hold, and the
day's reconciliation matching the chargeback and booking its fee."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from fxcrm.activities.chargebacks import ChargebackActivities
from fxcrm.activities.reconciliation import ReconciliationActivities
from fxcrm.adapters.psp.base import PaymentStatus, PspError, SettlementType
from fxcrm.adapters.psp.registry import PspRegistry
from fxcrm.domain.ledger import (
    broker_expense_code,
    client_receivable_code,
    client_wallet_code,
    psp_clearing_code,
)
from fxcrm.models import LedgerTransfer, Payment, PaymentAlert
from fxcrm.workflows.chargeback import ChargebackWorkflow, RefundWorkflow
from fxcrm.workflows.chargeback_types import (
    RefundRequest,
    RefundResult,
    ReversalAction,
    ReversalBooked,
    ReversalInput,
    chargeback_workflow_id,
)
from fxcrm.workflows.reconciliation import ReconciliationWorkflow
from fxcrm.workflows.reconciliation_types import ReconciliationInput
from tests.workflows.reconciliation_seed import (
    FakePsp,
    balance,
    invariants_ok,
    seed_deposit,
    seed_trader,
    settlement,
    spend_to_trading,
)


class Env:
    def __init__(
        self, client: Client, queue: str, psp: FakePsp, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self.client, self.queue, self.psp, self.sessions = client, queue, psp, sessions

    async def chargeback(self, payment_id: str, event_key: str = "evt_1") -> ReversalBooked:
        return await self.client.execute_workflow(
            ChargebackWorkflow.run,
            ReversalInput(
                payment_id=payment_id, event_key=event_key, event_type="payment.charged_back"
            ),
            id=f"{chargeback_workflow_id(payment_id, event_key)}-{uuid.uuid4().hex[:4]}",
            task_queue=self.queue,
        )

    async def refund(self, payment_id: str, amount: int) -> RefundResult:
        refund_id = uuid.uuid4().hex
        return await self.client.execute_workflow(
            RefundWorkflow.run,
            RefundRequest(
                payment_id=payment_id,
                refund_id=refund_id,
                amount=amount,
                currency="USD",
                reason="client asked",
                requested_by="staff-1",
            ),
            id=f"refund-{payment_id}-{refund_id}",
            task_queue=self.queue,
        )

    async def payment(self, payment_id: str) -> Payment:
        async with self.sessions() as session:
            payment = await session.get(Payment, payment_id)
            assert payment is not None
            return payment

    async def alerts(self, payment_id: str) -> list[str]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(PaymentAlert.kind).where(PaymentAlert.payment_id == payment_id)
            )
            return sorted(rows)


@pytest.fixture
async def env(
    temporal_env: WorkflowEnvironment, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Env]:
    psp = FakePsp(f"fake{uuid.uuid4().hex[:8]}")
    registry = PspRegistry({psp.provider: psp}, psp.provider)  # type: ignore[dict-item]
    chargebacks = ChargebackActivities(sessions, registry)
    recon = ReconciliationActivities(sessions, registry)
    queue = f"cb-{uuid.uuid4().hex[:8]}"
    async with Worker(
        temporal_env.client,
        task_queue=queue,
        workflows=[ChargebackWorkflow, RefundWorkflow, ReconciliationWorkflow],
        activities=[
            chargebacks.assess_reversal,
            chargebacks.book_reversal,
            chargebacks.hold_refund,
            chargebacks.request_psp_refund,
            chargebacks.settle_refund,
            recon.fetch_settlement_report,
            recon.reconcile_day,
        ],
    ):
        yield Env(temporal_env.client, queue, psp, sessions)


async def test_chargeback_covered_by_the_wallet(env: Env) -> None:
    psp = env.psp.provider
    brand, trader = await seed_trader(env.sessions)
    payment = await seed_deposit(env.sessions, brand, trader, psp=psp, amount=10_000)
    env.psp.set_payment(f"pi_{payment[:12]}", PaymentStatus.CHARGED_BACK, "100.00")

    booked = await env.chargeback(payment)
    assert (booked.action, booked.from_wallet, booked.to_receivable) == (
        ReversalAction.CHARGEBACK,
        10_000,
        0,
    )
    assert (await env.payment(payment)).status == "charged_back"
    assert await balance(env.sessions, brand, client_wallet_code(trader, "USD")) == 0
    assert await balance(env.sessions, brand, psp_clearing_code(psp, "USD")) == 0
    assert await env.alerts(payment) == []

    # The same dispute delivered again (another event id): nothing moves twice.
    again = await env.chargeback(payment, event_key="evt_2")
    assert (again.from_wallet, again.to_receivable) == (10_000, 0)
    async with env.sessions() as session:
        legs = (
            await session.scalars(
                select(LedgerTransfer).where(LedgerTransfer.group_id == f"chargeback:{payment}")
            )
        ).all()
    assert [(t.kind, t.amount) for t in legs] == [("chargeback", 10_000)]
    await invariants_ok(env.sessions)


async def test_chargeback_after_trading_goes_to_a_receivable(env: Env) -> None:
    psp = env.psp.provider
    brand, trader = await seed_trader(env.sessions)
    payment = await seed_deposit(env.sessions, brand, trader, psp=psp, amount=10_000)
    await spend_to_trading(env.sessions, brand, trader, 7_000)  # the client traded most of it
    env.psp.set_payment(f"pi_{payment[:12]}", PaymentStatus.CHARGED_BACK, "100.00")

    booked = await env.chargeback(payment)
    assert (booked.from_wallet, booked.to_receivable) == (3_000, 7_000)
    assert await balance(env.sessions, brand, client_wallet_code(trader, "USD")) == 0
    assert await balance(env.sessions, brand, client_receivable_code(trader, "USD")) == 7_000
    assert await env.alerts(payment) == ["chargeback_receivable", "chargeback_trading_account"]
    stored = await env.payment(payment)
    assert stored.status == "charged_back"
    assert stored.details["chargeback"]["to_receivable"] == 7_000
    await invariants_ok(env.sessions)


async def test_events_that_take_nothing(env: Env) -> None:
    psp = env.psp.provider
    brand, trader = await seed_trader(env.sessions)
    payment = await seed_deposit(env.sessions, brand, trader, psp=psp, amount=5_000)
    # A dispute the broker won: the PSP says succeeded.
    env.psp.set_payment(f"pi_{payment[:12]}", PaymentStatus.SUCCEEDED, "50.00")
    assert (await env.chargeback(payment)).action is ReversalAction.NONE
    # A refund nobody asked fxcrm for: alerted, nothing taken from the client.
    env.psp.set_payment(
        f"pi_{payment[:12]}", PaymentStatus.PARTIALLY_REFUNDED, "50.00", refunded="20.00"
    )
    outside = await env.chargeback(payment, event_key="evt_refund")
    assert (outside.action, outside.from_wallet) == (ReversalAction.EXTERNAL_REFUND, 0)
    assert await env.alerts(payment) == ["refund_outside_fxcrm"]
    assert await balance(env.sessions, brand, client_wallet_code(trader, "USD")) == 5_000
    assert (await env.payment(payment)).status == "completed"
    await invariants_ok(env.sessions)


async def test_refunds_post_or_release_their_hold(env: Env) -> None:
    psp = env.psp.provider
    brand, trader = await seed_trader(env.sessions)
    payment = await seed_deposit(env.sessions, brand, trader, psp=psp, amount=10_000)
    wallet = client_wallet_code(trader, "USD")

    part = await env.refund(payment, 4_000)
    assert (part.status, part.payment_status) == ("succeeded", "completed")
    assert await balance(env.sessions, brand, wallet) == 6_000
    assert (await env.payment(payment)).details["refunded"] == 4_000

    env.psp.refund_error = PspError("card closed", code="card_closed")
    failed = await env.refund(payment, 1_000)
    assert (failed.status, failed.failure_code) == ("failed", "card_closed")
    assert await balance(env.sessions, brand, wallet) == 6_000  # the hold was released

    env.psp.refund_error = None
    too_much = await env.refund(payment, 9_000)  # the wallet holds 60.00 only
    assert (too_much.status, too_much.failure_code) == ("failed", "Ledger.InsufficientFunds")

    rest = await env.refund(payment, 6_000)
    assert (rest.status, rest.payment_status) == ("succeeded", "refunded")
    assert await balance(env.sessions, brand, wallet) == 0
    assert await balance(env.sessions, brand, psp_clearing_code(psp, "USD")) == 0
    await invariants_ok(env.sessions)


async def test_reconciliation_matches_chargebacks_and_refunds(env: Env) -> None:
    psp = env.psp.provider
    brand, trader = await seed_trader(env.sessions)
    charged = await seed_deposit(env.sessions, brand, trader, psp=psp, amount=10_000)
    refunded = await seed_deposit(env.sessions, brand, trader, psp=psp, amount=5_000)
    env.psp.set_payment(f"pi_{charged[:12]}", PaymentStatus.CHARGED_BACK, "100.00")
    await env.chargeback(charged)
    refund = await env.refund(refunded, 2_000)
    # The ledger booked them now; tell the PSP to report them on today's date.
    today = datetime.now(UTC)
    day, noon = today.date(), today
    env.psp.reports[day] = [
        settlement(
            f"pi_{charged[:12]}",
            SettlementType.CHARGEBACK,
            "-100.00",
            "15.00",
            our_id=charged,
            at=noon,
        ),
        settlement(
            f"pi_{refunded[:12]}", SettlementType.REFUND, "-20.00", our_id=refund.refund_id, at=noon
        ),
    ]
    result = await env.client.execute_workflow(
        ReconciliationWorkflow.run,
        ReconciliationInput(psp=psp, day=day),
        id=f"recon-{uuid.uuid4().hex[:8]}",
        task_queue=env.queue,
    )
    # The deposits themselves were credited today too but the PSP booked them on another day:
    # they are the only breaks (missing at the PSP today).
    async with env.sessions() as session:
        from fxcrm.models.payments import ReconciliationBreak

        kinds = sorted(
            (
                await session.scalars(
                    select(ReconciliationBreak.break_key).where(
                        ReconciliationBreak.run_id == result.run_id
                    )
                )
            ).all()
        )
    assert kinds == sorted(
        [f"missing_at_psp:payment:{charged}", f"missing_at_psp:payment:{refunded}"]
    )
    assert result.matched == 2 and result.fees_booked == 1
    assert await balance(env.sessions, brand, broker_expense_code("USD")) == 1_500
    await invariants_ok(env.sessions)
