"""DepositWorkflow (`deposit-{payment}`): PSP payment → confirmation → ledger credit → platform credit.

Pure orchestration. The PSP's webhooks arrive as `psp_event` signals, but they are only hints: on
each one, and on a polling timer that backs off, the workflow asks the PSP for the authoritative
state. The wait is bounded by the brand's expiry for the method. Money moves only in activities
(see fxcrm.activities.deposits for the order that keeps a crash from losing or doubling it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from fxcrm.activities.deposits import DepositActivities
    from fxcrm.activities.money import (
        MoneyActivities,
        PlatformMove,
        PlatformMoved,
        platform_ref,
    )
    from fxcrm.adapters.platforms.base import BalanceOpKind
    from fxcrm.adapters.psp.base import PaymentStatus, PspEvent
    from fxcrm.core.temporal import STAGE
    from fxcrm.domain.payments import DepositStatus
    from fxcrm.workflows.deposit_types import (
        CompleteInput,
        CreditFailedInput,
        CreditInput,
        CreditOut,
        DepositInput,
        DepositResult,
        DepositState,
        FinishInput,
        PaymentRef,
        PspPaymentOut,
    )

ACTIVITY_TIMEOUT = timedelta(seconds=60)
# Retried every 10 s at most: a deposit waits no more than that after the PSP, the database or the
# worker is back (at one minute, a deposit held up by a fault landed minutes late).
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10))
# Polling fallback when no webhook comes: first after 30 s, then doubling up to 10 minutes.
POLL_FIRST = timedelta(seconds=30)
POLL_MAX = timedelta(minutes=10)
# A poll that cannot reach the PSP gives up quietly; the next poll or webhook asks again.
FETCH_BUDGET = timedelta(minutes=5)
# After `credited` (trading-account target) every step is bounded, so a deposit reaches completed
# or credit_failed within POST_CREDIT_BOUND whatever the platform does, while the worker runs and
# the database answers:
# - the platform credit: attempts of at most 30 s, retried every <= 10 s, for PLATFORM_BUDGET (90 s);
#   a refusal ends it at once (credit_failed);
# - past the budget, a look for our reference (LOOKUP_BUDGET, 30 s): an attempt that posted and
#   then timed out is found and completed; never booked as not made while it is on the platform;
# - the ledger step (complete or credit_failed): the money was held for the account at the credit,
#   so no transfer, withdrawal or chargeback can make it fail; a first attempt takes well under 1 s.
# 90 + 30 s and a few fast workflow tasks: under 2.5 min. A worker crash adds at most one lost
# attempt (30 s start-to-close + 10 s interval) or one workflow task (10 s): still under 3 min.
# Once faults stop, a credited deposit finishes within one lost attempt and one interval: ~50 s.
STEP_TIMEOUT = timedelta(seconds=30)
STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10)
)
PLATFORM_BUDGET = timedelta(seconds=90)
LOOKUP_TIMEOUT = timedelta(seconds=15)
LOOKUP_BUDGET = timedelta(seconds=30)
POST_CREDIT_BOUND = timedelta(minutes=3)

SETTLED = {PaymentStatus.SUCCEEDED, PaymentStatus.UNDERPAID}
UNPAID = {
    PaymentStatus.FAILED,
    PaymentStatus.EXPIRED,
    PaymentStatus.REFUNDED,
    PaymentStatus.PARTIALLY_REFUNDED,
    PaymentStatus.CHARGED_BACK,
}

InT = TypeVar("InT")
OutT = TypeVar("OutT")


@workflow.defn
class DepositWorkflow:
    @workflow.init
    def __init__(self, inp: DepositInput) -> None:
        # State exists before run(): a webhook signalled early is not lost.
        self._state = DepositState(payment_id=inp.payment_id, status=DepositStatus.CREATED.value)
        self._seen_events: set[str] = set()
        self._newest_event_at: datetime | None = None
        self._poked = False

    # ---- the business process -------------------------------------------------------------

    @workflow.run
    async def run(self, inp: DepositInput) -> DepositResult:
        ref = PaymentRef(payment_id=inp.payment_id)
        deadline = workflow.now() + inp.expiry
        await self._set_status(DepositStatus.CREATED.value)
        try:
            psp = await self._act(
                DepositActivities.create_psp_payment, ref, schedule_to_close=inp.expiry
            )
        except ActivityError as exc:
            # The PSP could not be reached for the whole expiry: nothing was created or posted.
            return await self._finish_unpaid(
                inp, DepositStatus.FAILED, "psp_unavailable", _reason(exc)
            )
        self._note_psp(psp)
        await self._set_status(psp.recorded_status)
        if psp.recorded_status == DepositStatus.FAILED:
            return self._result()

        outcome = await self._await_confirmation(ref, psp, deadline)
        if outcome is None:
            return await self._finish_unpaid(
                inp, DepositStatus.EXPIRED, "expired", "no confirmation from the PSP in time"
            )
        if outcome.status in UNPAID:
            status = (
                DepositStatus.EXPIRED
                if outcome.status == PaymentStatus.EXPIRED
                else DepositStatus.FAILED
            )
            code = outcome.failure_code or f"psp_{outcome.status.value}"
            return await self._finish_unpaid(
                inp, status, code, outcome.failure_message or f"the PSP says {outcome.status}"
            )

        credit = await self._act(
            DepositActivities.credit_deposit,
            CreditInput(payment_id=inp.payment_id, amount_received=outcome.amount_received),
        )
        await self._set_status(credit.status)
        if inp.to_account and credit.status == DepositStatus.CREDITED:
            await self._credit_trading_account(inp, credit)
        return self._result()

    async def _await_confirmation(
        self, ref: PaymentRef, psp: PspPaymentOut, deadline: datetime
    ) -> PspPaymentOut | None:
        """Waits for a settled or unpaid PSP status; None if the deadline passes first."""
        interval = POLL_FIRST
        while not self._decided(psp):
            now = workflow.now()
            if now >= deadline:
                # One last authoritative look: a payment confirmed at the last second counts.
                psp = await self._fetch(ref, psp)
                return psp if self._decided(psp) else None
            try:
                await workflow.wait_condition(
                    lambda: self._poked, timeout=min(interval, deadline - now)
                )
            except TimeoutError:
                interval = min(interval * 2, POLL_MAX)
                if workflow.now() >= deadline:
                    continue  # the last look happens at the top
            self._poked = False
            psp = await self._fetch(ref, psp)
        return psp

    async def _credit_trading_account(self, inp: DepositInput, credit: CreditOut) -> None:
        """The platform first (retry-safe by our reference), then the ledger's hold posted; each
        step bounded (see POST_CREDIT_BOUND)."""
        assert credit.server_id is not None and credit.login is not None
        assert credit.since is not None
        move = PlatformMove(
            server_id=credit.server_id,
            login=credit.login,
            kind=BalanceOpKind.DEPOSIT,
            amount=credit.credited,
            ref=platform_ref("dep", inp.payment_id),
            since=credit.since,
        )
        moved: PlatformMoved | None = None
        try:
            moved = await workflow.execute_activity_method(
                MoneyActivities.move_platform_balance,
                move,
                start_to_close_timeout=STEP_TIMEOUT,
                schedule_to_close_timeout=PLATFORM_BUDGET,
                retry_policy=STEP_RETRY,
            )
        except ActivityError as exc:
            reason = _reason(exc)
            if not _refused(exc):
                moved, reason = await self._look_for_credit(move, reason)
        if moved is None:
            failed = await self._step(
                DepositActivities.mark_credit_failed,
                CreditFailedInput(payment_id=inp.payment_id, reason=reason),
            )
            await self._set_status(failed.status)
            return
        done = await self._step(
            DepositActivities.complete_account_deposit,
            CompleteInput(payment_id=inp.payment_id, platform_ticket=moved.ticket),
        )
        await self._set_status(done.status)

    async def _look_for_credit(
        self, move: PlatformMove, reason: str
    ) -> tuple[PlatformMoved | None, str]:
        """The platform never answered yes within the budget: did an attempt post anyway?"""
        try:
            found = await workflow.execute_activity_method(
                MoneyActivities.find_platform_balance,
                move,
                start_to_close_timeout=LOOKUP_TIMEOUT,
                schedule_to_close_timeout=LOOKUP_BUDGET,
                retry_policy=STEP_RETRY,
            )
        except ActivityError as exc:
            return None, (
                f"{reason}; the platform could not be asked whether {move.ref} was posted "
                f"({_reason(exc)}): check it before crediting again"
            )
        return found, reason

    async def _finish_unpaid(
        self, inp: DepositInput, status: DepositStatus, code: str, reason: str
    ) -> DepositResult:
        out = await self._act(
            DepositActivities.finish_unpaid,
            FinishInput(
                payment_id=inp.payment_id, status=status.value, failure_code=code, reason=reason
            ),
        )
        self._state.failure_code = code
        await self._set_status(out.status)
        return self._result()

    async def _fetch(self, ref: PaymentRef, last: PspPaymentOut) -> PspPaymentOut:
        self._state.polls += 1
        try:
            psp = await self._act(
                DepositActivities.fetch_psp_payment, ref, schedule_to_close=FETCH_BUDGET
            )
        except ActivityError as exc:
            workflow.logger.warning("PSP state not fetched", extra={"error": _reason(exc)})
            return last
        self._note_psp(psp)
        return psp

    # ---- signals and queries ------------------------------------------------------------

    @workflow.signal
    def psp_event(self, event: PspEvent) -> None:
        if event.event_key in self._seen_events:
            return  # redelivered
        self._seen_events.add(event.event_key)
        self._state.events_seen += 1
        if self._newest_event_at is not None and event.created_at < self._newest_event_at:
            # Older than one already seen: the fetch that one caused covers it.
            workflow.logger.info("stale PSP event ignored", extra={"type": event.type})
            return
        self._newest_event_at = event.created_at
        self._poked = True

    @workflow.query
    def state(self) -> DepositState:
        return self._state

    # ---- helpers -----------------------------------------------------------------------

    @staticmethod
    def _decided(psp: PspPaymentOut) -> bool:
        if psp.status == PaymentStatus.UNDERPAID and psp.amount_received is None:
            return False  # nothing to credit yet
        return psp.status in SETTLED or psp.status in UNPAID

    def _note_psp(self, psp: PspPaymentOut) -> None:
        self._state.psp_status = psp.status.value
        self._state.provider_ref = psp.provider_ref or self._state.provider_ref
        if psp.failure_code:
            self._state.failure_code = psp.failure_code

    async def _set_status(self, status: str) -> None:
        if self._state.history and self._state.status == status:
            return
        self._state.status = status
        self._state.history.append({"at": workflow.now().isoformat(), "status": status})
        workflow.upsert_search_attributes([STAGE.value_set(status)])

    def _result(self) -> DepositResult:
        return DepositResult(
            payment_id=self._state.payment_id,
            status=self._state.status,
            failure_code=self._state.failure_code,
        )

    async def _step(self, method: Callable[[Any, InT], Awaitable[OutT]], arg: InT) -> OutT:
        """A ledger step after the credit: short attempts, short intervals (POST_CREDIT_BOUND)."""
        return await workflow.execute_activity_method(
            method, arg, start_to_close_timeout=STEP_TIMEOUT, retry_policy=STEP_RETRY
        )

    async def _act(
        self,
        method: Callable[[Any, InT], Awaitable[OutT]],
        arg: InT,
        *,
        schedule_to_close: timedelta | None = None,
    ) -> OutT:
        return await workflow.execute_activity_method(
            method,
            arg,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            schedule_to_close_timeout=schedule_to_close,
            retry_policy=RETRY,
        )


def _refused(exc: ActivityError) -> bool:
    """The platform said no (a non-retryable `Platform.*` error): nothing was posted."""
    return isinstance(exc.cause, ApplicationError) and exc.cause.non_retryable


def _reason(exc: ActivityError) -> str:
    cause = exc.cause
    return str(cause) if cause is not None else str(exc)
