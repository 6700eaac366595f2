"""Chargeback and refund activities: ask the PSP, then move the money back through the ledger.

Ledger keys (all idempotent; a retry replays, never posts twice):
- chargeback `chargeback:{payment}:wallet` (debit wallet / credit PSP clearing) and
  `chargeback:{payment}:receivable` (debit client receivable / credit PSP clearing), linked in the
  group `chargeback:{payment}`; a deposit is charged back once (a second dispute event finds them);
- a refund made at the PSP outside fxcrm is not booked: it is alerted (`refund_outside_fxcrm`);
- a refund finance asked for: hold `refund:{refund}` (pending, debit wallet / credit PSP clearing),
  then `refund:{refund}:post` or `refund:{refund}:void`.

The moves to charged_back and refunded happen after completion by nature: set_status makes
them as fxcrm.domain.payments.AFTER_FINAL allows, audited once.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from fxcrm.activities.money import (
    ledger_failure,
    load_payment,
    psp_clearing_account,
    psp_failure,
    raise_alert,
    set_status,
    wallet_account,
)
from fxcrm.adapters.psp.base import PaymentProvider, PaymentStatus, PspError, RefundStatus
from fxcrm.adapters.psp.registry import PspRegistry, UnknownProvider
from fxcrm.core.audit import Actor, append_audit
from fxcrm.core.db import transaction
from fxcrm.domain import ledger as rules
from fxcrm.domain.ledger import AccountKind, InsufficientFunds, LedgerError, TransferKind
from fxcrm.domain.money import Money
from fxcrm.domain.payments import DepositStatus
from fxcrm.ledger import (
    AccountSpec,
    TransferRequest,
    get_account,
    open_account,
    post_pending,
    transfer,
    transfer_linked,
    void_pending,
)
from fxcrm.models import LedgerAccount, LedgerTransfer, Payment
from fxcrm.workflows.chargeback_types import (
    PspRefundOutcome,
    RefundHeld,
    RefundRequest,
    RefundResult,
    RefundSettle,
    ReversalAction,
    ReversalBooked,
    ReversalCase,
    ReversalInput,
)

log = structlog.get_logger(__name__)

# Deposits whose money reached the client: only these can be charged back or refunded.
CREDITED = {DepositStatus.COMPLETED.value, DepositStatus.CREDIT_FAILED.value}
REVERSED = {DepositStatus.CHARGED_BACK.value, DepositStatus.REFUNDED.value}
IN_FLIGHT = {"requested", "held", "succeeded"}  # refunds of ours the PSP may already count


def refunds_of(payment: Payment) -> dict[str, dict[str, Any]]:
    refunds: dict[str, dict[str, Any]] = (payment.details or {}).get("refunds") or {}
    return refunds


async def withdrawal_refunds(session: AsyncSession, deposit: Payment) -> int:
    """What withdrawals paid back to this deposit's card (a withdrawal refunds to the card first)."""
    total = 0
    withdrawals = await session.scalars(
        select(Payment).where(Payment.trader_id == deposit.trader_id, Payment.kind == "withdrawal")
    )
    for withdrawal in withdrawals:
        for refund in (withdrawal.details or {}).get("refunds") or []:
            if isinstance(refund, dict) and refund.get("deposit_id") == deposit.id:
                total += int(refund.get("amount") or 0)
    return total


def refundable(payment: Payment, by_withdrawals: int = 0) -> int:
    """What is left to refund: received less refunds asked for (and not failed), card refunds
    made by withdrawals, and chargebacks."""
    received = payment.amount_received or payment.amount
    taken = sum(
        r.get("amount", 0) for r in refunds_of(payment).values() if r.get("status") in IN_FLIGHT
    )
    charged = int(((payment.details or {}).get("chargeback") or {}).get("amount", 0))
    return max(received - taken - charged - by_withdrawals, 0)


def _update_details(payment: Payment, **changes: Any) -> None:
    payment.details = {**(payment.details or {}), **changes}  # a new dict: JSON change tracked


class ChargebackActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], psps: PspRegistry) -> None:
        self._sessions = sessions
        self._psps = psps

    def _provider(self, name: str | None) -> PaymentProvider:
        try:
            return self._psps.get(name)
        except UnknownProvider as exc:
            raise ApplicationError(str(exc), type="UnknownPsp", non_retryable=True) from exc

    # ------------------------------------------------------------ chargebacks

    @activity.defn
    async def assess_reversal(self, inp: ReversalInput) -> ReversalCase:
        """Re-fetch the payment at the PSP and decide what (if anything) to book."""
        async with self._sessions() as session:
            payment = await load_payment(session, inp.payment_id)
            ours_refunded = sum(
                r.get("amount", 0)
                for r in refunds_of(payment).values()
                if r.get("status") in IN_FLIGHT
            ) + await withdrawal_refunds(session, payment)
            kind, status, psp, ref = payment.kind, payment.status, payment.psp, payment.provider_ref
            currency = payment.currency

        def nothing(reason: str) -> ReversalCase:
            return ReversalCase(
                payment_id=inp.payment_id, action=ReversalAction.NONE, reason=reason
            )

        if kind != "deposit" or not ref:
            return nothing("not a deposit at a PSP")
        if status not in CREDITED | REVERSED:
            return nothing(f"deposit is {status}: nothing was credited")
        try:
            result = await self._provider(psp).get_payment(ref)
        except PspError as exc:
            raise psp_failure(exc) from exc
        received = (result.amount_received or result.amount_requested).to_minor()
        refunded = result.amount_refunded.to_minor() if result.amount_refunded else 0
        if result.amount_requested.currency != currency:
            return nothing(f"the PSP holds {result.amount_requested.currency}, not {currency}")
        if result.status is PaymentStatus.CHARGED_BACK:
            disputed = received - refunded
            if inp.object_kind == "dispute" and inp.amount and inp.amount.currency == currency:
                disputed = min(inp.amount.to_minor(), disputed)  # a partial dispute
            if disputed <= 0:
                return nothing("nothing left to charge back")
            return ReversalCase(
                payment_id=inp.payment_id,
                action=ReversalAction.CHARGEBACK,
                amount=disputed,
                currency=currency,
                key=f"chargeback:{inp.payment_id}",
                reason=f"chargeback at the PSP ({inp.event_type})",
            )
        if result.status in (PaymentStatus.REFUNDED, PaymentStatus.PARTIALLY_REFUNDED):
            outside = refunded - ours_refunded
            if outside > 0:
                return ReversalCase(
                    payment_id=inp.payment_id,
                    action=ReversalAction.EXTERNAL_REFUND,
                    amount=outside,
                    currency=currency,
                    key=f"refund-ext:{inp.payment_id}:{refunded}",
                    reason="refunded at the PSP outside fxcrm: not taken from the client",
                )
            return nothing("our own refund")
        return nothing(f"the PSP says {result.status.value}")

    @activity.defn
    async def book_reversal(self, case: ReversalCase) -> ReversalBooked:
        """Wallet first, the rest to a receivable; status, alerts and audit in one transaction.

        A refund made at the PSP outside fxcrm is only alerted: a withdrawal's refund to the
        card may be recording itself at this moment, and taking the money twice is worse than
        finance looking at it (the day's reconciliation lists it too)."""
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, case.payment_id, lock=True)
            if case.action is ReversalAction.EXTERNAL_REFUND:
                money = Money.from_minor(case.amount, case.currency)
                await raise_alert(
                    session,
                    key=case.key,
                    brand_id=payment.brand_id,
                    kind="refund_outside_fxcrm",
                    message=f"deposit {payment.id}: the PSP refunded {money} that fxcrm did not "
                    "ask for; nothing was taken from the client",
                    payment_id=payment.id,
                )
                return ReversalBooked(
                    payment_id=payment.id,
                    action=case.action,
                    from_wallet=0,
                    to_receivable=0,
                    alerts=["refund_outside_fxcrm"],
                )
            done = list(
                await session.scalars(
                    select(LedgerTransfer).where(LedgerTransfer.group_id == case.key)
                )
            )
            if done:
                from_wallet = sum(t.amount for t in done if t.idempotency_key.endswith(":wallet"))
                alerts: list[str] = []
            else:
                from_wallet, alerts = await self._post_reversal(session, payment, case)
            booked = ReversalBooked(
                payment_id=payment.id,
                action=case.action,
                from_wallet=from_wallet,
                to_receivable=case.amount - from_wallet,
                alerts=alerts,
            )
            record = {
                "amount": case.amount,
                "from_wallet": booked.from_wallet,
                "to_receivable": booked.to_receivable,
                "key": case.key,
            }
            _update_details(payment, chargeback=record)
            await set_status(
                session, payment, DepositStatus.CHARGED_BACK, reason=case.reason, audit=record
            )
            return booked

    async def _post_reversal(
        self, session: AsyncSession, payment: Payment, case: ReversalCase
    ) -> tuple[int, list[str]]:
        wallet = await wallet_account(session, payment.brand_id, payment.trader_id, case.currency)
        clearing = await psp_clearing_account(
            session, payment.brand_id, payment.psp or "", case.currency
        )
        view = await get_account(session, wallet)
        from_wallet = min(max(view.balances.available(view.normal_balance), 0), case.amount)
        rest = case.amount - from_wallet
        kind = TransferKind.CHARGEBACK
        details = {"payment_id": payment.id, "reason": case.reason}

        def leg(suffix: str, debit: str, amount: int) -> TransferRequest:
            return TransferRequest(
                idempotency_key=f"{case.key}:{suffix}",
                debit_account_id=debit,
                credit_account_id=clearing,
                amount=Money.from_minor(amount, case.currency),
                kind=kind,
                reference=payment.provider_ref,
                details=details,
            )

        legs = [leg("wallet", wallet, from_wallet)] if from_wallet else []
        alerts = []
        if rest:
            receivable = await open_account(
                session,
                AccountSpec(
                    brand_id=payment.brand_id,
                    code=rules.client_receivable_code(payment.trader_id, case.currency),
                    kind=AccountKind.CLIENT_RECEIVABLE,
                    currency=case.currency,
                    owner_id=payment.trader_id,
                ),
            )
            legs.append(leg("receivable", receivable.id, rest))
        try:
            await transfer_linked(session, legs, group_id=case.key)
        except InsufficientFunds as exc:
            # The wallet moved between our read and the lock: try again with the new balance.
            raise ApplicationError(str(exc), type="Ledger.InsufficientFunds") from exc
        except LedgerError as exc:
            raise ledger_failure(exc) from exc
        if rest:
            money = Money.from_minor(rest, case.currency)
            await raise_alert(
                session,
                key=f"{case.key}:receivable",
                brand_id=payment.brand_id,
                kind="chargeback_receivable",
                message=f"{case.action.value} of payment {payment.id}: the wallet lacked {money}; "
                "it is owed by the client (receivable)",
                payment_id=payment.id,
            )
            alerts.append("chargeback_receivable")
            if await self._on_trading_account(session, payment):
                await raise_alert(
                    session,
                    key=f"{case.key}:trading",
                    brand_id=payment.brand_id,
                    kind="chargeback_trading_account",
                    message=f"{case.action.value} of payment {payment.id}: the client's money sits "
                    f"on a trading account; not debited on the platform: dealing and finance "
                    f"decide ({money} owed)",
                    payment_id=payment.id,
                )
                alerts.append("chargeback_trading_account")
        return from_wallet, alerts

    async def _on_trading_account(self, session: AsyncSession, payment: Payment) -> bool:
        if payment.target_kind == "account":
            return True
        funded = await session.scalar(
            select(LedgerAccount.id).where(
                LedgerAccount.owner_id == payment.trader_id,
                LedgerAccount.kind == AccountKind.CLIENT_TRADING.value,
                LedgerAccount.credits_posted > LedgerAccount.debits_posted,
            )
        )
        return funded is not None

    # ------------------------------------------------------------ refunds finance asked for

    @activity.defn
    async def hold_refund(self, request: RefundRequest) -> RefundHeld:
        key = f"refund:{request.refund_id}"
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, request.payment_id, lock=True)
            held = await session.scalar(
                select(LedgerTransfer.id).where(LedgerTransfer.idempotency_key == key)
            )
            if held is not None:
                return RefundHeld(hold_id=held)
            if payment.kind != "deposit" or payment.status not in CREDITED:
                raise ApplicationError(
                    f"deposit {payment.id} is {payment.status}",
                    type="NotRefundable",
                    non_retryable=True,
                )
            wallet = await wallet_account(
                session, payment.brand_id, payment.trader_id, request.currency
            )
            clearing = await psp_clearing_account(
                session, payment.brand_id, payment.psp or "", request.currency
            )
            try:
                view = await transfer(
                    session,
                    TransferRequest(
                        idempotency_key=key,
                        debit_account_id=wallet,
                        credit_account_id=clearing,
                        amount=Money.from_minor(request.amount, request.currency),
                        kind=TransferKind.WITHDRAWAL,
                        pending=True,
                        reference=payment.provider_ref,
                        details={"payment_id": payment.id, "refund_id": request.refund_id},
                    ),
                )
            except LedgerError as exc:
                raise ledger_failure(exc) from exc
            self._set_refund(payment, request.refund_id, status="held", amount=request.amount)
            return RefundHeld(hold_id=view.id)

    @activity.defn
    async def request_psp_refund(self, request: RefundRequest) -> PspRefundOutcome:
        """Idempotent at the PSP on our refund id; a pending refund is asked again later."""
        async with self._sessions() as session:
            payment = await load_payment(session, request.payment_id)
            psp, ref = payment.psp, payment.provider_ref
        if not ref:
            return PspRefundOutcome(succeeded=False, failure_code="no_provider_ref")
        amount = Money.from_minor(request.amount, request.currency)
        try:
            result = await self._provider(psp).refund(ref, amount, request.refund_id)
        except PspError as exc:
            if exc.retryable:
                raise psp_failure(exc) from exc
            return PspRefundOutcome(
                succeeded=False, failure_code=exc.code or "refused", failure_message=str(exc)
            )
        if result.status is RefundStatus.PENDING:
            raise ApplicationError("the refund is pending at the PSP", type="RefundPending")
        if result.status is RefundStatus.FAILED:
            return PspRefundOutcome(
                succeeded=False, provider_ref=result.provider_ref, failure_code=result.failure_code
            )
        return PspRefundOutcome(succeeded=True, provider_ref=result.provider_ref)

    @activity.defn
    async def settle_refund(self, settle: RefundSettle) -> RefundResult:
        """Post the hold on success, void it on failure; record the refund on the payment."""
        request, outcome = settle.request, settle.outcome
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, request.payment_id, lock=True)
            try:
                if outcome.succeeded:
                    await post_pending(session, settle.hold_id, f"refund:{request.refund_id}:post")
                elif settle.hold_id:
                    await void_pending(session, settle.hold_id, f"refund:{request.refund_id}:void")
            except LedgerError as exc:
                raise ledger_failure(exc) from exc
            status = "succeeded" if outcome.succeeded else "failed"
            self._set_refund(
                payment,
                request.refund_id,
                status=status,
                amount=request.amount,
                provider_ref=outcome.provider_ref,
                failure_code=outcome.failure_code,
            )
            refunded = sum(
                r.get("amount", 0)
                for r in refunds_of(payment).values()
                if r.get("status") == "succeeded"
            )
            _update_details(payment, refunded=refunded)
            actor = Actor(type="staff", id=request.requested_by, role="finance")
            await append_audit(
                session,
                actor=actor,
                action=f"deposit.refund_{status}",
                entity_type="payment",
                entity_id=payment.id,
                brand_id=payment.brand_id,
                after={
                    "refund_id": request.refund_id,
                    "amount": request.amount,
                    "currency": request.currency,
                    "reason": request.reason,
                    "failure_code": outcome.failure_code,
                },
                workflow_id=payment.workflow_id,
                event_key=f"refund:{request.refund_id}:{status}",
            )
            if outcome.succeeded and refunded >= (payment.amount_received or payment.amount):
                await set_status(
                    session,
                    payment,
                    DepositStatus.REFUNDED,
                    actor=actor,
                    reason=request.reason,
                    audit={"refunded": refunded},
                )
            return RefundResult(
                refund_id=request.refund_id,
                status=status,
                failure_code=outcome.failure_code,
                payment_status=payment.status,
            )

    @staticmethod
    def _set_refund(payment: Payment, refund_id: str, **fields: Any) -> None:
        refunds = dict(refunds_of(payment))
        refunds[refund_id] = {**refunds.get(refund_id, {}), **fields}
        _update_details(payment, refunds=refunds)
