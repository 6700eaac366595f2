"""What every money workflow (deposit, withdrawal, transfer, reconciliation) shares.

Helpers run inside the caller's transaction, so a ledger transfer, the payment's new status and its
audit event commit together or not at all; a retried activity finds its transfer by idempotency key
and its audit event by event key, and changes nothing twice. `MoneyActivities` holds the one
platform call they all make: a balance operation that is safe to retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from fxcrm.activities.platform_sync import platform_failure
from fxcrm.adapters.platforms.balance import safe_balance_op
from fxcrm.adapters.platforms.base import BalanceOpKind, PlatformError
from fxcrm.adapters.platforms.registry import PlatformRegistry
from fxcrm.adapters.psp.base import PspError
from fxcrm.core.audit import SYSTEM, Actor, append_audit
from fxcrm.domain import ledger as rules
from fxcrm.domain.ledger import AccountKind, LedgerError
from fxcrm.domain.payments import FINAL_STATUSES, FXCRM_REF_PREFIXES, may_leave_final
from fxcrm.ledger import AccountSpec, open_account
from fxcrm.models import Payment, PaymentAlert, TradingAccount
from fxcrm.models.base import utcnow

log = structlog.get_logger(__name__)

# Ledger refusals that no retry can change; anything else (a lock, a lost connection) is retried.
PERMANENT_LEDGER = (
    rules.InvalidAmount,
    rules.InvalidTransfer,
    rules.CurrencyMismatch,
    rules.BrandMismatch,
    rules.UnknownAccount,
    rules.UnknownTransfer,
    rules.InsufficientFunds,
    rules.IdempotencyConflict,
    rules.TransferNotPending,
    rules.PendingExpired,
    rules.NotReversible,
)


def ledger_failure(exc: LedgerError) -> ApplicationError:
    """A typed workflow error: `type` is "Ledger.InsufficientFunds" and so on."""
    return ApplicationError(
        str(exc),
        type=f"Ledger.{type(exc).__name__}",
        non_retryable=isinstance(exc, PERMANENT_LEDGER),
    )


def psp_failure(exc: PspError) -> ApplicationError:
    """A typed workflow error ("Psp.card_declined"); retried only if the PSP may answer otherwise."""
    return ApplicationError(
        str(exc), exc.code, type=f"Psp.{exc.code or 'error'}", non_retryable=not exc.retryable
    )


def platform_ref(prefix: str, payment_id: str) -> str:
    """Our reference on a platform balance operation: `prefix:` and the payment id, cut to the 31
    characters MT4/MT5 keep in a comment (26 hex characters are 104 bits: still unique)."""
    if prefix not in FXCRM_REF_PREFIXES:
        raise ValueError(f"unknown platform reference prefix {prefix!r}")
    return f"{prefix}:{payment_id[:26]}"[:31]


# ---------------------------------------------------------------- ledger accounts


async def wallet_account(
    session: AsyncSession, brand_id: str, trader_id: str, currency: str
) -> str:
    spec = AccountSpec(
        brand_id=brand_id,
        code=rules.client_wallet_code(trader_id, currency),
        kind=AccountKind.CLIENT_WALLET,
        currency=currency,
        owner_id=trader_id,
    )
    return (await open_account(session, spec)).id


async def trading_mirror_account(session: AsyncSession, account: TradingAccount) -> str:
    """The ledger's mirror of a trading account's platform balance (see the sync's drift check)."""
    if account.login is None:
        raise ApplicationError(
            f"trading account {account.id} is not open yet",
            type="AccountNotOpen",
            non_retryable=True,
        )
    spec = AccountSpec(
        brand_id=account.brand_id,
        code=rules.client_trading_code(account.trader_id, account.server_id, account.login),
        kind=AccountKind.CLIENT_TRADING,
        currency=account.currency,
        owner_id=account.trader_id,
    )
    return (await open_account(session, spec)).id


async def house_account(
    session: AsyncSession, brand_id: str, kind: AccountKind, code: str, currency: str
) -> str:
    """A broker-side account: PSP clearing, revenue, expense, FX, suspense, receivables."""
    spec = AccountSpec(brand_id=brand_id, code=code, kind=kind, currency=currency)
    return (await open_account(session, spec)).id


async def psp_clearing_account(
    session: AsyncSession, brand_id: str, psp: str, currency: str
) -> str:
    return await house_account(
        session,
        brand_id,
        AccountKind.PSP_CLEARING,
        rules.psp_clearing_code(psp, currency),
        currency,
    )


# ---------------------------------------------------------------- payment rows


async def load_payment(session: AsyncSession, payment_id: str, *, lock: bool = False) -> Payment:
    payment = await session.get(Payment, payment_id, with_for_update=lock, populate_existing=True)
    if payment is None:
        raise ApplicationError(
            f"payment {payment_id} does not exist", type="UnknownPayment", non_retryable=True
        )
    return payment


async def set_status(
    session: AsyncSession,
    payment: Payment,
    status: str,
    *,
    actor: Actor = SYSTEM,
    reason: str | None = None,
    audit: Mapping[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Moves a payment to `status` with an audit event, once: a retry that finds the payment
    already there changes nothing. A final status is left only as AFTER_FINAL allows (a credited
    deposit charged back or refunded; its completion time stays). `fields` are set on the
    payment, `audit` only recorded in the audit event. Returns whether it changed."""
    if payment.status == status:
        return False
    after_final = payment.status in FINAL_STATUSES
    if after_final and not may_leave_final(payment.kind, payment.status, status):
        log.warning(
            "status change after a final status ignored",
            payment_id=payment.id,
            status=payment.status,
            wanted=status,
        )
        return False
    before = {"status": payment.status}
    payment.status = status
    for name, value in fields.items():
        setattr(payment, name, value)
    now = utcnow()
    payment.updated_at = now
    if status in FINAL_STATUSES and not after_final:
        payment.completed_at = now
    after: dict[str, Any] = {
        "status": status,
        **{k: _plain(v) for k, v in {**fields, **(audit or {})}.items()},
    }
    if reason:
        after["reason"] = reason
    await append_audit(
        session,
        actor=actor,
        action=f"{payment.kind}.{status}",
        entity_type="payment",
        entity_id=payment.id,
        brand_id=payment.brand_id,
        before=before,
        after=after,
        workflow_id=payment.workflow_id,
        event_key=f"payment:{payment.id}:{status}",
    )
    return True


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal | datetime):
        return str(value)
    return value


async def raise_alert(
    session: AsyncSession,
    *,
    key: str,
    brand_id: str,
    kind: str,
    message: str,
    payment_id: str | None = None,
) -> None:
    """An alert for finance, raised once per `key` (a retry finds it)."""
    exists = await session.scalar(select(PaymentAlert.id).where(PaymentAlert.alert_key == key))
    if exists is not None:
        return
    session.add(
        PaymentAlert(
            alert_key=key, brand_id=brand_id, payment_id=payment_id, kind=kind, message=message
        )
    )
    log.warning("payment alert", kind=kind, payment_id=payment_id, message=message)


# ---------------------------------------------------------------- platform balance operations


class PlatformMove(BaseModel):
    server_id: str
    login: int
    kind: BalanceOpKind
    amount: Decimal  # in the trading account's currency
    ref: str  # from platform_ref(): the operation's identity on the platform
    since: datetime  # look for an earlier attempt from here (the payment's creation)


class PlatformMoved(BaseModel):
    ticket: str
    amount: Decimal
    posted_now: bool  # False: an earlier attempt had already done it


class MoneyActivities:
    def __init__(self, platforms: PlatformRegistry) -> None:
        self._platforms = platforms

    @activity.defn
    async def move_platform_balance(self, move: PlatformMove) -> PlatformMoved:
        """Deposit to or withdraw from a trading account exactly once: look up our reference,
        post only if absent, verify after. Refusals (insufficient free margin, unknown login) are
        non-retryable `Platform.*` errors; outages are retried."""
        gateway = await self._platforms.get(move.server_id)
        try:
            op, posted = await safe_balance_op(
                gateway, move.login, move.kind, move.amount, move.ref, since=move.since
            )
        except PlatformError as exc:
            raise platform_failure(exc) from exc
        log.info(
            "platform balance operation",
            server_id=move.server_id,
            login=move.login,
            kind=move.kind.value,
            amount=str(move.amount),
            ref=move.ref,
            posted_now=posted,
        )
        return PlatformMoved(ticket=op.ticket, amount=op.amount, posted_now=posted)

    @activity.defn
    async def find_platform_balance(self, move: PlatformMove) -> PlatformMoved | None:
        """Only looks: the operation with our reference, or None. A caller that gave up on
        `move_platform_balance` asks this before booking the move as not made, so an attempt
        that posted and then timed out is not missed."""
        gateway = await self._platforms.get(move.server_id)
        try:
            op = await gateway.find_balance_op(move.login, move.ref, move.since)
        except PlatformError as exc:
            raise platform_failure(exc) from exc
        if op is None:
            return None
        return PlatformMoved(ticket=op.ticket, amount=op.amount, posted_now=False)
