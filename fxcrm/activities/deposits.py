"""Activities of DepositWorkflow. Each is idempotent: the PSP de-duplicates on our payment id, ledger
transfers on their idempotency key, status changes on the payment's current status (set_status),
so a retry after any crash changes nothing twice.

Money moves in three commits, each whole or not at all:
1. credit_deposit: PSP clearing → wallet (`deposit:{payment}`), FTD mark, status credited/completed;
   for a trading-account target also a pending wallet → trading mirror hold
   (`deposit:{payment}:to-account`), so nothing else (a transfer, a withdrawal, a chargeback) can
   spend the money while the platform credit is under way;
2. (account target) MoneyActivities.move_platform_balance: the platform deposit, retry-safe by ref;
3. complete_account_deposit: the hold posted (`…:to-account:post`), completed.
A crash between 2 and 3 retries 3, which cannot be refused for funds; a platform refusal after 1
voids the hold (`…:to-account:void`) and leaves the money in the wallet (credit_failed, alerted).
The platform balance equals its mirror once 3 has run.
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
    platform_ref,
    psp_clearing_account,
    psp_failure,
    raise_alert,
    set_status,
    trading_mirror_account,
    wallet_account,
)
from fxcrm.adapters.psp.base import (
    CreatePayment,
    PaymentMethod,
    PaymentResult,
    PaymentStatus,
    PspError,
)
from fxcrm.adapters.psp.registry import PspRegistry
from fxcrm.core.db import transaction
from fxcrm.domain.ledger import LedgerError, TransferKind, TransferPhase, TransferState
from fxcrm.domain.money import Money
from fxcrm.domain.money_text import amount_text
from fxcrm.domain.payments import DepositStatus, RiskFlag
from fxcrm.ledger import TransferRequest, post_pending, transfer, void_pending
from fxcrm.models import LedgerTransfer, Payment, Trader, TradingAccount
from fxcrm.workflows.deposit_types import (
    CompleteInput,
    CreditFailedInput,
    CreditInput,
    CreditOut,
    FinishInput,
    PaymentRef,
    PspPaymentOut,
    StatusOut,
)

log = structlog.get_logger(__name__)

# Deposits that put money in the trader's hands: the first of them is the FTD.
CREDITED = (
    DepositStatus.CREDITED.value,
    DepositStatus.COMPLETED.value,
    DepositStatus.CREDIT_FAILED.value,
    DepositStatus.CHARGED_BACK.value,
    DepositStatus.REFUNDED.value,
)


def next_action(result: PaymentResult) -> dict[str, Any] | None:
    """What the client must do to finish the payment, as the portal shows it."""
    if result.redirect_url:
        return {"type": "redirect", "url": result.redirect_url}
    if result.crypto_address:
        return {
            "type": "crypto_address",
            "address": result.crypto_address,
            "network": result.crypto_network,
            "amount": amount_text(result.amount_requested.amount),
            "currency": result.amount_requested.currency,
            "confirmations_required": result.confirmations_required,
        }
    if result.bank_instructions:
        return {"type": "bank_transfer", **result.bank_instructions.model_dump()}
    return None


def _psp_out(result: PaymentResult, recorded: str) -> PspPaymentOut:
    return PspPaymentOut(
        status=result.status,
        provider_ref=result.provider_ref,
        amount_received=result.amount_received.amount if result.amount_received else None,
        failure_code=result.failure_code,
        failure_message=result.failure_message,
        recorded_status=recorded,
    )


class DepositActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], psps: PspRegistry) -> None:
        self._sessions = sessions
        self._psps = psps

    @activity.defn
    async def create_psp_payment(self, ref: PaymentRef) -> PspPaymentOut:
        """Creates the payment at the PSP (idempotent there on our payment id) and records its
        reference and next action; a decline or a permanent refusal records `failed`."""
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, ref.payment_id)
            if payment.status not in (DepositStatus.CREATED, DepositStatus.PENDING):
                # Already decided by an earlier attempt: report it, ask the PSP nothing.
                return PspPaymentOut(
                    status=PaymentStatus.FAILED
                    if payment.status == DepositStatus.FAILED
                    else PaymentStatus.PROCESSING,
                    provider_ref=payment.provider_ref,
                    failure_code=payment.failure_code,
                    recorded_status=payment.status,
                )
            request = CreatePayment(
                payment_id=payment.id,
                amount=Money.from_minor(payment.amount, payment.currency),
                method=PaymentMethod(payment.method or "card"),
                customer_ref=payment.trader_id,
                description=f"Deposit {payment.id}",
                instrument=payment.instrument,
                network=(payment.details or {}).get("network"),
            )
            psp_name = payment.psp
        try:
            result = await self._psps.get(psp_name).create_payment(request)
        except PspError as exc:
            if exc.retryable:
                raise psp_failure(exc) from exc
            code = exc.code or "psp_refused"
            async with transaction(self._sessions) as session:
                payment = await load_payment(session, ref.payment_id, lock=True)
                await _fail(session, payment, DepositStatus.FAILED, code, str(exc))
                return PspPaymentOut(
                    status=PaymentStatus.FAILED,
                    failure_code=code,
                    failure_message=str(exc),
                    recorded_status=payment.status,
                )
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, ref.payment_id, lock=True)
            payment.provider_ref = result.provider_ref
            payment.next_action = next_action(result)
            if result.status == PaymentStatus.FAILED:
                await _fail(
                    session,
                    payment,
                    DepositStatus.FAILED,
                    result.failure_code or "declined",
                    result.failure_message,
                )
            else:
                await set_status(
                    session, payment, DepositStatus.PENDING, provider_ref=result.provider_ref
                )
            return _psp_out(result, payment.status)

    @activity.defn
    async def fetch_psp_payment(self, ref: PaymentRef) -> PspPaymentOut:
        """The PSP's current state: a webhook is only a hint to ask."""
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, ref.payment_id)
            psp_name, provider_ref, recorded = payment.psp, payment.provider_ref, payment.status
        if provider_ref is None:
            raise ApplicationError(
                f"payment {ref.payment_id} has no PSP reference yet", type="NoProviderRef"
            )
        try:
            result = await self._psps.get(psp_name).get_payment(provider_ref)
        except PspError as exc:
            raise psp_failure(exc) from exc
        return _psp_out(result, recorded)

    @activity.defn
    async def credit_deposit(self, inp: CreditInput) -> CreditOut:
        """One transaction: PSP clearing → wallet for what arrived, FTD mark, underpaid flag,
        status credited (a trading account follows) or completed (wallet target)."""
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, inp.payment_id, lock=True)
            asked = Money.from_minor(payment.amount, payment.currency)
            amount = (
                asked
                if inp.amount_received is None
                else Money(amount=inp.amount_received, currency=payment.currency)
            )
            if amount.amount <= 0:
                raise ApplicationError(
                    "nothing arrived to credit", type="NothingReceived", non_retryable=True
                )
            target = await self._target_account(session, payment)
            if payment.status in (DepositStatus.CREATED, DepositStatus.PENDING):
                await self._post_credit(session, payment, asked, amount, target)
            elif payment.status not in (DepositStatus.CREDITED, DepositStatus.COMPLETED):
                raise ApplicationError(
                    f"payment {payment.id} is {payment.status}: not credited",
                    type="NotCreditable",
                    non_retryable=True,
                )
            credited = Money.from_minor(payment.amount_received or payment.amount, payment.currency)
            return CreditOut(
                status=payment.status,
                credited=credited.amount,
                is_ftd=payment.is_ftd,
                server_id=target.server_id if target else None,
                login=target.login if target else None,
                since=payment.created_at if target else None,
            )

    async def _post_credit(
        self,
        session: AsyncSession,
        payment: Payment,
        asked: Money,
        amount: Money,
        target: TradingAccount | None,
    ) -> None:
        clearing = await psp_clearing_account(
            session, payment.brand_id, payment.psp or "sim", payment.currency
        )
        wallet = await wallet_account(
            session, payment.brand_id, payment.trader_id, payment.currency
        )
        try:
            await transfer(
                session,
                TransferRequest(
                    idempotency_key=f"deposit:{payment.id}",
                    debit_account_id=clearing,
                    credit_account_id=wallet,
                    amount=amount,
                    kind=TransferKind.DEPOSIT,
                    reference=payment.provider_ref,
                    details={"payment_id": payment.id, "method": payment.method},
                ),
            )
            if target is not None:
                mirror = await trading_mirror_account(session, target)
                await transfer(session, _to_account(payment, wallet, mirror, amount, pending=True))
        except LedgerError as exc:
            raise ledger_failure(exc) from exc
        flags = list(payment.risk_flags or [])
        if amount.amount < asked.amount and RiskFlag.UNDERPAID.value not in flags:
            flags.append(RiskFlag.UNDERPAID.value)
        await set_status(
            session,
            payment,
            DepositStatus.CREDITED if target is not None else DepositStatus.COMPLETED,
            amount_received=amount.to_minor(),
            is_ftd=await _first_deposit(session, payment),
            risk_flags=flags,
        )

    async def _target_account(
        self, session: AsyncSession, payment: Payment
    ) -> TradingAccount | None:
        if payment.target_kind != "account" or payment.target_account_id is None:
            return None
        account = await session.get(TradingAccount, payment.target_account_id)
        if account is None or account.login is None:
            raise ApplicationError(
                f"trading account {payment.target_account_id} is not open",
                type="AccountNotOpen",
                non_retryable=True,
            )
        return account

    @activity.defn
    async def complete_account_deposit(self, inp: CompleteInput) -> StatusOut:
        """After the platform credit: the wallet → trading mirror hold posted and completed, in one
        transaction, so the mirror follows the platform balance exactly once."""
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, inp.payment_id, lock=True)
            if payment.status == DepositStatus.COMPLETED:
                return StatusOut(status=payment.status)
            if payment.status != DepositStatus.CREDITED:
                raise ApplicationError(
                    f"payment {payment.id} is {payment.status}, not credited",
                    type="NotCredited",
                    non_retryable=True,
                )
            account = await self._target_account(session, payment)
            assert account is not None
            amount = Money.from_minor(payment.amount_received or payment.amount, payment.currency)
            hold = await _account_hold(session, payment)
            try:
                if hold is not None:
                    await post_pending(session, hold.id, f"{to_account_key(payment.id)}:post")
                else:
                    # Credited before the hold existed: move it now, as it was done then.
                    wallet = await wallet_account(
                        session, payment.brand_id, payment.trader_id, payment.currency
                    )
                    mirror = await trading_mirror_account(session, account)
                    await transfer(session, _to_account(payment, wallet, mirror, amount))
            except LedgerError as exc:
                raise ledger_failure(exc) from exc
            details = {**(payment.details or {}), "platform_ticket": inp.platform_ticket}
            await set_status(session, payment, DepositStatus.COMPLETED, details=details)
            return StatusOut(status=payment.status)

    @activity.defn
    async def mark_credit_failed(self, inp: CreditFailedInput) -> StatusOut:
        """The platform would not take the money: it stays in the wallet, finance is alerted."""
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, inp.payment_id, lock=True)
            hold = await _account_hold(session, payment)
            if hold is not None and hold.state == TransferState.PENDING:
                try:
                    await void_pending(session, hold.id, f"{to_account_key(payment.id)}:void")
                except LedgerError as exc:
                    raise ledger_failure(exc) from exc
            await _fail(
                session, payment, DepositStatus.CREDIT_FAILED, "platform_credit_failed", inp.reason
            )
            await raise_alert(
                session,
                key=f"platform_credit_failed:{payment.id}",
                brand_id=payment.brand_id,
                kind="platform_credit_failed",
                payment_id=payment.id,
                message=(
                    f"deposit {payment.id}: the platform credit (ref "
                    f"{platform_ref('dep', payment.id)}) failed: {inp.reason}; the money is in "
                    "the trader's wallet"
                )[:1000],
            )
            return StatusOut(status=payment.status)

    @activity.defn
    async def finish_unpaid(self, inp: FinishInput) -> StatusOut:
        """Declined or expired: nothing was posted, only the status and its reason change."""
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, inp.payment_id, lock=True)
            await _fail(session, payment, inp.status, inp.failure_code, inp.reason)
            return StatusOut(status=payment.status)


def to_account_key(payment_id: str) -> str:
    """The wallet → trading mirror move of an account deposit: a hold, or (before holds) posted."""
    return f"deposit:{payment_id}:to-account"


def _to_account(
    payment: Payment, wallet: str, mirror: str, amount: Money, *, pending: bool = False
) -> TransferRequest:
    return TransferRequest(
        idempotency_key=to_account_key(payment.id),
        debit_account_id=wallet,
        credit_account_id=mirror,
        amount=amount,
        kind=TransferKind.TRANSFER,
        pending=pending,
        reference=platform_ref("dep", payment.id),
        details={"payment_id": payment.id},
    )


async def _account_hold(session: AsyncSession, payment: Payment) -> LedgerTransfer | None:
    """The pending wallet → mirror transfer made at the credit (None for a payment credited before
    holds were made, or to the wallet)."""
    return await session.scalar(
        select(LedgerTransfer).where(
            LedgerTransfer.idempotency_key == to_account_key(payment.id),
            LedgerTransfer.phase == TransferPhase.PENDING.value,
        )
    )


async def _fail(
    session: AsyncSession, payment: Payment, status: str, code: str | None, reason: str | None
) -> None:
    """A final status that moved no money (or left it in the wallet), with its code and reason."""
    await set_status(
        session,
        payment,
        status,
        reason=reason,
        failure_code=code,
        failure_reason=reason[:500] if reason else None,
    )


async def _first_deposit(session: AsyncSession, payment: Payment) -> bool:
    """Whether no other deposit of this trader was ever credited. The trader row is locked first,
    so two deposits credited at once cannot both be first (PostgreSQL; SQLite is serialized)."""
    await session.get(Trader, payment.trader_id, with_for_update=True)
    earlier = await session.scalar(
        select(Payment.id)
        .where(
            Payment.trader_id == payment.trader_id,
            Payment.kind == "deposit",
            Payment.id != payment.id,
            Payment.status.in_(CREDITED),
        )
        .limit(1)
    )
    return earlier is None
