"""The ledger for finance and auditors: the invariant check, accounts and their statements."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import or_, select

from fxcrm.api.deps import Principal, SessionDep, require
from fxcrm.api.errors import Problem
from fxcrm.domain.money import Money
from fxcrm.domain.money_text import amount_text
from fxcrm.ledger import AccountView, InvariantReport, check_invariants, compare_platform_mirrors
from fxcrm.models import LedgerAccount, LedgerTransfer

router = APIRouter(prefix="/backoffice/ledger", tags=["ledger"])
LedgerReaderDep = Annotated[Principal, Depends(require("admin", "finance", "auditor"))]


class AccountRow(BaseModel):
    id: str
    brand_id: str
    code: str
    kind: str
    currency: str
    owner_id: str | None
    balance: str
    available: str


class StatementLine(BaseModel):
    transfer_id: str
    created_at: datetime
    kind: str
    phase: str
    state: str
    counter_account_id: str
    debit: str | None
    credit: str | None
    reference: str | None
    idempotency_key: str
    details: dict[str, Any]


def _row(view: AccountView) -> AccountRow:
    return AccountRow(
        id=view.id,
        brand_id=view.brand_id,
        code=view.code,
        kind=view.kind.value,
        currency=view.currency,
        owner_id=view.owner_id,
        balance=amount_text(view.posted.amount),
        available=amount_text(view.available.amount),
    )


@router.get("/invariants", response_model=InvariantReport)
async def invariants(who: LedgerReaderDep, session: SessionDep) -> InvariantReport:
    """Recomputes every balance from the transfers: each currency must sum to zero, no client
    account may be negative, every running total must equal its transfers. Then, in `platform`,
    every trading account's ledger mirror of the caller's brands against its platform balance as
    the sync last read it."""
    report = await check_invariants(session)
    report.platform = await compare_platform_mirrors(session, who.brand_ids)
    return report


@router.get("/accounts", response_model=list[AccountRow])
async def accounts(
    who: LedgerReaderDep,
    session: SessionDep,
    owner_id: str | None = None,
    kind: str | None = None,
    code_prefix: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AccountRow]:
    query = select(LedgerAccount).where(LedgerAccount.brand_id.in_(who.brand_ids))
    if owner_id:
        query = query.where(LedgerAccount.owner_id == owner_id)
    if kind:
        query = query.where(LedgerAccount.kind == kind)
    if code_prefix:
        query = query.where(LedgerAccount.code.startswith(code_prefix, autoescape=True))
    rows = (await session.scalars(query.order_by(LedgerAccount.code).limit(limit))).all()
    return [_row(AccountView.model_validate(r)) for r in rows]


@router.get("/accounts/{account_id}/statement", response_model=list[StatementLine])
async def statement(
    account_id: str,
    who: LedgerReaderDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[StatementLine]:
    account = await session.get(LedgerAccount, account_id)
    if account is None or not who.can_see_brand(account.brand_id):
        raise Problem(404, "Unknown ledger account")
    rows = (
        await session.scalars(
            select(LedgerTransfer)
            .where(
                or_(
                    LedgerTransfer.debit_account_id == account_id,
                    LedgerTransfer.credit_account_id == account_id,
                )
            )
            .order_by(LedgerTransfer.created_at.desc(), LedgerTransfer.id.desc())
            .limit(limit)
        )
    ).all()
    lines = []
    for t in rows:
        amount = amount_text(Money.from_minor(t.amount, t.currency).amount)
        is_debit = t.debit_account_id == account_id
        lines.append(
            StatementLine(
                transfer_id=t.id,
                created_at=t.created_at,
                kind=t.kind,
                phase=t.phase,
                state=t.state,
                counter_account_id=t.credit_account_id if is_debit else t.debit_account_id,
                debit=amount if is_debit else None,
                credit=None if is_debit else amount,
                reference=t.reference,
                idempotency_key=t.idempotency_key,
                details=t.details,
            )
        )
    return lines
