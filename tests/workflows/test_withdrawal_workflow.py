"""WithdrawalWorkflow with fake activities on the time-skipping test server: four eyes, refusals,
escalation and expiry, payout failure, card refunds, and the trading-account source."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from fxcrm.activities.money import PlatformMove, PlatformMoved
from fxcrm.adapters.psp.base import PayoutStatus, PspEvent
from fxcrm.core.temporal import register_search_attributes
from fxcrm.domain.payments import WithdrawalStatus
from fxcrm.workflows.withdrawal import WithdrawalWorkflow
from fxcrm.workflows.withdrawal_types import (
    AuditEntry,
    CancelRequest,
    Decision,
    FundsCheck,
    HoldResult,
    PaymentRef,
    PayoutOrder,
    PayoutOutcome,
    PayoutPlan,
    RefundOrder,
    RefundOutcome,
    Release,
    Released,
    SourceAccount,
    StatusChange,
    WithdrawalInput,
    WithdrawalState,
)
from tests.conftest import temporal_test_server
from tests.workflows.histories import record

TRADER = "trader-1"
AMOUNT = 600_000  # 6,000.00: above the default four-eyes threshold


class FakeActivities:
    """Same activity names as WithdrawalActivities and MoneyActivities; scripted answers."""

    def __init__(self) -> None:
        self.approvals_required = 2
        self.free_margin_ok = True
        self.platform_refuses_withdraw = False
        self.hold_refused = False
        self.refunds: list[RefundOrder] = []
        self.refund_ok = True
        self.payout_statuses = ["processing", "paid"]
        self.calls: list[str] = []
        self.statuses: list[StatusChange] = []
        self.audits: list[AuditEntry] = []
        self.releases: list[Release] = []
        self.moves: list[PlatformMove] = []
        self.payouts: list[PayoutOrder] = []
        self.escalations = 0

    def activities(self) -> list[object]:
        @activity.defn(name="withdrawal.check_account_funds")
        async def check_account_funds(ref: PaymentRef) -> FundsCheck:
            self.calls.append("check_account_funds")
            if self.free_margin_ok:
                return FundsCheck(ok=True)
            return FundsCheck(ok=False, reason="free margin 10 is less than 6000 USD")

        @activity.defn(name="move_platform_balance")
        async def move_platform_balance(move: PlatformMove) -> PlatformMoved:
            self.moves.append(move)
            if move.kind.value == "withdraw" and self.platform_refuses_withdraw:
                raise ApplicationError(
                    "not enough money", type="Platform.insufficient_funds", non_retryable=True
                )
            return PlatformMoved(ticket="1", amount=move.amount, posted_now=True)

        @activity.defn(name="withdrawal.move_account_to_wallet")
        async def move_account_to_wallet(ref: PaymentRef) -> None:
            self.calls.append("move_account_to_wallet")

        @activity.defn(name="withdrawal.hold_funds")
        async def hold_funds(ref: PaymentRef) -> HoldResult:
            self.calls.append("hold_funds")
            if self.hold_refused:
                raise ApplicationError(
                    "not enough", type="Ledger.InsufficientFunds", non_retryable=True
                )
            return HoldResult(
                risk_flags=["new_destination"],
                approvals_required=self.approvals_required,
                escalation_hours=24,
                expiry_hours=168,
            )

        @activity.defn(name="withdrawal.set_status")
        async def set_status(change: StatusChange) -> None:
            self.statuses.append(change)

        @activity.defn(name="withdrawal.record_audit")
        async def record_audit(entry: AuditEntry) -> None:
            self.audits.append(entry)

        @activity.defn(name="withdrawal.escalate")
        async def escalate(ref: PaymentRef) -> None:
            self.escalations += 1

        @activity.defn(name="withdrawal.alert_payout_stuck")
        async def alert_payout_stuck(ref: PaymentRef) -> None:
            self.calls.append("alert_payout_stuck")

        @activity.defn(name="withdrawal.plan_payout")
        async def plan_payout(ref: PaymentRef) -> PayoutPlan:
            refunded = sum(r.amount for r in self.refunds)
            return PayoutPlan(refunds=self.refunds, payout=AMOUNT - refunded)

        @activity.defn(name="withdrawal.refund_to_card")
        async def refund_to_card(order: RefundOrder) -> RefundOutcome:
            self.calls.append(f"refund:{order.amount}")
            if self.refund_ok:
                return RefundOutcome(ok=True, refund_ref="re_1")
            return RefundOutcome(ok=False, failure_code="not_refundable")

        @activity.defn(name="withdrawal.create_payout")
        async def create_payout(order: PayoutOrder) -> PayoutOutcome:
            self.payouts.append(order)
            return PayoutOutcome(provider_ref="po_1", status=self.payout_statuses[0])

        @activity.defn(name="withdrawal.payout_status")
        async def payout_status(ref: PaymentRef) -> PayoutOutcome:
            self.calls.append("payout_status")
            status = self.payout_statuses[-1]
            failed = status in {"failed", "returned"}
            return PayoutOutcome(
                provider_ref="po_1",
                status=status,
                failure_code="account_closed" if failed else None,
                failure_message="Account is closed." if failed else None,
            )

        @activity.defn(name="withdrawal.release_hold")
        async def release_hold(release: Release) -> Released:
            self.releases.append(release)
            return Released(returned=AMOUNT - release.posted)

        @activity.defn(name="withdrawal.keep_in_wallet")
        async def keep_in_wallet(ref: PaymentRef) -> None:
            self.calls.append("keep_in_wallet")

        return [
            check_account_funds,
            move_platform_balance,
            move_account_to_wallet,
            hold_funds,
            set_status,
            record_audit,
            escalate,
            alert_payout_stuck,
            plan_payout,
            refund_to_card,
            create_payout,
            payout_status,
            release_hold,
            keep_in_wallet,
        ]

    @property
    def final(self) -> WithdrawalStatus:
        return self.statuses[-1].status


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=temporal_test_server()
    ) as environment:
        await register_search_attributes(environment.client)
        yield environment


Handle = WorkflowHandle[WithdrawalWorkflow, WithdrawalState]


async def _start(
    env: WorkflowEnvironment, fake: FakeActivities, *, from_account: bool = False
) -> tuple[Worker, Handle]:
    queue = f"withdrawal-{uuid.uuid4()}"
    worker = Worker(
        env.client, task_queue=queue, workflows=[WithdrawalWorkflow], activities=fake.activities()
    )
    payment_id = uuid.uuid4().hex
    handle = await env.client.start_workflow(
        WithdrawalWorkflow.run,
        WithdrawalInput(
            payment_id=payment_id,
            trader_id=TRADER,
            brand_id="brand-1",
            currency="USD",
            amount=AMOUNT,
            source=SourceAccount(account_id="acc-1", server_id="mt5-demo", login=500001)
            if from_account
            else None,
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
        ),
        id=f"withdrawal-{payment_id}",
        task_queue=queue,
    )
    return worker, handle


async def _awaiting(handle: Handle) -> WithdrawalState:
    for _ in range(200):
        state: WithdrawalState = await handle.query("state", result_type=WithdrawalState)
        if state.status == WithdrawalStatus.AWAITING_APPROVAL:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"never awaiting approval; at {state.status}")


def _decision(approver: str, decision: str = "approve", role: str = "finance") -> Decision:
    return Decision(approver_id=approver, role=role, decision=decision, reason="checked")


def _payout_event(key: str) -> PspEvent:
    return PspEvent(
        provider="sim",
        event_key=key,
        provider_ref="po_1",
        object_kind="payout",
        type="payout.paid",
        payout_status=PayoutStatus.PAID,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


async def test_four_eyes_two_distinct_approvers_then_paid(env: WorkflowEnvironment) -> None:
    fake = FakeActivities()
    worker, handle = await _start(env, fake)
    async with worker:
        state = await _awaiting(handle)
        assert state.approvals_required == 2 and state.risk_flags == ["new_destination"]
        await handle.signal(WithdrawalWorkflow.decision, _decision("fin-a"))
        await handle.signal(WithdrawalWorkflow.decision, _decision("fin-b"))
        await handle.signal(WithdrawalWorkflow.psp_event, _payout_event("evt-1"))
        await handle.signal(WithdrawalWorkflow.psp_event, _payout_event("evt-1"))  # redelivered
        result = await handle.result()
        await record(handle, "withdrawal_four_eyes_paid")
    assert result.status == WithdrawalStatus.PAID
    assert [a.approver_id for a in result.approvals] == ["fin-a", "fin-b"]
    assert [s.status for s in fake.statuses] == [WithdrawalStatus.APPROVED, WithdrawalStatus.PAID]
    assert fake.payouts == [PayoutOrder(payment_id=result.payment_id, amount=AMOUNT)]
    assert fake.releases == [Release(payment_id=result.payment_id, posted=AMOUNT, to_account=False)]
    assert result.refusals == []


async def test_requester_wrong_role_and_same_approver_twice_are_refused(
    env: WorkflowEnvironment,
) -> None:
    fake = FakeActivities()
    worker, handle = await _start(env, fake)
    async with worker:
        await _awaiting(handle)
        await handle.signal(WithdrawalWorkflow.decision, _decision(TRADER))  # the requester
        await handle.signal(WithdrawalWorkflow.decision, _decision("sup-1", role="support"))
        await handle.signal(WithdrawalWorkflow.decision, _decision("fin-a"))
        await handle.signal(WithdrawalWorkflow.decision, _decision("fin-a"))  # twice
        await asyncio.sleep(0.5)
        state: WithdrawalState = await handle.query("state", result_type=WithdrawalState)
        assert state.status == WithdrawalStatus.AWAITING_APPROVAL  # one approval is not enough
        assert [a.approver_id for a in state.approvals] == ["fin-a"]
        await handle.signal(WithdrawalWorkflow.decision, _decision("fin-b"))
        result = await handle.result()
    assert result.status == WithdrawalStatus.PAID
    reasons = [r.reason for r in result.refusals]
    assert len(reasons) == 3
    assert "requester" in reasons[0]
    assert "role support" in reasons[1]
    assert "already decided" in reasons[2]
    refused = [a for a in fake.audits if a.action == "withdrawal.signal_refused.decision"]
    assert len(refused) == 3  # every refusal is in the audit log


async def test_finance_reject_voids_the_hold(env: WorkflowEnvironment) -> None:
    fake = FakeActivities()
    worker, handle = await _start(env, fake)
    async with worker:
        await _awaiting(handle)
        await handle.signal(WithdrawalWorkflow.decision, _decision("fin-a"))
        await handle.signal(WithdrawalWorkflow.decision, _decision("fin-b", "reject"))
        result = await handle.result()
    assert result.status == WithdrawalStatus.REJECTED
    assert result.failure_code == "rejected_by_finance"
    assert fake.releases == [Release(payment_id=result.payment_id, posted=0, to_account=False)]
    assert fake.payouts == []


async def test_escalation_alert_once_then_expiry_voids_the_hold(env: WorkflowEnvironment) -> None:
    fake = FakeActivities()
    fake.approvals_required = 1
    worker, handle = await _start(env, fake)
    async with worker:
        await _awaiting(handle)
        result = await handle.result()  # time skips: nobody decides
    assert result.status == WithdrawalStatus.EXPIRED
    assert result.escalated and fake.escalations == 1
    assert result.awaiting_since is not None and result.ended_at is not None
    assert timedelta(hours=168) <= result.ended_at - result.awaiting_since < timedelta(hours=169)
    assert fake.releases == [Release(payment_id=result.payment_id, posted=0, to_account=False)]
    assert fake.final == WithdrawalStatus.EXPIRED


async def test_payout_failure_voids_the_hold_and_alerts(env: WorkflowEnvironment) -> None:
    fake = FakeActivities()
    fake.approvals_required = 1
    fake.payout_statuses = ["processing", "failed"]
    worker, handle = await _start(env, fake)
    async with worker:
        await _awaiting(handle)
        await handle.signal(WithdrawalWorkflow.decision, _decision("fin-a"))
        result = await handle.result()  # no webhook: the polling fallback finds it failed
    assert result.status == WithdrawalStatus.FAILED
    assert result.failure_code == "account_closed"
    assert "payout_status" in fake.calls
    assert fake.releases == [Release(payment_id=result.payment_id, posted=0, to_account=False)]
    assert fake.final == WithdrawalStatus.FAILED


async def test_card_refund_first_and_what_was_refunded_stays_paid(
    env: WorkflowEnvironment,
) -> None:
    fake = FakeActivities()
    fake.approvals_required = 1
    fake.refunds = [
        RefundOrder(payment_id="p", deposit_id="dep-1", provider_ref="pay_1", amount=200_000)
    ]
    fake.payout_statuses = ["processing", "failed"]
    worker, handle = await _start(env, fake)
    async with worker:
        await _awaiting(handle)
        await handle.signal(WithdrawalWorkflow.decision, _decision("fin-a"))
        result = await handle.result()
    assert "refund:200000" in fake.calls
    assert fake.payouts == [PayoutOrder(payment_id=result.payment_id, amount=AMOUNT - 200_000)]
    assert result.status == WithdrawalStatus.FAILED
    # The refund reached the card: that part of the hold is posted, the rest released.
    assert fake.releases == [
        Release(payment_id=result.payment_id, posted=200_000, to_account=False)
    ]


async def test_account_source_platform_refusal_moves_nothing(env: WorkflowEnvironment) -> None:
    fake = FakeActivities()
    fake.platform_refuses_withdraw = True
    worker, handle = await _start(env, fake, from_account=True)
    async with worker:
        result = await handle.result()
    assert result.status == WithdrawalStatus.REJECTED
    assert result.failure_code == "platform_refused"
    assert "insufficient_funds" in (result.reason or "")
    assert [m.kind.value for m in fake.moves] == ["withdraw"]
    assert "hold_funds" not in fake.calls and "move_account_to_wallet" not in fake.calls
    assert fake.releases == []


async def test_account_source_free_margin_recheck_refuses(env: WorkflowEnvironment) -> None:
    fake = FakeActivities()
    fake.free_margin_ok = False
    worker, handle = await _start(env, fake, from_account=True)
    async with worker:
        result = await handle.result()
    assert result.status == WithdrawalStatus.REJECTED
    assert result.failure_code == "insufficient_free_margin"
    assert fake.moves == [] and fake.releases == []
    assert fake.statuses[-1].reason and "free margin" in fake.statuses[-1].reason


async def test_account_source_cancel_returns_funds_to_the_account(
    env: WorkflowEnvironment,
) -> None:
    fake = FakeActivities()
    worker, handle = await _start(env, fake, from_account=True)
    async with worker:
        await _awaiting(handle)
        await handle.signal(WithdrawalWorkflow.cancel, CancelRequest(trader_id="someone-else"))
        await handle.signal(WithdrawalWorkflow.cancel, CancelRequest(trader_id=TRADER))
        result = await handle.result()
    assert result.status == WithdrawalStatus.REJECTED
    assert result.failure_code == "cancelled"
    assert len(result.refusals) == 1
    wd, back = fake.moves
    assert (wd.kind.value, back.kind.value) == ("withdraw", "deposit")
    assert wd.ref.startswith("wd:") and back.ref.startswith("wr:")
    assert back.amount == wd.amount
    assert fake.releases == [Release(payment_id=result.payment_id, posted=0, to_account=True)]


async def test_account_source_platform_refuses_the_return_keeps_it_in_wallet(
    env: WorkflowEnvironment,
) -> None:
    fake = FakeActivities()
    fake.approvals_required = 1
    worker, handle = await _start(env, fake, from_account=True)

    original = fake.moves

    class RefuseDeposits(list[PlatformMove]):
        def append(self, move: PlatformMove) -> None:
            super().append(move)
            if move.kind.value == "deposit":
                raise ApplicationError(
                    "account disabled", type="Platform.permission", non_retryable=True
                )

    fake.moves = RefuseDeposits(original)
    async with worker:
        await _awaiting(handle)
        await handle.signal(WithdrawalWorkflow.decision, _decision("fin-a", "reject"))
        result = await handle.result()
    assert result.status == WithdrawalStatus.REJECTED
    assert "keep_in_wallet" in fake.calls


async def test_hold_refused_on_wallet_source_rejects_without_release(
    env: WorkflowEnvironment,
) -> None:
    fake = FakeActivities()
    fake.hold_refused = True
    worker, handle = await _start(env, fake)
    async with worker:
        result = await handle.result()
    assert result.status == WithdrawalStatus.REJECTED
    assert result.failure_code == "insufficient_funds"
    assert fake.releases == []
