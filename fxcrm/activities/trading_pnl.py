"""Realized trading P/L into the ledger's mirrors of trading accounts.

A trading account's platform balance moves with deposits and withdrawals (posted by the payment
workflows) and with every closed deal's profit, commission and swap. Those are posted here, per
account, from the ingested deals, so that the ledger mirror keeps equal to the platform balance and
the sync's drift check reports only money that moved outside fxcrm. The counterparty is the broker's
trading P/L account (a client's profit is the broker's loss on a B-book).

Exactly once: the deals posted are those with an id above the server cursor's `pnl_posted_upto`;
the transfers and the cursor move in one transaction. Deals closed before the mirror existed are
not posted (the balance they changed was never mirrored).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

import structlog
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from fxcrm.core.db import transaction
from fxcrm.domain import ledger as rules
from fxcrm.domain.ledger import AccountKind, TransferKind
from fxcrm.domain.money import CURRENCY_SCALE, Money
from fxcrm.ledger import AccountSpec, AccountView, TransferRequest, open_account, transfer
from fxcrm.models import IngestedDeal, LedgerAccount, SyncCursor, TradingAccount
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
        async with transaction(self._sessions) as session:
            cursor = await session.get(SyncCursor, ref.server_id, with_for_update=True)
            if cursor is None:
                return PnlPosted(deals=0, transfers=0, posted_upto=0, caught_up=True)
            start = cursor.pnl_posted_upto
            newest = await session.scalar(
                select(func.max(IngestedDeal.id)).where(
                    IngestedDeal.server_id == ref.server_id, IngestedDeal.id > start
                )
            )
            if newest is None:
                return PnlPosted(deals=0, transfers=0, posted_upto=start, caught_up=True)
            end = min(newest, start + MAX_DEALS)
            mirrors = await _mirrors(session, ref.server_id)
            totals, deals = await _pnl_by_login(session, ref.server_id, start, end, mirrors)
            posted = 0
            for login, pnl in totals.items():
                mirror = mirrors[login]
                amount = pnl.quantize(
                    Decimal(1).scaleb(-CURRENCY_SCALE[mirror.currency]), ROUND_HALF_EVEN
                )
                if amount and await _post(
                    session, ref.server_id, login, mirror, amount, start, end
                ):
                    posted += 1
            cursor.pnl_posted_upto = end
        if posted:
            log.info("trading P/L posted", server_id=ref.server_id, accounts=posted, deals=deals)
        return PnlPosted(deals=deals, transfers=posted, posted_upto=end, caught_up=end == newest)


async def _mirrors(session: AsyncSession, server_id: str) -> dict[int, LedgerAccount]:
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
    login: int,
    mirror: LedgerAccount,
    amount: Decimal,
    start: int,
    end: int,
) -> bool:
    currency = mirror.currency
    house = await open_account(
        session,
        AccountSpec(
            brand_id=mirror.brand_id,
            code=trading_pnl_code(currency),
            kind=AccountKind.BROKER_REVENUE,
            currency=currency,
        ),
    )
    if amount < 0:
        # A loss never takes the mirror below zero: what the platform held beyond the mirror came
        # from outside fxcrm, and the drift check reports it.
        available = AccountView.model_validate(mirror).available.amount
        amount = -min(-amount, available)
        if not amount:
            return False
    debit, credit = (house.id, mirror.id) if amount > 0 else (mirror.id, house.id)
    await transfer(
        session,
        TransferRequest(
            idempotency_key=f"pnl:{server_id}:{login}:{start}-{end}",
            debit_account_id=debit,
            credit_account_id=credit,
            amount=Money(amount=abs(amount), currency=currency),
            kind=TransferKind.TRADING_PNL,
            reference=f"{server_id}:{login}",
            details={"deals_after": start, "deals_upto": end},
        ),
    )
    return True
