"""TransferWorkflow with fake activities: the order of ledger and platform steps, refusals,
compensation, and retries of transient platform trouble."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from fxcrm.activities.money import PlatformMove, PlatformMoved
from fxcrm.core.temporal import STAGE, register_search_attributes
from fxcrm.workflows.transfer import TransferWorkflow
from fxcrm.workflows.transfer_types import (
    PaymentRef,
    PlatformLeg,
    SettleInput,
    TransferInput,
    TransferPlan,
    TransferResult,
    TransferStage,
    TransferState,
)
from tests.conftest import temporal_test_server
from tests.workflows.histories import record

SOURCE = PlatformLeg(
    account_id="acc-src", server_id="mt5-a", login=1001, amount=Decimal("100.00"), ref="to:p1"
)
REFUND = SOURCE.model_copy(update={"ref": "tr:p1"})
TARGET = PlatformLeg(
    account_id="acc-dst", server_id="mt5-b", login=2002, amount=Decimal("92.00"), ref="ti:p1"
)


def _refusal(kind: str) -> ApplicationError:
    return ApplicationError(f"refused: {kind}", type=f"Platform.{kind}", non_retryable=True)


class Fake:
    """Stands in for TransferActivities and MoneyActivities.move_platform_balance."""

    def __init__(self, *, withdraw: bool = False, deposit: bool = False) -> None:
        self.plan = TransferPlan(
            payment_id="p1",
            since=datetime(2026, 1, 1, tzinfo=UTC),
            withdraw=SOURCE if withdraw else None,
            deposit=TARGET if deposit else None,
            refund=REFUND if withdraw else None,
        )
        self.hold_error: ApplicationError | None = None
        # ref -> errors to raise, in order, before the operation succeeds
        self.platform_errors: dict[str, list[ApplicationError]] = {}
        self.moves: list[tuple[str, str]] = []  # (kind, ref) of attempts
        self.done: list[str] = []  # refs that succeeded
        self.settled: list[SettleInput] = []
        self.steps: list[str] = []
        self.state: TransferState | None = None  # the workflow's, once it ended

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="hold_transfer")
        async def hold_transfer(ref: PaymentRef) -> TransferPlan:
            self.steps.append("hold")
            if self.hold_error:
                raise self.hold_error
            return self.plan

        @activity.defn(name="move_platform_balance")
        async def move_platform_balance(move: PlatformMove) -> PlatformMoved:
            self.moves.append((move.kind.value, move.ref))
            self.steps.append(f"{move.kind.value}:{move.ref}")
            errors = self.platform_errors.get(move.ref)
            if errors:
                raise errors.pop(0)
            self.done.append(move.ref)
            return PlatformMoved(ticket=f"t-{move.ref}", amount=move.amount, posted_now=True)

        @activity.defn(name="settle_transfer")
        async def settle_transfer(inp: SettleInput) -> None:
            self.steps.append(f"settle:{inp.outcome}")
            self.settled.append(inp)

        return [hold_transfer, move_platform_balance, settle_transfer]


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=temporal_test_server()
    ) as environment:
        await register_search_attributes(environment.client)
        yield environment


async def _run(
    env: WorkflowEnvironment, fake: Fake, history: str | None = None
) -> tuple[TransferResult, str]:
    queue = f"transfer-{uuid.uuid4()}"
    workflow_id = f"transfer-{uuid.uuid4().hex}"
    async with Worker(
        env.client, task_queue=queue, workflows=[TransferWorkflow], activities=fake.activities()
    ):
        handle = await env.client.start_workflow(
            TransferWorkflow.run,
            TransferInput(payment_id="p1", trader_id="t1", brand_id="b1"),
            id=workflow_id,
            task_queue=queue,
        )
        result = await handle.result()
        state = await handle.query(TransferWorkflow.state)
        fake.state = state
        described = await handle.describe()
        if history:
            await record(handle, history)
    assert described.status == WorkflowExecutionStatus.COMPLETED
    assert state.stage.value == described.typed_search_attributes.get(STAGE)
    return result, state.stage.value


async def test_wallet_to_account_holds_then_deposits_then_posts(env: WorkflowEnvironment) -> None:
    fake = Fake(deposit=True)
    result, stage = await _run(env, fake, history="transfer_wallet_to_account")
    assert result.status == "completed" and stage == TransferStage.COMPLETED
    assert fake.steps == ["hold", "deposit:ti:p1", "settle:completed"]
    assert fake.settled[0].tickets == {"deposit": "t-ti:p1"}


async def test_wallet_to_account_refused_by_platform_voids_the_hold(
    env: WorkflowEnvironment,
) -> None:
    fake = Fake(deposit=True)
    fake.platform_errors["ti:p1"] = [_refusal("invalid_request")]
    result, stage = await _run(env, fake, history="transfer_refused")
    assert result.status == "failed" and stage == TransferStage.FAILED
    assert fake.steps == ["hold", "deposit:ti:p1", "settle:failed"]
    assert fake.settled[0].failure_code == "target_refused"
    assert fake.done == []


async def test_account_to_wallet_without_free_margin_moves_nothing(
    env: WorkflowEnvironment,
) -> None:
    fake = Fake(withdraw=True)
    fake.platform_errors["to:p1"] = [_refusal("insufficient_funds")]
    result, _ = await _run(env, fake)
    assert result.status == "failed"
    assert result.failure_code == "insufficient_free_margin"
    assert fake.steps == ["hold", "withdraw:to:p1", "settle:failed"]
    assert fake.done == []


async def test_account_to_account_success_withdraws_before_depositing(
    env: WorkflowEnvironment,
) -> None:
    fake = Fake(withdraw=True, deposit=True)
    result, _ = await _run(env, fake)
    assert result.status == "completed"
    assert fake.steps == ["hold", "withdraw:to:p1", "deposit:ti:p1", "settle:completed"]
    assert fake.settled[0].tickets == {"withdraw": "t-to:p1", "deposit": "t-ti:p1"}


async def test_target_refusal_credits_the_source_back(env: WorkflowEnvironment) -> None:
    fake = Fake(withdraw=True, deposit=True)
    fake.platform_errors["ti:p1"] = [_refusal("not_found")]
    result, stage = await _run(env, fake)
    assert result.status == "failed" and stage == TransferStage.FAILED
    assert result.failure_code == "account_not_found"
    assert fake.steps == [
        "hold",
        "withdraw:to:p1",
        "deposit:ti:p1",
        "deposit:tr:p1",
        "settle:failed",
    ]
    assert fake.done == ["to:p1", "tr:p1"]  # debited and credited back: net zero on the source
    assert fake.settled[0].tickets == {"withdraw": "t-to:p1", "refund": "t-tr:p1"}


async def test_refund_refused_too_books_the_source_to_suspense(env: WorkflowEnvironment) -> None:
    fake = Fake(withdraw=True, deposit=True)
    fake.platform_errors["ti:p1"] = [_refusal("not_found")]
    fake.platform_errors["tr:p1"] = [_refusal("permission")]
    result, _ = await _run(env, fake)
    assert result.status == "failed" and result.failure_code == "compensation_failed"
    assert fake.settled[0].outcome == "stranded"


async def test_ledger_refusal_at_hold_touches_no_platform(env: WorkflowEnvironment) -> None:
    fake = Fake(withdraw=True, deposit=True)
    fake.hold_error = ApplicationError(
        "no money", type="Ledger.InsufficientFunds", non_retryable=True
    )
    result, _ = await _run(env, fake)
    assert result.status == "failed" and result.failure_code == "insufficient_funds"
    assert fake.moves == []
    assert fake.steps == ["hold", "settle:failed"]


async def test_transient_platform_trouble_is_retried_not_compensated(
    env: WorkflowEnvironment,
) -> None:
    fake = Fake(withdraw=True, deposit=True)
    outage = ApplicationError("down", type="Platform.unavailable")  # retryable
    fake.platform_errors["ti:p1"] = [outage, outage, outage]
    result, _ = await _run(env, fake)
    assert result.status == "completed"
    assert fake.moves.count(("deposit", "ti:p1")) == 4
    assert ("deposit", "tr:p1") not in fake.moves


async def test_wallet_conversion_needs_no_platform(env: WorkflowEnvironment) -> None:
    fake = Fake()
    result, _ = await _run(env, fake)
    assert result.status == "completed"
    assert fake.steps == ["hold", "settle:completed"]


async def test_after_an_outage_the_platform_is_asked_again_within_ten_seconds(
    env: WorkflowEnvironment,
) -> None:
    # Retries wait at most 10 s: once the platform is back the transfer finishes soon after (at
    # one minute per retry it took three more minutes, past the chaos test's wait).
    fake = Fake(deposit=True)
    outage = ApplicationError("down", type="Platform.unavailable")  # retryable
    fake.platform_errors["ti:p1"] = [outage] * 8
    result, _ = await _run(env, fake)
    assert result.status == "completed"
    assert fake.state is not None
    at = {change.stage: change.at for change in fake.state.history}
    # Backoff 1+2+4+8+10+10+10+10 s.
    assert at[TransferStage.COMPLETED] - at[TransferStage.DEPOSITING] < timedelta(seconds=75)
