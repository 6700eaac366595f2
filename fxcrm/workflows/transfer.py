"""TransferWorkflow (`transfer-{payment}`): a trader's own money between wallets and trading
accounts, atomically across the ledger and the platforms.

Order, so that a crash at any point neither loses nor doubles money:
1. hold: every ledger leg (with the FX legs across currencies) is reserved as PENDING transfers.
   The source's available balance drops at once; nothing is posted yet. Refused → failed.
2. withdraw from the source trading account on its platform (ref "to:"). A refusal (free margin)
   → the legs are voided: failed, nothing moved.
3. deposit to the target trading account (ref "ti:"). A refusal → credit the source back
   (ref "tr:"), void the legs: failed, both platforms and the ledger as before.
4. settle: post the legs (completed) or void them (failed), with the payment's status and audit.
Platform operations look up their reference before posting, so retries are safe; transient
platform trouble is retried without limit (giving up could leave a late operation unbooked),
refusals fail at once. At every final state each platform balance equals its ledger mirror.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from fxcrm.activities.money import MoneyActivities, PlatformMove, PlatformMoved
    from fxcrm.activities.transfers import TransferActivities
    from fxcrm.adapters.platforms.base import BalanceOpKind
    from fxcrm.core.temporal import STAGE
    from fxcrm.domain.payments import TransferStatus
    from fxcrm.workflows.transfer_types import (
        Outcome,
        PaymentRef,
        PlatformLeg,
        SettleInput,
        StageChange,
        TransferInput,
        TransferPlan,
        TransferResult,
        TransferStage,
        TransferState,
    )

# No attempt limit (see the docstring), but short attempts and short intervals: once the platform,
# the database and the worker are back, a transfer finishes within one lost attempt (30 s, a
# killed worker's) and one interval (10 s) per step under way, about 50 s, not minutes.
ACTIVITY_TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10))

# Platform refusals as the trader reads them on the payment.
InT = TypeVar("InT")
OutT = TypeVar("OutT")

FAILURE_CODES = {
    "Platform.insufficient_funds": "insufficient_free_margin",
    "Platform.not_found": "account_not_found",
    "Ledger.InsufficientFunds": "insufficient_funds",
    "AccountNotOpen": "account_not_open",
}


def _failure(exc: ActivityError, default: str) -> tuple[str, str]:
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        kind = cause.type or ""
        return FAILURE_CODES.get(kind, default), cause.message
    return default, str(exc)


@workflow.defn
class TransferWorkflow:
    @workflow.init
    def __init__(self, inp: TransferInput) -> None:
        self._state = TransferState(payment_id=inp.payment_id)

    @workflow.run
    async def run(self, inp: TransferInput) -> TransferResult:
        self._stage(TransferStage.HOLDING, "reserving the ledger legs")
        try:
            plan = await self._act(
                TransferActivities.hold_transfer, PaymentRef(payment_id=inp.payment_id)
            )
        except ActivityError as exc:
            return await self._settle("failed", *_failure(exc, "hold_refused"))

        if plan.withdraw is not None:
            self._stage(TransferStage.WITHDRAWING, f"debit of login {plan.withdraw.login}")
            try:
                moved = await self._move(plan, plan.withdraw, BalanceOpKind.WITHDRAW)
            except ActivityError as exc:
                return await self._settle("failed", *_failure(exc, "source_refused"))
            self._state.tickets["withdraw"] = moved.ticket

        if plan.deposit is not None:
            self._stage(TransferStage.DEPOSITING, f"credit of login {plan.deposit.login}")
            try:
                moved = await self._move(plan, plan.deposit, BalanceOpKind.DEPOSIT)
            except ActivityError as exc:
                code, reason = _failure(exc, "target_refused")
                return await self._compensate(plan, code, reason)
            self._state.tickets["deposit"] = moved.ticket

        return await self._settle("completed")

    async def _compensate(self, plan: TransferPlan, code: str, reason: str) -> TransferResult:
        """The target refused: credit the source back if it was debited, then fail."""
        if plan.withdraw is None or plan.refund is None:
            return await self._settle("failed", code, reason)
        self._stage(TransferStage.COMPENSATING, f"target refused ({reason}); crediting back")
        try:
            moved = await self._move(plan, plan.refund, BalanceOpKind.DEPOSIT)
        except ActivityError as exc:
            _, why = _failure(exc, "compensation_failed")
            return await self._settle(
                "stranded", "compensation_failed", f"target refused ({reason}); refund: {why}"
            )
        self._state.tickets["refund"] = moved.ticket
        return await self._settle("failed", code, reason)

    async def _settle(
        self, outcome: Outcome, code: str | None = None, reason: str | None = None
    ) -> TransferResult:
        self._state.failure_code, self._state.failure_reason = code, reason
        await self._act(
            TransferActivities.settle_transfer,
            SettleInput(
                payment_id=self._state.payment_id,
                outcome=outcome,
                failure_code=code,
                failure_reason=reason,
                tickets=dict(self._state.tickets),
            ),
        )
        final = TransferStage.COMPLETED if outcome == "completed" else TransferStage.FAILED
        self._stage(final, reason or "money moved")
        status = TransferStatus.COMPLETED if outcome == "completed" else TransferStatus.FAILED
        return TransferResult(
            payment_id=self._state.payment_id, status=status.value, failure_code=code
        )

    async def _move(
        self, plan: TransferPlan, leg: PlatformLeg, kind: BalanceOpKind
    ) -> PlatformMoved:
        return await workflow.execute_activity_method(
            MoneyActivities.move_platform_balance,
            PlatformMove(
                server_id=leg.server_id,
                login=leg.login,
                kind=kind,
                amount=leg.amount,
                ref=leg.ref,
                since=plan.since,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )

    async def _act(self, method: Callable[[Any, InT], Awaitable[OutT]], arg: InT) -> OutT:
        return await workflow.execute_activity_method(
            method, arg, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=RETRY
        )

    def _stage(self, stage: TransferStage, note: str) -> None:
        self._state.stage = stage
        self._state.history.append(StageChange(at=workflow.now(), stage=stage, note=note))
        workflow.upsert_search_attributes([STAGE.value_set(stage.value)])

    @workflow.query
    def state(self) -> TransferState:
        return self._state
