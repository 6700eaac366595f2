"""WithdrawalWorkflow (`withdrawal-{payment}`): checks → platform debit (account source) → hold →
finance approval (four eyes above the brand's threshold) → refund to cards, payout → post the hold.

Every way out that does not pay (a refusal at the checks, a finance rejection, the client's cancel,
no decision in time, a failed payout) releases the hold and gives the money back where it came
from: the wallet, or the trading account (ledger mirror and platform).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from fxcrm.activities.money import MoneyActivities, PlatformMove, platform_ref
    from fxcrm.activities.withdrawals import WithdrawalActivities
    from fxcrm.adapters.platforms.base import BalanceOpKind
    from fxcrm.adapters.psp.base import PspEvent
    from fxcrm.core.temporal import STAGE
    from fxcrm.domain.money import Money
    from fxcrm.domain.payments import WithdrawalStatus
    from fxcrm.workflows.withdrawal_types import (
        APPROVER_ROLES,
        Approval,
        AuditEntry,
        CancelRequest,
        Decision,
        PaymentRef,
        PayoutOrder,
        PayoutOutcome,
        Refusal,
        Release,
        StatusChange,
        WithdrawalInput,
        WithdrawalState,
    )

ACTIVITY_TIMEOUT = timedelta(seconds=60)
FIRST_POLL = timedelta(seconds=5)  # the payout's status, when no webhook came
MAX_POLL = timedelta(hours=1)
PAYOUT_STUCK_AFTER = timedelta(days=3)

# Decisions and a cancel are taken while the hold is being made, too: the API may see the payment
# awaiting approval (committed by the hold activity) a moment before this workflow does.
OPEN = frozenset({WithdrawalStatus.REQUESTED, WithdrawalStatus.AWAITING_APPROVAL})

InT = TypeVar("InT")
OutT = TypeVar("OutT")


def _refusal_type(exc: ActivityError) -> str | None:
    """The typed, permanent refusal under an activity failure ("Platform.insufficient_funds")."""
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.non_retryable:
        return cause.type
    return None


@workflow.defn
class WithdrawalWorkflow:
    @workflow.init
    def __init__(self, inp: WithdrawalInput) -> None:
        self._inp = inp
        self._state = WithdrawalState(payment_id=inp.payment_id, trader_id=inp.trader_id)
        self._decisions: list[Decision] = []
        self._cancel: CancelRequest | None = None
        self._seen_events: set[str] = set()
        self._payout_hint = False
        self._pending_audit: list[AuditEntry] = []
        self._decided: set[str] = set()

    # ---- the business process -------------------------------------------------------------

    @workflow.run
    async def run(self, inp: WithdrawalInput) -> WithdrawalState:
        ref = PaymentRef(payment_id=inp.payment_id)
        from_account = inp.source is not None
        if inp.source is not None:
            checked = await self._act(WithdrawalActivities.check_account_funds, ref)
            if not checked.ok:
                return await self._end(
                    WithdrawalStatus.REJECTED,
                    checked.reason or "refused",
                    "insufficient_free_margin",
                    moved=False,
                )
            refused = await self._debit_account()
            if refused is not None:
                return await self._end(
                    WithdrawalStatus.REJECTED, refused, "platform_refused", moved=False
                )
            await self._act(WithdrawalActivities.move_account_to_wallet, ref)
        try:
            hold = await self._act(WithdrawalActivities.hold_funds, ref)
        except ActivityError as exc:
            kind = _refusal_type(exc)
            if kind is None:
                raise
            # Nothing is held; money taken off the account waits in the wallet: give it back.
            return await self._end(
                WithdrawalStatus.REJECTED,
                f"the funds could not be held ({kind})",
                "insufficient_funds",
                moved=from_account,
            )
        self.state.risk_flags = hold.risk_flags
        self.state.approvals_required = hold.approvals_required
        self.state.awaiting_since = workflow.now()
        self._set_stage(WithdrawalStatus.AWAITING_APPROVAL)

        outcome = await self._await_decision(
            timedelta(hours=hold.escalation_hours), timedelta(hours=hold.expiry_hours)
        )
        if outcome is not None:
            status, reason, code = outcome
            return await self._end(status, reason, code, moved=True)

        await self._status(WithdrawalStatus.APPROVED, "approved by " + self._approvers())
        return await self._pay()

    async def _debit_account(self) -> str | None:
        """Platform first: money leaves the account only if the platform lets it (free margin)."""
        try:
            await self._move_on_platform(BalanceOpKind.WITHDRAW, self._inp.amount, "wd")
        except ActivityError as exc:
            kind = _refusal_type(exc)
            if kind is None:
                raise
            return f"the platform refused the withdrawal ({kind})"
        return None

    async def _await_decision(
        self, escalate_after: timedelta, expire_after: timedelta
    ) -> tuple[WithdrawalStatus, str, str | None] | None:
        """None once approved; otherwise (final status, reason, failure code)."""
        assert self.state.awaiting_since is not None
        escalate_at = self.state.awaiting_since + escalate_after
        expire_at = self.state.awaiting_since + expire_after
        while True:
            await self._flush_audit()
            if self._cancel is not None:
                return WithdrawalStatus.REJECTED, self._cancel.reason, "cancelled"
            while self._decisions:
                decision = self._decisions.pop(0)
                await self._audit_decision(decision)
                if decision.decision == "reject":
                    reason = f"rejected by {decision.approver_id}: {decision.reason}"
                    return WithdrawalStatus.REJECTED, reason, "rejected_by_finance"
                self.state.approvals.append(
                    Approval(
                        approver_id=decision.approver_id,
                        role=decision.role,
                        at=workflow.now(),
                        reason=decision.reason,
                    )
                )
            if len(self.state.approvals) >= self.state.approvals_required:
                return None
            now = workflow.now()
            if now >= expire_at:
                return (
                    WithdrawalStatus.EXPIRED,
                    f"no decision within {expire_after}",
                    "approval_expired",
                )
            if now >= escalate_at and not self.state.escalated:
                self.state.escalated = True
                await self._act(
                    WithdrawalActivities.escalate, PaymentRef(payment_id=self._inp.payment_id)
                )
                continue
            wake = expire_at if self.state.escalated else min(escalate_at, expire_at)
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: (
                        bool(self._decisions or self._pending_audit) or self._cancel is not None
                    ),
                    timeout=wake - now,
                )

    async def _pay(self) -> WithdrawalState:
        ref = PaymentRef(payment_id=self._inp.payment_id)
        plan = await self._act(WithdrawalActivities.plan_payout, ref)
        for order in plan.refunds:
            refund = await self._act(WithdrawalActivities.refund_to_card, order)
            if refund.ok:
                self.state.refunded += order.amount
        rest = self._inp.amount - self.state.refunded
        self.state.payout_amount = rest
        if rest == 0:
            return await self._end(WithdrawalStatus.PAID, "refunded to the client's cards", None)
        outcome = await self._act(
            WithdrawalActivities.create_payout,
            PayoutOrder(payment_id=self._inp.payment_id, amount=rest),
        )
        outcome = await self._until_final(outcome)
        if outcome.status == "paid":
            return await self._end(WithdrawalStatus.PAID, "paid out", None)
        reason = f"payout {outcome.status}: {outcome.failure_message or outcome.failure_code}"
        # What reached the client's cards stays paid; the rest goes back.
        return await self._end(
            WithdrawalStatus.FAILED, reason, outcome.failure_code or "payout_failed"
        )

    async def _until_final(self, outcome: PayoutOutcome) -> PayoutOutcome:
        """A webhook is a hint to look; polling (doubling, up to an hour) covers lost ones."""
        poll = FIRST_POLL
        started = workflow.now()
        stuck_alerted = False
        while True:
            self.state.payout_ref = outcome.provider_ref
            self.state.payout_status = outcome.status
            if outcome.final:
                return outcome
            if not stuck_alerted and workflow.now() - started >= PAYOUT_STUCK_AFTER:
                stuck_alerted = True
                await self._act(
                    WithdrawalActivities.alert_payout_stuck,
                    PaymentRef(payment_id=self._inp.payment_id),
                )
            self._payout_hint = False
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._payout_hint, timeout=poll)
            poll = min(poll * 2, MAX_POLL)
            outcome = await self._act(
                WithdrawalActivities.payout_status, PaymentRef(payment_id=self._inp.payment_id)
            )

    async def _end(
        self, status: WithdrawalStatus, reason: str, code: str | None, *, moved: bool = True
    ) -> WithdrawalState:
        """Final step of every path. `moved`: money already left where it came from (held in
        the wallet, or taken off the account), so what was not paid goes back."""
        self.state.reason = reason
        self.state.failure_code = code
        if moved:
            posted = self._inp.amount if status == WithdrawalStatus.PAID else self.state.refunded
            from_account = self._inp.source is not None
            released = await self._act(
                WithdrawalActivities.release_hold,
                Release(payment_id=self._inp.payment_id, posted=posted, to_account=from_account),
            )
            if from_account and released.returned > 0:
                await self._credit_account_back(released.returned)
        await self._flush_audit()
        await self._status(status, reason, code)
        self.state.ended_at = workflow.now()
        return self.state

    async def _credit_account_back(self, amount: int) -> None:
        try:
            await self._move_on_platform(BalanceOpKind.DEPOSIT, amount, "wr")
        except ActivityError as exc:
            if _refusal_type(exc) is None:
                raise
            # The platform will not take it back (account closed, ...): the money stays in the
            # wallet, never in limbo, and finance is told.
            await self._act(
                WithdrawalActivities.keep_in_wallet, PaymentRef(payment_id=self._inp.payment_id)
            )

    async def _move_on_platform(self, kind: BalanceOpKind, amount: int, ref_prefix: str) -> None:
        """A balance operation on the source trading account, retry-safe by its reference."""
        source = self._inp.source
        assert source is not None
        await self._act(
            MoneyActivities.move_platform_balance,
            PlatformMove(
                server_id=source.server_id,
                login=source.login,
                kind=kind,
                amount=self._money(amount).amount,
                ref=platform_ref(ref_prefix, self._inp.payment_id),
                since=self._inp.created_at,
            ),
        )

    # ---- signals and queries ------------------------------------------------------------

    @workflow.signal
    def decision(self, decision: Decision) -> None:
        why = self._refusal_reason(decision)
        if why is not None:
            self._refuse("decision", decision.approver_id, why)
            return
        self._decided.add(decision.approver_id)
        self._decisions.append(decision)

    def _refusal_reason(self, decision: Decision) -> str | None:
        if self.state.status not in OPEN or self._cancel is not None:
            return f"no decision is due in status {self.state.status}"
        if decision.role not in APPROVER_ROLES:
            return f"role {decision.role} may not decide withdrawals"
        if decision.approver_id == self._inp.trader_id:
            return "the requester may not decide their own withdrawal"
        if decision.approver_id in self._decided:
            return "this approver has already decided"
        if decision.decision not in {"approve", "reject"}:
            return f"unknown decision {decision.decision}"
        return None

    @workflow.signal
    def cancel(self, request: CancelRequest) -> None:
        if request.trader_id != self._inp.trader_id:
            self._refuse("cancel", request.trader_id, "only the client may cancel")
        elif self.state.status not in OPEN or self._decisions:
            self._refuse("cancel", request.trader_id, f"too late in status {self.state.status}")
        elif self._cancel is None:
            self._cancel = request

    @workflow.signal
    def psp_event(self, event: PspEvent) -> None:
        if event.event_key in self._seen_events:
            return  # redelivered
        self._seen_events.add(event.event_key)
        if event.object_kind == "payout":
            self._payout_hint = True

    @workflow.query(name="state")
    def get_state(self) -> WithdrawalState:
        return self._state

    # ---- helpers -----------------------------------------------------------------------

    @property
    def state(self) -> WithdrawalState:
        return self._state

    def _money(self, minor: int) -> Money:
        return Money.from_minor(minor, self._inp.currency)

    def _approvers(self) -> str:
        return ", ".join(a.approver_id for a in self.state.approvals)

    def _refuse(self, signal: str, actor_id: str, reason: str) -> None:
        self.state.refusals.append(
            Refusal(at=workflow.now(), signal=signal, actor_id=actor_id, reason=reason)
        )
        workflow.logger.info("signal refused", extra={"signal": signal, "reason": reason})
        wid = workflow.info().workflow_id
        self._pending_audit.append(
            AuditEntry(
                payment_id=self._inp.payment_id,
                key=f"{wid}:refusal:{len(self.state.refusals)}",
                action=f"withdrawal.signal_refused.{signal}",
                actor_id=actor_id,
                after={"reason": reason},
            )
        )

    async def _audit_decision(self, decision: Decision) -> None:
        wid = workflow.info().workflow_id
        await self._act(
            WithdrawalActivities.record_audit,
            AuditEntry(
                payment_id=self._inp.payment_id,
                key=f"{wid}:decision:{decision.approver_id}",
                action=f"withdrawal.decision.{decision.decision}",
                actor_id=decision.approver_id,
                actor_role=decision.role,
                after={"decision": decision.decision, "reason": decision.reason},
            ),
        )

    async def _flush_audit(self) -> None:
        while self._pending_audit:
            await self._act(WithdrawalActivities.record_audit, self._pending_audit.pop(0))

    def _set_stage(self, status: WithdrawalStatus) -> None:
        self.state.status = status
        workflow.upsert_search_attributes([STAGE.value_set(status.value)])

    async def _status(
        self, status: WithdrawalStatus, reason: str | None, code: str | None = None
    ) -> None:
        await self._act(
            WithdrawalActivities.set_status,
            StatusChange(
                payment_id=self._inp.payment_id, status=status, reason=reason, failure_code=code
            ),
        )
        self._set_stage(status)

    async def _act(self, method: Callable[[Any, InT], Awaitable[OutT]], arg: InT) -> OutT:
        return await workflow.execute_activity_method(
            method,
            arg,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
        )
