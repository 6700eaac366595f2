"""DepositWorkflow with fake activities on the time-skipping test server: success to the wallet and
to a trading account, decline, expiry with polling, duplicate and out-of-order webhooks, a platform
that refuses the credit, and one that never answers (each step after `credited` is bounded)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from fxcrm.activities.money import PlatformMove, PlatformMoved
from fxcrm.adapters.psp.base import PaymentStatus, PspEvent
from fxcrm.core.temporal import register_search_attributes
from fxcrm.workflows.deposit import POST_CREDIT_BOUND, DepositWorkflow
from fxcrm.workflows.deposit_types import (
    CompleteInput,
    CreditFailedInput,
    CreditInput,
    CreditOut,
    DepositInput,
    DepositResult,
    FinishInput,
    PaymentRef,
    PspPaymentOut,
    StatusOut,
)
from tests.conftest import temporal_test_server
from tests.workflows.histories import record

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakePsp:
    """Stands in for DepositActivities and MoneyActivities: scripted PSP answers, recorded calls."""

    def __init__(self, created: PaymentStatus, fetched: list[PaymentStatus] | None = None) -> None:
        self.created = created
        self.fetched = fetched or [created]  # successive get_payment answers; the last repeats
        self.amount_received: Decimal | None = None
        self.failure_code: str | None = None
        self.platform_refuses = False
        self.platform_down_for: int | None = 0  # attempts that fail as an outage; None: all
        self.posted_anyway = False  # what the look for our reference finds
        self.complete_down_for = 0  # attempts of complete_account_deposit that fail
        self.create_down_for = 0  # attempts of create_psp_payment that fail (PSP outage)
        self.calls: list[str] = []
        self.credits: list[CreditInput] = []
        self.moves: list[PlatformMove] = []
        self.finished: list[FinishInput] = []
        self.alerts: list[CreditFailedInput] = []
        self.completed_with: list[str] = []

    def _out(self, status: PaymentStatus, recorded: str) -> PspPaymentOut:
        return PspPaymentOut(
            status=status,
            provider_ref="pay_1",
            amount_received=self.amount_received if status in _SETTLED else None,
            failure_code=self.failure_code if status == PaymentStatus.FAILED else None,
            recorded_status=recorded,
        )

    def activities(self) -> list[object]:
        @activity.defn(name="create_psp_payment")
        async def create_psp_payment(ref: PaymentRef) -> PspPaymentOut:
            self.calls.append("create")
            if self.calls.count("create") <= self.create_down_for:
                raise ApplicationError("sim POST /payments: timed out", type="Psp.timeout")
            recorded = "failed" if self.created == PaymentStatus.FAILED else "pending"
            return self._out(self.created, recorded)

        @activity.defn(name="fetch_psp_payment")
        async def fetch_psp_payment(ref: PaymentRef) -> PspPaymentOut:
            self.calls.append("fetch")
            status = self.fetched.pop(0) if len(self.fetched) > 1 else self.fetched[0]
            return self._out(status, "pending")

        @activity.defn(name="credit_deposit")
        async def credit_deposit(inp: CreditInput) -> CreditOut:
            self.calls.append("credit")
            self.credits.append(inp)
            to_account = self.to_account
            return CreditOut(
                status="credited" if to_account else "completed",
                credited=inp.amount_received or Decimal("100.00"),
                is_ftd=len(self.credits) == 1,
                server_id="mt5-demo" if to_account else None,
                login=500001 if to_account else None,
                since=T0 if to_account else None,
            )

        @activity.defn(name="move_platform_balance")
        async def move_platform_balance(move: PlatformMove) -> PlatformMoved:
            self.calls.append("platform")
            self.moves.append(move)
            if self.platform_refuses:
                raise ApplicationError(
                    "account disabled", type="Platform.invalid_request", non_retryable=True
                )
            down = self.platform_down_for
            if down is None or self.calls.count("platform") <= down:
                raise ApplicationError("MT5 trade/balance: timeout", type="Platform.unavailable")
            return PlatformMoved(ticket="T-1", amount=move.amount, posted_now=True)

        @activity.defn(name="find_platform_balance")
        async def find_platform_balance(move: PlatformMove) -> PlatformMoved | None:
            self.calls.append("lookup")
            if not self.posted_anyway:
                return None
            return PlatformMoved(ticket="T-late", amount=move.amount, posted_now=False)

        @activity.defn(name="complete_account_deposit")
        async def complete_account_deposit(inp: CompleteInput) -> StatusOut:
            self.calls.append("complete")
            self.completed_with.append(inp.platform_ticket)
            if self.calls.count("complete") <= self.complete_down_for:
                raise ApplicationError("database is locked", type="OperationalError")
            return StatusOut(status="completed")

        @activity.defn(name="mark_credit_failed")
        async def mark_credit_failed(inp: CreditFailedInput) -> StatusOut:
            self.calls.append("credit_failed")
            self.alerts.append(inp)
            return StatusOut(status="credit_failed")

        @activity.defn(name="finish_unpaid")
        async def finish_unpaid(inp: FinishInput) -> StatusOut:
            self.calls.append(f"finish:{inp.status}")
            self.finished.append(inp)
            return StatusOut(status=inp.status)

        return [
            create_psp_payment,
            fetch_psp_payment,
            credit_deposit,
            move_platform_balance,
            find_platform_balance,
            complete_account_deposit,
            mark_credit_failed,
            finish_unpaid,
        ]

    to_account = False


_SETTLED = {PaymentStatus.SUCCEEDED, PaymentStatus.UNDERPAID}


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=temporal_test_server()
    ) as environment:
        await register_search_attributes(environment.client)
        yield environment


Handle = WorkflowHandle[DepositWorkflow, DepositResult]


async def _start(
    env: WorkflowEnvironment, fake: FakePsp, *, to_account: bool = False, method: str = "card"
) -> tuple[Worker, Handle]:
    fake.to_account = to_account
    queue = f"deposit-{uuid.uuid4()}"
    worker = Worker(
        env.client, task_queue=queue, workflows=[DepositWorkflow], activities=fake.activities()
    )
    payment_id = uuid.uuid4().hex
    handle = await env.client.start_workflow(
        DepositWorkflow.run,
        DepositInput(
            payment_id=payment_id,
            trader_id="t-1",
            brand_id="b-1",
            method=method,
            to_account=to_account,
            expiry=timedelta(minutes=60),
        ),
        id=f"deposit-{payment_id}",
        task_queue=queue,
    )
    return worker, handle


def _event(key: str, status: PaymentStatus, seconds: int = 0) -> PspEvent:
    return PspEvent(
        provider="sim",
        event_key=key,
        provider_ref="pay_1",
        type=f"payment.{status.value}",
        status=status,
        created_at=T0 + timedelta(seconds=seconds),
    )


async def _wait_status(handle: Handle, status: str) -> None:
    for _ in range(200):
        state = await handle.query(DepositWorkflow.state)
        if state.status == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached {status}; at {state.status}")


async def test_card_that_succeeds_at_once_completes_to_the_wallet(env: WorkflowEnvironment) -> None:
    fake = FakePsp(PaymentStatus.SUCCEEDED)
    worker, handle = await _start(env, fake)
    async with worker:
        result = await handle.result()
        state = await handle.query(DepositWorkflow.state)
    assert result.status == "completed"
    assert fake.calls == ["create", "credit"]
    assert fake.credits[0].amount_received is None
    assert [h["status"] for h in state.history] == ["created", "pending", "completed"]


async def test_3ds_then_webhook_credits_the_trading_account_once(env: WorkflowEnvironment) -> None:
    fake = FakePsp(PaymentStatus.REQUIRES_ACTION, [PaymentStatus.SUCCEEDED])
    fake.amount_received = Decimal("100.00")
    worker, handle = await _start(env, fake, to_account=True)
    async with worker:
        await _wait_status(handle, "pending")
        succeeded = _event("evt-2", PaymentStatus.SUCCEEDED, 2)
        await handle.signal(DepositWorkflow.psp_event, succeeded)
        await handle.signal(DepositWorkflow.psp_event, succeeded)  # redelivered
        result = await handle.result()
        state = await handle.query(DepositWorkflow.state)
        await record(handle, "deposit_3ds_to_account")
    assert result.status == "completed"
    assert fake.calls.count("credit") == 1
    assert fake.calls.count("platform") == 1
    assert fake.calls[-2:] == ["platform", "complete"]
    move = fake.moves[0]
    assert move.amount == Decimal("100.00") and move.ref.startswith("dep:")
    assert move.login == 500001 and move.since == T0
    assert state.events_seen == 1


async def test_duplicate_and_out_of_order_webhooks_credit_once(env: WorkflowEnvironment) -> None:
    # The PSP answers "processing" to the first look, then "succeeded".
    fake = FakePsp(
        PaymentStatus.REQUIRES_ACTION, [PaymentStatus.PROCESSING, PaymentStatus.SUCCEEDED]
    )
    worker, handle = await _start(env, fake)
    async with worker:
        await _wait_status(handle, "pending")
        newer = _event("evt-3", PaymentStatus.SUCCEEDED, 3)
        older = _event("evt-2", PaymentStatus.PROCESSING, 2)
        await handle.signal(DepositWorkflow.psp_event, newer)
        await handle.signal(DepositWorkflow.psp_event, older)  # stale: no extra look
        await handle.signal(DepositWorkflow.psp_event, newer)
        result = await handle.result()
        state = await handle.query(DepositWorkflow.state)
        await record(handle, "deposit_out_of_order")
    assert result.status == "completed"
    assert fake.calls.count("credit") == 1
    assert state.events_seen == 2


async def test_decline_posts_nothing(env: WorkflowEnvironment) -> None:
    fake = FakePsp(PaymentStatus.FAILED)
    fake.failure_code = "card_declined"
    worker, handle = await _start(env, fake, to_account=True)
    async with worker:
        result = await handle.result()
        await record(handle, "deposit_declined")
    assert result.status == "failed"
    assert result.failure_code == "card_declined"
    assert fake.calls == ["create"]


async def test_3ds_declined_after_webhook_fails_with_the_psp_code(
    env: WorkflowEnvironment,
) -> None:
    fake = FakePsp(PaymentStatus.REQUIRES_ACTION, [PaymentStatus.FAILED])
    fake.failure_code = "authentication_failed"
    worker, handle = await _start(env, fake)
    async with worker:
        await _wait_status(handle, "pending")
        await handle.signal(DepositWorkflow.psp_event, _event("e1", PaymentStatus.FAILED))
        result = await handle.result()
    assert result.status == "failed"
    assert fake.finished[0].failure_code == "authentication_failed"
    assert "credit" not in fake.calls


async def test_no_confirmation_expires_after_polling_and_posts_nothing(
    env: WorkflowEnvironment,
) -> None:
    fake = FakePsp(PaymentStatus.REQUIRES_ACTION)
    worker, handle = await _start(env, fake)
    async with worker:
        result = await handle.result()  # time skips: nobody pays
        state = await handle.query(DepositWorkflow.state)
    assert result.status == "expired"
    assert fake.finished[0].status == "expired"
    assert "credit" not in fake.calls and "platform" not in fake.calls
    # Polls at 30 s, 1, 2, 4, 8, 10, 10, 10 ... minutes, plus the last look at the deadline.
    assert 6 <= state.polls <= 12
    started = datetime.fromisoformat(state.history[0]["at"])
    ended = datetime.fromisoformat(state.history[-1]["at"])
    assert timedelta(minutes=60) <= ended - started < timedelta(minutes=61)


async def test_polling_alone_finds_a_payment_whose_webhooks_were_lost(
    env: WorkflowEnvironment,
) -> None:
    fake = FakePsp(
        PaymentStatus.REQUIRES_ACTION, [PaymentStatus.PROCESSING, PaymentStatus.SUCCEEDED]
    )
    worker, handle = await _start(env, fake, method="crypto")
    async with worker:
        result = await handle.result()
    assert result.status == "completed"
    assert fake.calls.count("fetch") == 2 and fake.calls.count("credit") == 1


async def test_underpaid_crypto_credits_what_arrived(env: WorkflowEnvironment) -> None:
    fake = FakePsp(PaymentStatus.REQUIRES_ACTION, [PaymentStatus.UNDERPAID])
    fake.amount_received = Decimal("60.00")
    worker, handle = await _start(env, fake, method="crypto")
    async with worker:
        await _wait_status(handle, "pending")
        await handle.signal(DepositWorkflow.psp_event, _event("e1", PaymentStatus.UNDERPAID))
        result = await handle.result()
    assert result.status == "completed"
    assert fake.credits[0].amount_received == Decimal("60.00")


async def test_platform_refusal_leaves_the_money_in_the_wallet_and_alerts(
    env: WorkflowEnvironment,
) -> None:
    fake = FakePsp(PaymentStatus.SUCCEEDED)
    fake.platform_refuses = True
    worker, handle = await _start(env, fake, to_account=True)
    async with worker:
        result = await handle.result()
    assert result.status == "credit_failed"
    assert fake.calls == ["create", "credit", "platform", "credit_failed"]
    assert "account disabled" in fake.alerts[0].reason


def _time_after_credited(history: list[dict[str, str]]) -> timedelta:
    at = {entry["status"]: datetime.fromisoformat(entry["at"]) for entry in history}
    return datetime.fromisoformat(history[-1]["at"]) - at["credited"]


async def test_a_platform_that_never_answers_ends_in_credit_failed_within_the_bound(
    env: WorkflowEnvironment,
) -> None:
    # Every attempt times out at MT5 and nothing was posted: before, 12 attempts backed off up to
    # a minute each (over 6 minutes of waiting, 18 with attempts that hang): the chaos run's
    # 240 s were not enough.
    fake = FakePsp(PaymentStatus.SUCCEEDED)
    fake.platform_down_for = None
    worker, handle = await _start(env, fake, to_account=True)
    async with worker:
        result = await handle.result()
        state = await handle.query(DepositWorkflow.state)
    assert result.status == "credit_failed"
    assert _time_after_credited(state.history) <= POST_CREDIT_BOUND
    assert fake.calls[-2:] == ["lookup", "credit_failed"]
    assert "complete" not in fake.calls
    assert "timeout" in fake.alerts[0].reason


async def test_a_credit_posted_by_an_attempt_that_timed_out_is_found_and_completed(
    env: WorkflowEnvironment,
) -> None:
    # The platform took the money but never said so in time: giving up would leave the money
    # both on the platform and in the wallet.
    fake = FakePsp(PaymentStatus.SUCCEEDED)
    fake.platform_down_for = None
    fake.posted_anyway = True
    worker, handle = await _start(env, fake, to_account=True)
    async with worker:
        result = await handle.result()
        state = await handle.query(DepositWorkflow.state)
        await record(handle, "deposit_platform_lookup")
    assert result.status == "completed"
    assert fake.calls[-2:] == ["lookup", "complete"]
    assert fake.completed_with == ["T-late"] and fake.alerts == []
    assert _time_after_credited(state.history) <= POST_CREDIT_BOUND


async def test_the_ledger_step_after_an_outage_is_retried_every_ten_seconds_at_most(
    env: WorkflowEnvironment,
) -> None:
    # The platform is back after 4 attempts, the database after 8: retries wait at most 10 s,
    # so the deposit completes soon after the last fault (a minute-long interval would not).
    fake = FakePsp(PaymentStatus.SUCCEEDED)
    fake.platform_down_for = 4
    fake.complete_down_for = 8
    worker, handle = await _start(env, fake, to_account=True)
    async with worker:
        result = await handle.result()
        state = await handle.query(DepositWorkflow.state)
    assert result.status == "completed"
    assert fake.calls.count("platform") == 5 and fake.calls.count("complete") == 9
    assert "lookup" not in fake.calls
    # Backoff 1+2+4+8 s on the platform, 1+2+4+8+10+10+10+10 s on the ledger.
    assert _time_after_credited(state.history) < timedelta(seconds=75)


async def test_a_deposit_goes_on_within_ten_seconds_once_the_psp_is_back(
    env: WorkflowEnvironment,
) -> None:
    # The PSP times out 8 times: retries wait at most 10 s (1+2+4+8+10+10+10+10 s), so the
    # deposit is credited under a minute after the outage began (183 s at one minute a retry).
    fake = FakePsp(PaymentStatus.SUCCEEDED)
    fake.create_down_for = 8
    worker, handle = await _start(env, fake)
    async with worker:
        result = await handle.result()
        state = await handle.query(DepositWorkflow.state)
    assert result.status == "completed"
    assert fake.calls.count("create") == 9
    started = datetime.fromisoformat(state.history[0]["at"])
    ended = datetime.fromisoformat(state.history[-1]["at"])
    assert ended - started < timedelta(seconds=75)
