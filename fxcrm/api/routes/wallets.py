"""A trader's money as the ledger holds it: wallet and trading-account balances, and the history of
every movement. Reads only, straight from the ledger tables (the ledger is the book of record)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import Row, bindparam, or_, select, tuple_

from fxcrm.api.deps import SessionDep, TraderDep
from fxcrm.api.errors import Problem
from fxcrm.domain.ledger import AccountKind, Balances, NormalBalance, TransferPhase
from fxcrm.domain.money import minor_to_decimal
from fxcrm.models import LedgerAccount, LedgerTransfer

router = APIRouter(prefix="/portal/me", tags=["portal: money"])
AnyRow = Row[*tuple[Any, ...]]
CLIENT_KINDS = (AccountKind.CLIENT_WALLET.value, AccountKind.CLIENT_TRADING.value)
SHOWN_PHASES = (TransferPhase.SINGLE.value, TransferPhase.PENDING.value)


class BalanceView(BaseModel):
    account_id: str
    kind: str  # client_wallet | client_trading
    code: str
    currency: str
    balance: str  # posted
    available: str  # posted minus money held for pending withdrawals


class HistoryEntry(BaseModel):
    transfer_id: str
    created_at: datetime
    kind: str  # deposit | withdrawal | transfer | fx | chargeback | ...
    state: str  # pending | posted | voided
    phase: str
    account_id: str  # the trader's account the entry moved
    currency: str
    amount: str  # signed, from the trader's side: + in, - out
    reference: str | None


class HistoryPage(BaseModel):
    entries: list[HistoryEntry]
    next_cursor: str | None  # pass as `before` for the next page


# The portal's most frequent reads: the statements are built once (not per request) and select
# columns, not ORM objects, since nothing here is changed or related.
CLIENT_ACCOUNTS = (
    select(
        LedgerAccount.id,
        LedgerAccount.kind,
        LedgerAccount.code,
        LedgerAccount.currency,
        LedgerAccount.normal_balance,
        LedgerAccount.debits_posted,
        LedgerAccount.credits_posted,
        LedgerAccount.debits_pending,
        LedgerAccount.credits_pending,
    )
    .where(LedgerAccount.owner_id == bindparam("owner_id"), LedgerAccount.kind.in_(CLIENT_KINDS))
    .order_by(LedgerAccount.kind, LedgerAccount.currency, LedgerAccount.code)
)
HISTORY_COLUMNS = (
    LedgerTransfer.id,
    LedgerTransfer.created_at,
    LedgerTransfer.kind,
    LedgerTransfer.state,
    LedgerTransfer.phase,
    LedgerTransfer.debit_account_id,
    LedgerTransfer.credit_account_id,
    LedgerTransfer.currency,
    LedgerTransfer.amount,
    LedgerTransfer.reference,
)


async def _client_accounts(session: SessionDep, trader_id: str) -> Sequence[AnyRow]:
    return (await session.execute(CLIENT_ACCOUNTS, {"owner_id": trader_id})).all()


@router.get("/balances", response_model=list[BalanceView])
async def balances(me: TraderDep, session: SessionDep) -> list[BalanceView]:
    views = []
    for row in await _client_accounts(session, me.id):
        totals = Balances(
            row.debits_posted, row.credits_posted, row.debits_pending, row.credits_pending
        )
        normal = NormalBalance(row.normal_balance)
        views.append(
            BalanceView(
                account_id=row.id,
                kind=row.kind,
                code=row.code,
                currency=row.currency,
                balance=str(minor_to_decimal(totals.posted(normal), row.currency)),
                available=str(minor_to_decimal(totals.available(normal), row.currency)),
            )
        )
    return views


def _cursor(entry: AnyRow) -> str:
    return f"{entry.created_at.isoformat()}|{entry.id}"


def _parse_cursor(raw: str) -> tuple[datetime, str]:
    try:
        at, _, transfer_id = raw.partition("|")
        parsed = datetime.fromisoformat(at)
    except ValueError:
        raise Problem(422, "Bad cursor", "`before` must be a cursor from a previous page") from None
    if parsed.tzinfo is None or not transfer_id:
        raise Problem(422, "Bad cursor", "`before` must be a cursor from a previous page")
    return parsed, transfer_id


@router.get("/history", response_model=HistoryPage)
async def history(
    me: TraderDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: str | None = None,
    currency: str | None = None,
) -> HistoryPage:
    """Every ledger movement of the trader's wallets and trading accounts, newest first; a held
    withdrawal shows as pending, then as posted or voided."""
    accounts = {a.id: a for a in await _client_accounts(session, me.id)}
    if currency is not None:
        accounts = {i: a for i, a in accounts.items() if a.currency == currency.upper()}
    if not accounts:
        return HistoryPage(entries=[], next_cursor=None)
    ids = list(accounts)
    query = select(*HISTORY_COLUMNS).where(
        or_(LedgerTransfer.debit_account_id.in_(ids), LedgerTransfer.credit_account_id.in_(ids)),
        # A hold's resolution is shown by the hold's own state (posted or voided), not twice.
        LedgerTransfer.phase.in_(SHOWN_PHASES),
    )
    if before is not None:
        at, transfer_id = _parse_cursor(before)
        query = query.where(
            tuple_(LedgerTransfer.created_at, LedgerTransfer.id) < tuple_(at, transfer_id)
        )
    rows = (
        await session.execute(
            query.order_by(LedgerTransfer.created_at.desc(), LedgerTransfer.id.desc()).limit(
                limit + 1
            )
        )
    ).all()
    entries = []
    for row in rows[:limit]:
        # Between two of the trader's own accounts (a transfer) the entry shows on both sides.
        for account_id, sign in ((row.credit_account_id, 1), (row.debit_account_id, -1)):
            if account_id not in accounts:
                continue
            amount = minor_to_decimal(sign * row.amount, row.currency)
            entries.append(
                HistoryEntry(
                    transfer_id=row.id,
                    created_at=row.created_at,
                    kind=row.kind,
                    state=row.state,
                    phase=row.phase,
                    account_id=account_id,
                    currency=row.currency,
                    amount=str(amount),
                    reference=row.reference,
                )
            )
    more = len(rows) > limit
    return HistoryPage(entries=entries, next_cursor=_cursor(rows[limit - 1]) if more else None)
