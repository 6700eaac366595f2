"""Activities of the transfer workflow: reserve the ledger legs, then post or void them.

The platform side uses MoneyActivities.move_platform_balance. Each activity here is one
transaction whose ledger writes carry idempotency keys derived from the payment
(`transfer:{payment}:hold:{leg}`, `...:post:{leg}`, `...:void:{leg}`), and whose status change is
idempotent (set_status), so a retry after any crash writes nothing twice.
"""

from __future__ import annotations

from decimal import Decimal

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from fxcrm.activities.money import (
    house_account,
    ledger_failure,
    load_payment,
    platform_ref,
    raise_alert,
    set_status,
    trading_mirror_account,
    wallet_account,
)
from fxcrm.core.db import transaction
from fxcrm.domain import ledger as rules
from fxcrm.domain.ledger import AccountKind, LedgerError, TransferKind, TransferPhase
from fxcrm.domain.money import Money
from fxcrm.domain.payments import TransferStatus
from fxcrm.domain.transfers import Role, quote, transfer_legs
from fxcrm.ledger import TransferRequest, post_pending, transfer, transfer_linked, void_pending
from fxcrm.models import LedgerTransfer, Payment, TradingAccount
from fxcrm.workflows.transfer_types import PaymentRef, PlatformLeg, SettleInput, TransferPlan

log = structlog.get_logger(__name__)


def group_id(payment_id: str) -> str:
    return f"transfer:{payment_id}"


def _permanent(message: str, type_: str) -> ApplicationError:
    return ApplicationError(message, type=type_, non_retryable=True)


async def _trading_account(session: AsyncSession, account_id: str | None) -> TradingAccount:
    account = await session.get(TradingAccount, account_id) if account_id else None
    if account is None or account.login is None or account.status != "open":
        raise _permanent(f"trading account {account_id} is not open", "AccountNotOpen")
    return account


def _major(minor: int, currency: str) -> Decimal:
    return Money.from_minor(minor, currency).amount


def _recorded_quote(payment: Payment) -> rules.FxQuote | None:
    """The conversion recorded when the trader asked; None when no currency changes."""
    target = payment.target_currency or payment.currency
    if target == payment.currency:
        return None
    fx = (payment.details or {}).get("fx") or {}
    if payment.fx_rate is None or "spread" not in fx:
        raise _permanent(f"transfer {payment.id} has no recorded rate", "Transfer.NoRate")
    recorded = quote(
        payment.amount, payment.currency, target, Decimal(payment.fx_rate), Decimal(fx["spread"])
    )
    if recorded.net_amount != payment.target_amount:
        raise _permanent(f"transfer {payment.id}: recorded amounts disagree", "Transfer.BadQuote")
    return recorded


class TransferActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn
    async def hold_transfer(self, ref: PaymentRef) -> TransferPlan:
        """Reserve every ledger leg as one linked group of pending transfers (all or none): the
        source's available balance drops now, nothing is posted until the platforms agree.
        Refused (non-retryable `Ledger.InsufficientFunds`, `AccountNotOpen`) with nothing held."""
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, ref.payment_id)
            fx = _recorded_quote(payment)
            target_currency = payment.target_currency or payment.currency
            roles: dict[Role, str] = {}
            plan = TransferPlan(payment_id=payment.id, since=payment.created_at)
            if payment.source_kind == "account":
                source = await _trading_account(session, payment.source_account_id)
                roles[Role.SOURCE] = await trading_mirror_account(session, source)
                plan.withdraw = self._leg(source, payment.amount, platform_ref("to", payment.id))
                plan.refund = self._leg(source, payment.amount, platform_ref("tr", payment.id))
            else:
                roles[Role.SOURCE] = await wallet_account(
                    session, payment.brand_id, payment.trader_id, payment.currency
                )
            arriving = fx.net_amount if fx else payment.amount
            if payment.target_kind == "account":
                target = await _trading_account(session, payment.target_account_id)
                roles[Role.TARGET] = await trading_mirror_account(session, target)
                plan.deposit = self._leg(target, arriving, platform_ref("ti", payment.id))
            else:
                roles[Role.TARGET] = await wallet_account(
                    session, payment.brand_id, payment.trader_id, target_currency
                )
            if fx is not None:
                roles.update(await self._fx_accounts(session, payment.brand_id, fx))
            requests = [
                TransferRequest(
                    idempotency_key=f"{group_id(payment.id)}:hold:{leg.name}",
                    debit_account_id=roles[leg.debit],
                    credit_account_id=roles[leg.credit],
                    amount=Money.from_minor(leg.amount, leg.currency),
                    kind=TransferKind.TRANSFER if fx is None else TransferKind.FX,
                    pending=True,
                    reference=payment.id,
                    details={"payment_id": payment.id, **({"fx": fx.as_record()} if fx else {})},
                )
                for leg in transfer_legs(payment.amount, payment.currency, fx)
            ]
            try:
                await transfer_linked(session, requests, group_id=group_id(payment.id))
            except LedgerError as exc:
                raise ledger_failure(exc) from exc
            return plan

    @staticmethod
    def _leg(account: TradingAccount, minor: int, ref: str) -> PlatformLeg:
        assert account.login is not None
        return PlatformLeg(
            account_id=account.id,
            server_id=account.server_id,
            login=account.login,
            amount=_major(minor, account.currency),
            ref=ref,
        )

    @staticmethod
    async def _fx_accounts(
        session: AsyncSession, brand_id: str, fx: rules.FxQuote
    ) -> dict[Role, str]:
        src, dst = fx.source_currency, fx.target_currency
        return {
            Role.FX_SOURCE: await house_account(
                session, brand_id, AccountKind.FX, rules.fx_code(src), src
            ),
            Role.FX_TARGET: await house_account(
                session, brand_id, AccountKind.FX, rules.fx_code(dst), dst
            ),
            Role.REVENUE: await house_account(
                session,
                brand_id,
                AccountKind.BROKER_REVENUE,
                rules.broker_revenue_code(dst),
                dst,
            ),
        }

    @activity.defn
    async def settle_transfer(self, inp: SettleInput) -> None:
        """Post (completed) or void (failed, stranded) the held legs and record the outcome, in
        one transaction. Legs never held (the hold was refused) leave nothing to resolve."""
        async with transaction(self._sessions) as session:
            payment = await load_payment(session, inp.payment_id, lock=True)
            holds = (
                await session.scalars(
                    select(LedgerTransfer)
                    .where(
                        LedgerTransfer.group_id == group_id(payment.id),
                        LedgerTransfer.phase == TransferPhase.PENDING.value,
                    )
                    .order_by(LedgerTransfer.idempotency_key)
                )
            ).all()
            resolve = post_pending if inp.outcome == "completed" else void_pending
            verb = "post" if inp.outcome == "completed" else "void"
            try:
                for hold in holds:
                    leg = hold.idempotency_key.rsplit(":", 1)[-1]
                    await resolve(session, hold.id, f"{group_id(payment.id)}:{verb}:{leg}")
                if inp.outcome == "stranded":
                    await self._to_suspense(session, payment)
            except LedgerError as exc:
                raise ledger_failure(exc) from exc
            status = (
                TransferStatus.COMPLETED if inp.outcome == "completed" else TransferStatus.FAILED
            )
            details = {**(payment.details or {}), "platform_tickets": inp.tickets}
            await set_status(
                session,
                payment,
                status.value,
                reason=inp.failure_reason,
                failure_code=inp.failure_code,
                failure_reason=inp.failure_reason,
                details=details,
            )
        log.info("transfer settled", payment_id=inp.payment_id, outcome=inp.outcome)

    @staticmethod
    async def _to_suspense(session: AsyncSession, payment: Payment) -> None:
        """The source trading account was debited on its platform and could not be credited
        back: its mirror follows the platform, the money waits in suspense for finance."""
        source = await _trading_account(session, payment.source_account_id)
        suspense = await house_account(
            session,
            payment.brand_id,
            AccountKind.SUSPENSE,
            rules.suspense_code(payment.currency),
            payment.currency,
        )
        await transfer(
            session,
            TransferRequest(
                idempotency_key=f"{group_id(payment.id)}:suspense",
                debit_account_id=await trading_mirror_account(session, source),
                credit_account_id=suspense,
                amount=Money.from_minor(payment.amount, payment.currency),
                kind=TransferKind.CORRECTION,
                reference=payment.id,
                details={"payment_id": payment.id, "why": "transfer compensation failed"},
            ),
        )
        await raise_alert(
            session,
            key=f"{group_id(payment.id)}:stranded",
            brand_id=payment.brand_id,
            kind="transfer_compensation_failed",
            message=(
                f"transfer {payment.id}: the source account was debited, the target refused and "
                "the source could not be credited back; the amount is in suspense"
            ),
            payment_id=payment.id,
        )
