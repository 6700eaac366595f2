"""Money taken back from a completed deposit.

ChargebackWorkflow (`chargeback-{payment}-{event}`, or `psp-refund-{payment}-{event}` for a refund
event): started by the PSP webhook when a chargeback, dispute or refund event arrives for a
deposit whose workflow has finished. It asks the PSP for the
payment's real state, then books the reversal: debit the client's wallet (credit PSP clearing) for
what it holds, and the rest to a tracked client receivable, never a negative wallet. Money that sits
on a trading account is not taken from the platform behind the client's back: dealing and finance
get an alert and decide (close positions, debit the account, or chase the receivable). A refund
the PSP made outside fxcrm is alerted, not booked (a withdrawal's refund to the card may be
recording itself at that moment); the PSP's chargeback fee is booked by the day's reconciliation
from the settlement line, the only place a provider states it.

RefundWorkflow (`refund-{payment}-{refund}`): a refund finance asked for. Hold the amount in the
wallet first, ask the PSP (idempotent on our refund id), then post the hold on success or void it
on failure: the client's money is never refunded without being taken, nor taken without being
refunded.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from fxcrm.activities.chargebacks import ChargebackActivities
    from fxcrm.workflows.chargeback_types import (
        PspRefundOutcome,
        RefundRequest,
        RefundResult,
        RefundSettle,
        ReversalAction,
        ReversalBooked,
        ReversalCase,
        ReversalInput,
    )

PSP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=5)
)
DB_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))


@workflow.defn
class ChargebackWorkflow:
    @workflow.run
    async def run(self, inp: ReversalInput) -> ReversalBooked:
        case: ReversalCase = await workflow.execute_activity_method(
            ChargebackActivities.assess_reversal,
            inp,
            start_to_close_timeout=timedelta(minutes=1),
            schedule_to_close_timeout=timedelta(days=1),
            retry_policy=PSP_RETRY,
        )
        if case.action is ReversalAction.NONE:
            return ReversalBooked(
                payment_id=inp.payment_id,
                action=case.action,
                from_wallet=0,
                to_receivable=0,
                alerts=[],
            )
        return await workflow.execute_activity_method(
            ChargebackActivities.book_reversal,
            case,
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=DB_RETRY,
        )


@workflow.defn
class RefundWorkflow:
    @workflow.run
    async def run(self, request: RefundRequest) -> RefundResult:
        try:
            held = await workflow.execute_activity_method(
                ChargebackActivities.hold_refund,
                request,
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=DB_RETRY,
            )
        except ActivityError as exc:
            # The wallet cannot cover it (or the payment cannot be refunded): nothing moved.
            code = exc.cause.type if isinstance(exc.cause, ApplicationError) else None
            refused = PspRefundOutcome(succeeded=False, failure_code=code or "refused")
            return await workflow.execute_activity_method(
                ChargebackActivities.settle_refund,
                RefundSettle(request=request, hold_id="", outcome=refused),
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=DB_RETRY,
            )
        try:
            outcome = await workflow.execute_activity_method(
                ChargebackActivities.request_psp_refund,
                request,
                start_to_close_timeout=timedelta(minutes=1),
                schedule_to_close_timeout=timedelta(days=2),
                retry_policy=PSP_RETRY,
            )
        except ActivityError:
            # The PSP never answered in two days: release the hold. Had it refunded after all,
            # the day's reconciliation shows a refund missing in the ledger for finance.
            outcome = PspRefundOutcome(succeeded=False, failure_code="psp_unavailable")
        return await workflow.execute_activity_method(
            ChargebackActivities.settle_refund,
            RefundSettle(request=request, hold_id=held.hold_id, outcome=outcome),
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=DB_RETRY,
        )
