"""Check the ledger's invariants from scratch: what an auditor's endpoint reports.

- per currency, posted debits equal posted credits (and pending debits equal pending credits);
- no protected account (client money) has a negative available balance;
- every account's running totals equal the sums of its transfers.

And, apart (`compare_platform_mirrors`), the ledger against the platforms: every trading account's
ledger mirror against the balance the platform sync last read for it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fxcrm.domain.ledger import (
    Balances,
    NormalBalance,
    TransferPhase,
    TransferState,
    client_trading_code,
)
from fxcrm.ledger.schemas import (
    AccountProblem,
    AccountView,
    CurrencyTotals,
    InvariantReport,
    MirrorGap,
    PlatformComparison,
)
from fxcrm.models.ledger import LedgerAccount, LedgerTransfer
from fxcrm.models.platform_sync import AccountMirror
from fxcrm.models.traders import TradingAccount

_POSTING_PHASES = (TransferPhase.SINGLE.value, TransferPhase.POST.value)


async def _sums(session: AsyncSession, side: Any, *conditions: Any) -> dict[str, int]:
    rows = await session.execute(
        select(side, func.sum(LedgerTransfer.amount)).where(*conditions).group_by(side)
    )
    return {account_id: int(total) for account_id, total in rows.all()}


async def _computed_balances(session: AsyncSession) -> dict[str, Balances]:
    posted = LedgerTransfer.phase.in_(_POSTING_PHASES)
    held = (LedgerTransfer.phase == TransferPhase.PENDING.value) & (
        LedgerTransfer.state == TransferState.PENDING.value
    )
    debit, credit = LedgerTransfer.debit_account_id, LedgerTransfer.credit_account_id
    parts = {
        "debits_posted": await _sums(session, debit, posted),
        "credits_posted": await _sums(session, credit, posted),
        "debits_pending": await _sums(session, debit, held),
        "credits_pending": await _sums(session, credit, held),
    }
    ids = {account_id for part in parts.values() for account_id in part}
    return {
        account_id: Balances(**{name: part.get(account_id, 0) for name, part in parts.items()})
        for account_id in ids
    }


def _recorded(account: LedgerAccount) -> Balances:
    return Balances(
        account.debits_posted,
        account.credits_posted,
        account.debits_pending,
        account.credits_pending,
    )


async def check_invariants(session: AsyncSession) -> InvariantReport:
    computed = await _computed_balances(session)
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    negative: list[AccountProblem] = []
    mismatched: list[AccountProblem] = []
    accounts = (
        await session.scalars(
            select(LedgerAccount)
            .order_by(LedgerAccount.id)
            .execution_options(populate_existing=True)
        )
    ).all()
    for account in accounts:
        recorded = _recorded(account)
        for index, value in enumerate(
            (
                recorded.debits_posted,
                recorded.credits_posted,
                recorded.debits_pending,
                recorded.credits_pending,
            )
        ):
            totals[account.currency][index] += value
        normal = NormalBalance(account.normal_balance)
        if account.must_not_go_negative and recorded.available(normal) < 0:
            negative.append(_problem(account, "available balance below zero", recorded))
        expected = computed.get(account.id, Balances())
        if expected != recorded:
            mismatched.append(
                _problem(account, "balance differs from its transfers", recorded, expected)
            )
    currencies = [
        CurrencyTotals(
            currency=currency,
            debits_posted=values[0],
            credits_posted=values[1],
            debits_pending=values[2],
            credits_pending=values[3],
        )
        for currency, values in sorted(totals.items())
    ]
    unbalanced = [c.currency for c in currencies if not c.balanced]
    return InvariantReport(
        ok=not (unbalanced or negative or mismatched),
        accounts_checked=len(accounts),
        currencies=currencies,
        unbalanced_currencies=unbalanced,
        negative_balances=negative,
        mismatched_balances=mismatched,
    )


def _problem(
    account: LedgerAccount, problem: str, recorded: Balances, computed: Balances | None = None
) -> AccountProblem:
    return AccountProblem(
        account_id=account.id,
        code=account.code,
        currency=account.currency,
        problem=problem,
        recorded=vars(recorded),
        computed=vars(computed) if computed is not None else None,
    )


async def compare_platform_mirrors(
    session: AsyncSession, brand_ids: Collection[str]
) -> PlatformComparison:
    """Each ledger mirror of a trading account of these brands against the platform balance the
    sync last read (`account_mirrors`): a gap is money that moved on one side only, or not yet."""
    linked = (
        await session.execute(
            select(
                TradingAccount.brand_id,
                TradingAccount.trader_id,
                AccountMirror.server_id,
                AccountMirror.login,
                AccountMirror.balance,
                AccountMirror.synced_at,
            )
            .join(
                AccountMirror,
                and_(
                    AccountMirror.server_id == TradingAccount.server_id,
                    AccountMirror.login == TradingAccount.login,
                ),
            )
            .where(TradingAccount.brand_id.in_(list(brand_ids)))
        )
    ).all()
    by_code = {
        (row.brand_id, client_trading_code(row.trader_id, row.server_id, row.login)): row
        for row in linked
    }
    ledgers: list[LedgerAccount] = []
    codes = sorted({code for _, code in by_code})
    for start in range(0, len(codes), 2_000):
        ledgers += (
            await session.scalars(
                select(LedgerAccount)
                .where(
                    LedgerAccount.brand_id.in_(list(brand_ids)),
                    LedgerAccount.code.in_(codes[start : start + 2_000]),
                )
                .execution_options(populate_existing=True)
            )
        ).all()
    mismatched = []
    for ledger in ledgers:
        row = by_code.get((ledger.brand_id, ledger.code))
        if row is None:
            continue
        mirrored = AccountView.model_validate(ledger).posted.amount
        if mirrored != row.balance:
            mismatched.append(
                MirrorGap(
                    server_id=row.server_id,
                    login=row.login,
                    account_id=ledger.id,
                    code=ledger.code,
                    currency=ledger.currency,
                    platform_balance=row.balance,
                    ledger_balance=mirrored,
                    gap=row.balance - mirrored,
                    synced_at=row.synced_at,
                )
            )
    mismatched.sort(key=lambda gap: (gap.server_id, gap.login))
    return PlatformComparison(
        ok=not mismatched, accounts_compared=len(ledgers), mismatched=mismatched
    )
