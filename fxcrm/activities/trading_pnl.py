"""Realized trading P/L and dealers' balance operations into the ledger's mirrors of trading
accounts.

A trading account's platform balance moves with fxcrm's deposits, withdrawals and transfers (posted
by the payment workflows), with every deal's profit, commission and swap (opening deals too: MT5
charges commission on them), and with balance operations a dealer makes on the platform. The last
two are posted here, per account, from the ingested rows, so that the ledger mirror keeps equal to
the platform balance to the cent. The counterparty of trading is the broker's trading P/L account
(a client's profit is the broker's loss on a B-book); a dealer's operation goes to suspense, until
finance says what it was.

Exactly once: the deals posted are those with an id above the server cursor's `pnl_posted_upto`,
the operations those above `ops_posted_upto`; the transfers and the cursors move in one
transaction. Rows booked before the mirror existed are not posted (the balance they changed was
never mirrored).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import structlog
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from fxcrm.adapters.platforms.base import BALANCE
from fxcrm.core.db import transaction
from fxcrm.domain import ledger as rules
from fxcrm.domain.ledger import AccountKind, TransferKind
from fxcrm.domain.money import CURRENCY_SCALE, Money
from fxcrm.domain.payments import made_by_fxcrm
from fxcrm.ledger import AccountSpec, AccountView, TransferRequest, open_account, transfer
from fxcrm.models import (
    IngestedBalanceOp,
    IngestedDeal,
    LedgerAccount,
    SyncCursor,
    TradingAccount,
)
from fxcrm.workflows.platform_sync_types import ServerRef

log = structlog.get_logger(__name__)

# Deals per transaction: a long backlog is posted over several calls.
MAX_DEALS = 50_000


class PnlPosted(BaseModel):
    deals: int  # deals read past the cursor
    transfers: int
    posted_upto: int
    caught_up: bool


def trading_pnl_code(currency: str) -> str:
    return f"broker:trading-pnl:{rules.check_currency(currency)}"


class TradingPnlActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn
    async def post_trading_pnl(self, ref: ServerRef) -> PnlPosted:
        """Posts the deals and the dealers' balance operations ingested since the last call."""
        async with transaction(self._sessions) as session:
            cursor = await session.get(SyncCursor, ref.server_id, with_for_update=True)
            if cursor is None:
                return PnlPosted(deals=0, transfers=0, posted_upto=0, caught_up=True)
            start, ops_start = cursor.pnl_posted_upto, cursor.ops_posted_upto
            newest = await session.scalar(
                select(func.max(IngestedDeal.id)).where(
                    IngestedDeal.server_id == ref.server_id, IngestedDeal.id > start
                )
            )
            ops_end = await session.scalar(
                select(func.max(IngestedBalanceOp.id)).where(
                    IngestedBalanceOp.server_id == ref.server_id, IngestedBalanceOp.id > ops_start
                )
            )
            if newest is None and ops_end is None:
                return PnlPosted(deals=0, transfers=0, posted_upto=start, caught_up=True)
            end = start if newest is None else min(newest, start + MAX_DEALS)
            ops_end = ops_start if ops_end is None else ops_end
            mirrors = await ledger_mirrors(session, ref.server_id)
            totals, deals = await _pnl_by_login(session, ref.server_id, start, end, mirrors)
            operations = await _operations_by_login(
                session, ref.server_id, ops_start, ops_end, mirrors
            )
            moves = [
                _Move(login, amount, TransferKind.TRADING_PNL, start, end)
                for login, amount in totals.items()
            ] + [
                _Move(login, amount, TransferKind.PLATFORM_OPERATION, ops_start, ops_end)
                for login, amount in operations.items()
            ]
            # Money in before money out: the platform applied them in time order and its balance
            # never went below zero, so neither may the mirror on the way (a loss is floored at
            # what the mirror holds).
            moves.sort(key=lambda move: move.amount < 0)
            posted = 0
            for move in moves:
                if await _post(session, ref.server_id, mirrors[move.login], move, move.amount):
                    posted += 1
            cursor.pnl_posted_upto, cursor.ops_posted_upto = end, ops_end
        if posted:
            log.info("trading P/L posted", server_id=ref.server_id, accounts=posted, deals=deals)
        return PnlPosted(
            deals=deals, transfers=posted, posted_upto=end, caught_up=newest in (None, end)
        )


@dataclass(frozen=True)
class _Move:
    login: int
    amount: Decimal
    kind: TransferKind
    after: int  # the rows it covers: ids in (after, upto]
    upto: int


async def _operations_by_login(
    session: AsyncSession,
    server_id: str,
    start: int,
    end: int,
    mirrors: dict[int, LedgerAccount],
) -> dict[int, Decimal]:
    """The balance operations made outside fxcrm, per account, since the mirror exists. fxcrm's
    own (deposits, withdrawals, transfers) are posted by the payment workflows; credit is not
    balance."""
    if not mirrors or end <= start:
        return {}
    rows = await session.execute(
        select(
            IngestedBalanceOp.login,
            IngestedBalanceOp.amount,
            IngestedBalanceOp.comment,
            IngestedBalanceOp.booked_at,
        ).where(
            IngestedBalanceOp.server_id == server_id,
            IngestedBalanceOp.id > start,
            IngestedBalanceOp.id <= end,
            IngestedBalanceOp.kind == BALANCE,
            IngestedBalanceOp.login.in_(list(mirrors)),
        )
    )
    totals: dict[int, Decimal] = defaultdict(Decimal)
    for login, amount, comment, booked_at in rows.all():
        if booked_at >= mirrors[login].created_at and not made_by_fxcrm(comment):
            totals[login] += amount
    return dict(totals)


async def ledger_mirrors(session: AsyncSession, server_id: str) -> dict[int, LedgerAccount]:
    """Ledger mirrors of this server's accounts that have one (money fxcrm moved)."""
    links = (
        await session.execute(
            select(TradingAccount.login, TradingAccount.trader_id, TradingAccount.brand_id).where(
                TradingAccount.server_id == server_id, TradingAccount.login.is_not(None)
            )
        )
    ).all()
    codes = {
        rules.client_trading_code(trader, server_id, login): int(login)
        for login, trader, _ in links
        if login is not None
    }
    if not codes:
        return {}
    rows = await session.scalars(
        select(LedgerAccount).where(
            LedgerAccount.brand_id.in_({brand for _, _, brand in links}),
            LedgerAccount.code.in_(codes),
        )
    )
    return {codes[row.code]: row for row in rows}


async def _pnl_by_login(
    session: AsyncSession,
    server_id: str,
    start: int,
    end: int,
    mirrors: dict[int, LedgerAccount],
) -> tuple[dict[int, Decimal], int]:
    deals = await session.scalar(
        select(func.count()).where(
            IngestedDeal.server_id == server_id, IngestedDeal.id > start, IngestedDeal.id <= end
        )
    )
    if not mirrors:
        return {}, int(deals or 0)
    rows = await session.execute(
        select(
            IngestedDeal.login,
            IngestedDeal.closed_at,
            IngestedDeal.profit,
            IngestedDeal.commission,
            IngestedDeal.swap,
        ).where(
            IngestedDeal.server_id == server_id,
            IngestedDeal.id > start,
            IngestedDeal.id <= end,
            IngestedDeal.login.in_(list(mirrors)),
        )
    )
    totals: dict[int, Decimal] = defaultdict(Decimal)
    opened: dict[int, datetime] = {login: row.created_at for login, row in mirrors.items()}
    for login, closed_at, profit, commission, swap in rows.all():
        if closed_at >= opened[login]:
            totals[login] += profit + commission + swap
    return dict(totals), int(deals or 0)


async def _post(
    session: AsyncSession,
    server_id: str,
    mirror: LedgerAccount,
    move: _Move,
    amount: Decimal,
) -> bool:
    if move.kind is TransferKind.TRADING_PNL:
        key, details = "pnl", {"deals_after": move.after, "deals_upto": move.upto}
    else:
        key, details = "platop", {"ops_after": move.after, "ops_upto": move.upto}
    posted = await post_to_mirror(
        session,
        mirror,
        amount,
        kind=move.kind,
        idempotency_key=f"{key}:{server_id}:{move.login}:{move.after}-{move.upto}",
        reference=f"{server_id}:{move.login}",
        details=details,
    )
    return bool(posted)


async def post_to_mirror(
    session: AsyncSession,
    mirror: LedgerAccount,
    amount: Decimal,
    *,
    kind: TransferKind,
    idempotency_key: str,
    reference: str,
    details: dict[str, Any],
) -> Decimal:
    """Moves `amount` (signed, in the mirror's currency) into a trading account's ledger mirror,
    against trading P/L or, for a dealer's operation, suspense. Returns what was posted."""
    currency = mirror.currency
    amount = amount.quantize(Decimal(1).scaleb(-CURRENCY_SCALE[currency]), ROUND_HALF_EVEN)
    if kind is TransferKind.PLATFORM_OPERATION:  # in suspense until finance says what it was
        spec = AccountSpec(
            brand_id=mirror.brand_id,
            code=rules.suspense_code(currency),
            kind=AccountKind.SUSPENSE,
            currency=currency,
        )
    else:
        spec = AccountSpec(
            brand_id=mirror.brand_id,
            code=trading_pnl_code(currency),
            kind=AccountKind.BROKER_REVENUE,
            currency=currency,
        )
    if amount < 0:
        # A loss never takes the mirror below zero: what the platform held beyond the mirror came
        # from outside fxcrm, and the drift check reports it.
        available = AccountView.model_validate(mirror).available.amount
        amount = -min(-amount, available)
    if not amount:
        return Decimal(0)
    house = await open_account(session, spec)
    debit, credit = (house.id, mirror.id) if amount > 0 else (mirror.id, house.id)
    await transfer(
        session,
        TransferRequest(
            idempotency_key=idempotency_key,
            debit_account_id=debit,
            credit_account_id=credit,
            amount=Money(amount=abs(amount), currency=currency),
            kind=kind,
            reference=reference,
            details=details,
        ),
    )
    return amount
