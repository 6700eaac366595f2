"""A trader's money as the ledger holds it: wallet and trading-account balances, and the history of
every movement. Reads only, straight from the ledger tables (the ledger is the book of record)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import BindParameter, Row, bindparam, or_, select, tuple_

from fxcrm.api.deps import SessionDep, TraderDep
from fxcrm.api.errors import Problem
from fxcrm.domain.ledger import AccountKind, Balances, NormalBalance, TransferPhase
from fxcrm.domain.money import minor_to_decimal
from fxcrm.domain.money_text import amount_text
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


# The portal's most frequent reads. The statements are built once, not per request, on the tables'
# columns: rows, not ORM objects, since nothing here is changed or related.
accounts = LedgerAccount.__table__.c
transfers = LedgerTransfer.__table__.c
CLIENT_ACCOUNTS = (
    select(
        accounts.id,
        accounts.kind,
        accounts.code,
        accounts.currency,
        accounts.normal_balance,
        accounts.debits_posted,
        accounts.credits_posted,
        accounts.debits_pending,
        accounts.credits_pending,
    )
    .where(accounts.owner_id == bindparam("owner_id"), accounts.kind.in_(CLIENT_KINDS))
    .order_by(accounts.kind, accounts.currency, accounts.code)
)
_IDS: BindParameter[list[str]] = bindparam("account_ids", expanding=True)
HISTORY = (
    select(
        transfers.id,
        transfers.created_at,
        transfers.kind,
        transfers.state,
        transfers.phase,
        transfers.debit_account_id,
        transfers.credit_account_id,
        transfers.currency,
        transfers.amount,
        transfers.reference,
    )
    .where(
        or_(transfers.debit_account_id.in_(_IDS), transfers.credit_account_id.in_(_IDS)),
        # A hold's resolution is shown by the hold's own state (posted or voided), not twice.
        transfers.phase.in_(SHOWN_PHASES),
    )
    .order_by(transfers.created_at.desc(), transfers.id.desc())
    .limit(bindparam("limit"))
)
HISTORY_BEFORE = HISTORY.where(
    tuple_(transfers.created_at, transfers.id)
    < tuple_(
        bindparam("before_at", type_=transfers.created_at.type),
        bindparam("before_id", type_=transfers.id.type),
    )
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
                balance=amount_text(minor_to_decimal(totals.posted(normal), row.currency)),
                available=amount_text(minor_to_decimal(totals.available(normal), row.currency)),
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
    owned = {a.id: a for a in await _client_accounts(session, me.id)}
    if currency is not None:
        owned = {i: a for i, a in owned.items() if a.currency == currency.upper()}
    if not owned:
        return HistoryPage(entries=[], next_cursor=None)
    params: dict[str, Any] = {"account_ids": list(owned), "limit": limit + 1}
    if before is not None:
        params["before_at"], params["before_id"] = _parse_cursor(before)
    statement = HISTORY if before is None else HISTORY_BEFORE
    rows = (await session.execute(statement, params)).all()
    # Plain tuples and dicts, validated once as a page: a page is up to 400 entries, and building
    # each entry from named row attributes took as long as both queries.
    entries = []
    for tid, at, kind, state, phase, debit, credit, currency, amount, ref in rows[:limit]:
        # Between two of the trader's own accounts (a transfer) the entry shows on both sides.
        for account_id, sign in ((credit, 1), (debit, -1)):
            if account_id in owned:
                entries.append(
                    {
                        "transfer_id": tid,
                        "created_at": at,
                        "kind": kind,
                        "state": state,
                        "phase": phase,
                        "account_id": account_id,
                        "currency": currency,
                        "amount": amount_text(minor_to_decimal(sign * amount, currency)),
                        "reference": ref,
                    }
                )
    more = len(rows) > limit
    cursor = _cursor(rows[limit - 1]) if more else None
    return HistoryPage.model_validate({"entries": entries, "next_cursor": cursor})
