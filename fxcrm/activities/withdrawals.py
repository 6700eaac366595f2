"""Activities of the withdrawal workflow. Each is idempotent: ledger transfers carry keys derived
from the payment id (`withdrawal:{id}:hold`, `:post`, `:void`, ...), status changes and alerts are
written once, and the PSP is called with our ids (payout id = payment id, refund ids per deposit).
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import func, select
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
    trading_mirror_account,
    wallet_account,
)
from fxcrm.activities.platform_sync import platform_failure
from fxcrm.adapters.platforms.base import PlatformError
from fxcrm.adapters.platforms.registry import PlatformRegistry
from fxcrm.adapters.psp.base import (
    CreatePayout,
    PaymentMethod,
    PayoutDestination,
    PayoutResult,
    PspError,
)
from fxcrm.adapters.psp.registry import PspRegistry
from fxcrm.core.audit import SYSTEM, Actor, append_audit
from fxcrm.core.db import transaction
from fxcrm.domain.brand import BrandConfig
from fxcrm.domain.ledger import LedgerError, TransferKind
from fxcrm.domain.money import Money
from fxcrm.domain.payments import (
    DepositStatus,
    PaymentRules,
    WithdrawalContext,
    WithdrawalStatus,
    withdrawal_risk_flags,
)
from fxcrm.domain.withdrawals import CardDeposit, split_payout
from fxcrm.ledger import TransferRequest, post_pending, transfer, void_pending
from fxcrm.models import (
    Brand,
    IngestedDeal,
    LedgerTransfer,
    Payment,
    Trader,
    TradingAccount,
)
from fxcrm.models.base import utcnow
from fxcrm.workflows.withdrawal_types import (
    AuditEntry,
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
    StatusChange,
)

log = structlog.get_logger(__name__)

# Deposits whose money arrived: their instruments count as "deposited from".
RECEIVED = (
    DepositStatus.CREDITED.value,
    DepositStatus.COMPLETED.value,
    DepositStatus.CREDIT_FAILED.value,
)


def hold_key(payment_id: str) -> str:
    return f"withdrawal:{payment_id}:hold"


def _not_found(what: str) -> ApplicationError:
    return ApplicationError(what, type="NotFound", non_retryable=True)


async def _rules(session: AsyncSession, brand_id: str) -> PaymentRules:
    brand = await session.get(Brand, brand_id)
    if brand is None:
        raise _not_found(f"brand {brand_id} not found")
    return BrandConfig.model_validate(brand.config).payments


async def _source_account(session: AsyncSession, payment: Payment) -> TradingAccount:
    account = (
        await session.get(TradingAccount, payment.source_account_id)
        if payment.source_account_id
        else None
    )
    if account is None or account.login is None:
        raise _not_found(f"payment {payment.id} has no open source account")
    return account


async def _mirror_and_wallet(session: AsyncSession, payment: Payment) -> tuple[str, str]:
    """The ledger accounts money moves between for an account source: the trading account's
    mirror and the wallet."""
    mirror = await trading_mirror_account(session, await _source_account(session, payment))
    wallet = await wallet_account(session, payment.brand_id, payment.trader_id, payment.currency)
    return mirror, wallet


async def _alert(session: AsyncSession, payment: Payment, kind: str, message: str) -> None:
    """An alert for finance about this withdrawal, raised once per kind."""
    await raise_alert(
        session,
        key=f"withdrawal:{payment.id}:{kind}",
        brand_id=payment.brand_id,
        kind=kind,
        message=message,
        payment_id=payment.id,
    )


def destination(payment: Payment) -> PayoutDestination:
    """The destination the client gave, stored encrypted on the payment."""
    data: dict[str, Any] = json.loads(payment.instrument or "{}")
    return PayoutDestination(kind=PaymentMethod(payment.method or "card"), **data)


def _outcome(result: PayoutResult) -> PayoutOutcome:
    return PayoutOutcome(
        provider_ref=result.provider_ref,
        status=result.status.value,
        failure_code=result.failure_code,
        failure_message=result.failure_message,
    )


class WithdrawalActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        platforms: PlatformRegistry,
        psps: PspRegistry,
    ) -> None:
        self._sessions = sessions
        self._platforms = platforms
        self._psps = psps

    # ---- checks and the hold ------------------------------------------------------------

    @activity.defn(name="withdrawal.check_account_funds")
    async def check_account_funds(self, ref: PaymentRef) -> FundsCheck:
        """The platform's free margin now (the API only saw the database's last sync)."""
        async with self._sessions() as session:
            payment = await load_payment(session, ref.payment_id)
            account = await _source_account(session, payment)
            server_id, login = account.server_id, account.login
            wanted = Money.from_minor(payment.amount, payment.currency).amount
        assert login is not None
        gateway = await self._platforms.get(server_id)
        try:
            state = await gateway.get_account(login)
        except PlatformError as exc:
            raise platform_failure(exc) from exc
        if state.free_margin < wanted:
            return FundsCheck(
                ok=False,
                reason=f"free margin {state.free_margin} is less than {wanted} {payment.currency}",
            )
        return FundsCheck(ok=True)

    @activity.defn(name="withdrawal.move_account_to_wallet")
    async def move_account_to_wallet(self, ref: PaymentRef) -> None:
        """After the platform debit: the ledger mirror follows it, into the wallet."""
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, ref.payment_id)
            mirror, wallet = await _mirror_and_wallet(session, payment)
            await self._transfer(
                session, f"withdrawal:{payment.id}:from-account", mirror, wallet, payment
            )

    @activity.defn(name="withdrawal.hold_funds")
    async def hold_funds(self, ref: PaymentRef) -> HoldResult:
        """Pending transfer wallet → PSP clearing, risk flags, then awaiting approval."""
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, ref.payment_id, lock=True)
            rules = await _rules(session, payment.brand_id)
            result = HoldResult(
                risk_flags=list(payment.risk_flags or []),
                approvals_required=payment.approvals_required,
                escalation_hours=rules.approval_escalation_hours,
                expiry_hours=rules.approval_expiry_hours,
            )
            if payment.status != WithdrawalStatus.REQUESTED:
                return result  # a retry: the hold and the flags are already there
            wallet = await wallet_account(
                session, payment.brand_id, payment.trader_id, payment.currency
            )
            clearing = await psp_clearing_account(
                session, payment.brand_id, payment.psp or "sim", payment.currency
            )
            await self._transfer(session, hold_key(payment.id), wallet, clearing, payment, True)
            flags = [flag.value for flag in await self._risk_flags(session, payment, rules)]
            await set_status(
                session,
                payment,
                WithdrawalStatus.AWAITING_APPROVAL,
                risk_flags=flags,
            )
            return result.model_copy(update={"risk_flags": flags})

    async def _risk_flags(
        self, session: AsyncSession, payment: Payment, rules: PaymentRules
    ) -> list[Any]:
        trader = await session.get(Trader, payment.trader_id)
        if trader is None:
            raise _not_found(f"trader {payment.trader_id} not found")
        deposits = (
            await session.execute(
                select(Payment.instrument_fingerprint, Payment.created_at).where(
                    Payment.trader_id == payment.trader_id,
                    Payment.kind == "deposit",
                    Payment.status.in_(RECEIVED),
                )
            )
        ).all()
        last_deposit_at = max((row.created_at for row in deposits), default=None)
        lots = Decimal(0)
        if last_deposit_at is not None:
            accounts = (
                await session.execute(
                    select(TradingAccount.server_id, TradingAccount.login).where(
                        TradingAccount.trader_id == payment.trader_id,
                        TradingAccount.login.is_not(None),
                    )
                )
            ).all()
            for server_id, login in accounts:
                traded = await session.scalar(
                    select(func.coalesce(func.sum(IngestedDeal.volume_lots), 0)).where(
                        IngestedDeal.server_id == server_id,
                        IngestedDeal.login == login,
                        IngestedDeal.closed_at >= last_deposit_at,
                    )
                )
                lots += Decimal(str(traded or 0))
        now = utcnow()
        recent = await session.scalar(
            select(func.count())
            .select_from(Payment)
            .where(
                Payment.trader_id == payment.trader_id,
                Payment.kind == "withdrawal",
                Payment.id != payment.id,
                Payment.created_at >= now - timedelta(hours=24),
            )
        )
        context = WithdrawalContext(
            destination_fingerprint=payment.instrument_fingerprint,
            deposited_fingerprints=frozenset(
                row.instrument_fingerprint for row in deposits if row.instrument_fingerprint
            ),
            last_deposit_at=last_deposit_at,
            lots_since_last_deposit=lots,
            holder_name=destination(payment).account_holder,
            client_name=f"{trader.first_name} {trader.last_name}",
            withdrawals_last_24h=int(recent or 0),
            now=now,
        )
        return list(withdrawal_risk_flags(rules, context))

    # ---- decisions, status, audit, alerts ------------------------------------------------

    @activity.defn(name="withdrawal.set_status")
    async def set_status(self, change: StatusChange) -> None:
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, change.payment_id, lock=True)
            actor = (
                Actor(type="staff", id=change.actor_id, role=change.actor_role)
                if change.actor_id
                else SYSTEM
            )
            fields: dict[str, Any] = {}
            if change.failure_code is not None:
                fields["failure_code"] = change.failure_code
                fields["failure_reason"] = (change.reason or "")[:500]
            await set_status(
                session, payment, change.status, actor=actor, reason=change.reason, **fields
            )
            if change.status == WithdrawalStatus.FAILED:
                await _alert(
                    session,
                    payment,
                    "payout_failed",
                    f"withdrawal {payment.id}: {change.reason}; funds returned",
                )

    @activity.defn(name="withdrawal.record_audit")
    async def record_audit(self, entry: AuditEntry) -> None:
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, entry.payment_id)
            actor = (
                Actor(type="staff", id=entry.actor_id, role=entry.actor_role)
                if entry.actor_role
                else Actor(type="unknown", id=entry.actor_id or "?")
            )
            await append_audit(
                session,
                actor=actor,
                action=entry.action,
                entity_type="payment",
                entity_id=payment.id,
                brand_id=payment.brand_id,
                after=dict(entry.after),
                workflow_id=payment.workflow_id,
                event_key=entry.key,
            )

    @activity.defn(name="withdrawal.escalate")
    async def escalate(self, ref: PaymentRef) -> None:
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, ref.payment_id)
            amount = Money.from_minor(payment.amount, payment.currency)
            await _alert(
                session,
                payment,
                "approval_escalated",
                f"withdrawal {payment.id} of {amount} still waits for approval",
            )

    @activity.defn(name="withdrawal.alert_payout_stuck")
    async def alert_payout_stuck(self, ref: PaymentRef) -> None:
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, ref.payment_id)
            await _alert(
                session,
                payment,
                "payout_stuck",
                f"the payout of withdrawal {payment.id} has no final status yet",
            )

    # ---- paying out -----------------------------------------------------------------------

    @activity.defn(name="withdrawal.plan_payout")
    async def plan_payout(self, ref: PaymentRef) -> PayoutPlan:
        """Refund to the cards deposited from first (fxcrm.domain.withdrawals.split_payout).
        The plan is stored on the payment, so a retry pays by the same plan."""
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, ref.payment_id, lock=True)
            stored = (payment.details or {}).get("payout_plan")
            if stored is not None:
                return PayoutPlan.model_validate(stored)
            deposits = (
                await session.scalars(
                    select(Payment).where(
                        Payment.trader_id == payment.trader_id,
                        Payment.kind == "deposit",
                        Payment.method == "card",
                        Payment.psp == payment.psp,
                        Payment.currency == payment.currency,
                        Payment.status.in_(RECEIVED),
                        Payment.provider_ref.is_not(None),
                    )
                )
            ).all()
            refunded = await self._refunded_by_deposit(session, payment)
            split = split_payout(
                payment.amount,
                [
                    CardDeposit(
                        payment_id=d.id,
                        provider_ref=d.provider_ref or "",
                        refundable=(d.amount_received or d.amount) - refunded.get(d.id, 0),
                        created_at=d.created_at,
                    )
                    for d in deposits
                ],
            )
            plan = PayoutPlan(
                refunds=[
                    RefundOrder(
                        payment_id=payment.id,
                        deposit_id=part.deposit_id,
                        provider_ref=part.provider_ref,
                        amount=part.amount,
                    )
                    for part in split.refunds
                ],
                payout=split.payout,
            )
            payment.details = {**(payment.details or {}), "payout_plan": plan.model_dump()}
            return plan

    async def _refunded_by_deposit(self, session: AsyncSession, payment: Payment) -> dict[str, int]:
        """Refunds already made (or planned by a payout under way) against each deposit."""
        others = (
            await session.scalars(
                select(Payment).where(
                    Payment.trader_id == payment.trader_id,
                    Payment.kind == "withdrawal",
                    Payment.id != payment.id,
                )
            )
        ).all()
        total: dict[str, int] = {}
        for other in others:
            details = other.details or {}
            entries = list(details.get("refunds", []))
            if other.status == WithdrawalStatus.APPROVED:
                entries = (details.get("payout_plan") or {}).get("refunds", [])
            for entry in entries:
                total[entry["deposit_id"]] = total.get(entry["deposit_id"], 0) + entry["amount"]
        return total

    @activity.defn(name="withdrawal.refund_to_card")
    async def refund_to_card(self, order: RefundOrder) -> RefundOutcome:
        """Refund (part of) a card deposit, idempotent at the PSP on our refund id. The refund is
        written on the withdrawal (`details.refunds`) before the PSP is asked, so the PSP's refund
        webhook never finds a refund fxcrm does not know of (the chargeback steps read it); a
        refusal takes it off again and that part goes by the chosen method."""
        refund_id = f"wd-{order.payment_id}-{order.deposit_id}"
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, order.payment_id, lock=True)
            provider, currency = self._psps.get(payment.psp), payment.currency
            self._note_refund(payment, refund_id, order, status="requested")
        try:
            result = await provider.refund(
                order.provider_ref, Money.from_minor(order.amount, currency), refund_id
            )
        except PspError as exc:
            if exc.retryable:
                raise psp_failure(exc) from exc
            log.warning(
                "refund refused; paid by the chosen method", code=exc.code, refund=refund_id
            )
            await self._drop_refund(order.payment_id, refund_id)
            return RefundOutcome(ok=False, failure_code=exc.code)
        if result.status.value == "failed":
            await self._drop_refund(order.payment_id, refund_id)
            return RefundOutcome(ok=False, failure_code=result.failure_code)
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, order.payment_id, lock=True)
            self._note_refund(
                payment, refund_id, order, status="succeeded", provider_ref=result.provider_ref
            )
        return RefundOutcome(ok=True, refund_ref=result.provider_ref)

    @staticmethod
    def _note_refund(
        payment: Payment, refund_id: str, order: RefundOrder, **fields: str | None
    ) -> None:
        details = dict(payment.details or {})
        others = [r for r in details.get("refunds", []) if r["refund_id"] != refund_id]
        entry = {"refund_id": refund_id, "deposit_id": order.deposit_id, "amount": order.amount}
        payment.details = {**details, "refunds": [*others, {**entry, **fields}]}

    async def _drop_refund(self, payment_id: str, refund_id: str) -> None:
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, payment_id, lock=True)
            details = dict(payment.details or {})
            kept = [r for r in details.get("refunds", []) if r["refund_id"] != refund_id]
            payment.details = {**details, "refunds": kept}

    @activity.defn(name="withdrawal.create_payout")
    async def create_payout(self, order: PayoutOrder) -> PayoutOutcome:
        """Idempotent at the PSP on our payment id: a retry gets the same payout."""
        async with self._sessions() as session:
            payment = await load_payment(session, order.payment_id)
            provider = self._psps.get(payment.psp)
            request = CreatePayout(
                payout_id=payment.id,
                amount=Money.from_minor(order.amount, payment.currency),
                destination=destination(payment),
                customer_ref=payment.trader_id,
                description=f"withdrawal {payment.id}",
            )
        try:
            result = await provider.create_payout(request)
        except PspError as exc:
            if exc.retryable:
                raise psp_failure(exc) from exc
            return PayoutOutcome(
                provider_ref=None, status="failed", failure_code=exc.code, failure_message=str(exc)
            )
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, order.payment_id, lock=True)
            payment.provider_ref = result.provider_ref
        return _outcome(result)

    @activity.defn(name="withdrawal.payout_status")
    async def payout_status(self, ref: PaymentRef) -> PayoutOutcome:
        async with self._sessions() as session:
            payment = await load_payment(session, ref.payment_id)
            provider, provider_ref = self._psps.get(payment.psp), payment.provider_ref
        if provider_ref is None:
            raise _not_found(f"withdrawal {ref.payment_id} has no payout at the PSP")
        try:
            return _outcome(await provider.get_payout(provider_ref))
        except PspError as exc:
            raise psp_failure(exc) from exc

    # ---- the end of the hold ------------------------------------------------------------

    @activity.defn(name="withdrawal.release_hold")
    async def release_hold(self, release: Release) -> Released:
        """Post what was paid, void the rest; money taken off a trading account goes back to
        its ledger mirror in the same transaction (the platform credit follows)."""
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, release.payment_id, lock=True)
            hold = await session.scalar(
                select(LedgerTransfer).where(LedgerTransfer.idempotency_key == hold_key(payment.id))
            )
            try:
                if hold is not None:
                    if release.posted > 0:
                        partial = release.posted < payment.amount
                        await post_pending(
                            session,
                            hold.id,
                            f"withdrawal:{payment.id}:post",
                            Money.from_minor(release.posted, payment.currency) if partial else None,
                        )
                    else:
                        await void_pending(session, hold.id, f"withdrawal:{payment.id}:void")
                returned = payment.amount - release.posted
                if release.to_account and returned > 0:
                    mirror, wallet = await _mirror_and_wallet(session, payment)
                    await self._transfer(
                        session,
                        f"withdrawal:{payment.id}:return",
                        wallet,
                        mirror,
                        payment,
                        amount=returned,
                    )
            except LedgerError as exc:
                raise ledger_failure(exc) from exc
            return Released(returned=returned)

    @activity.defn(name="withdrawal.keep_in_wallet")
    async def keep_in_wallet(self, ref: PaymentRef) -> None:
        """The platform refused the money back: undo the mirror credit, keep it in the wallet."""
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, ref.payment_id, lock=True)
            back = await session.scalar(
                select(LedgerTransfer).where(
                    LedgerTransfer.idempotency_key == f"withdrawal:{payment.id}:return"
                )
            )
            if back is None:
                return
            mirror, wallet = await _mirror_and_wallet(session, payment)
            await self._transfer(
                session,
                f"withdrawal:{payment.id}:kept-in-wallet",
                mirror,
                wallet,
                payment,
                amount=back.amount,
            )
            await _alert(
                session,
                payment,
                "platform_credit_failed",
                (
                    f"withdrawal {payment.id}: the trading account refused the returned funds; "
                    "they are in the client's wallet"
                ),
            )

    async def _transfer(
        self,
        session: AsyncSession,
        key: str,
        debit: str,
        credit: str,
        payment: Payment,
        pending: bool = False,
        *,
        amount: int | None = None,
    ) -> None:
        try:
            await transfer(
                session,
                TransferRequest(
                    idempotency_key=key,
                    debit_account_id=debit,
                    credit_account_id=credit,
                    amount=Money.from_minor(amount or payment.amount, payment.currency),
                    kind=TransferKind.WITHDRAWAL if pending else TransferKind.TRANSFER,
                    pending=pending,
                    reference=payment.id,
                ),
            )
        except LedgerError as exc:
            raise ledger_failure(exc) from exc
