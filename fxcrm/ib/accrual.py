"""One batch of ingested deals → the IbAccrual rows they produce (shared by the real-time accrual
activity and by recalculation's what-if, so both apply the engine the same way)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fxcrm.domain.ib.engine import CLOSING_ENTRIES, Accrual, DealFacts, accrue
from fxcrm.ib.context import IbContext, Resolution, opening_times
from fxcrm.ib.periods import open_period, period_of
from fxcrm.models import IngestedDeal

ACCRUAL_UNIQUE = ["deal_pk", "beneficiary_id", "rule"]
UNPAID_UNIQUE = ["deal_pk"]
DEAL_COLUMNS = (
    IngestedDeal.id,
    IngestedDeal.deal_id,
    IngestedDeal.login,
    IngestedDeal.position_id,
    IngestedDeal.symbol,
    IngestedDeal.side,
    IngestedDeal.entry,
    IngestedDeal.volume_lots,
    IngestedDeal.commission,
    IngestedDeal.closed_at,
    IngestedDeal.opened_at,
)


async def accrual_rows(
    session: AsyncSession,
    context: IbContext,
    deals: Sequence[Any],
    latest_closed: str | None,
    reasons: Counter[str],
    unpaid: list[dict[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The accrual rows of a batch of deals, and how many deals paid nobody; with `unpaid`, also
    an IbUnpaidDeal row per deal that paid nobody, saying why."""
    facts: list[tuple[Any, DealFacts | None]] = []
    resolved: list[Resolution | None] = []
    holding: set[str] = set()  # positions whose direct IB's plan has a minimum holding time
    for deal in deals:
        account = context.account(deal.login)
        if account is None:
            facts.append((deal, None))
            resolved.append(None)
            continue
        fact = DealFacts(
            deal_key=deal.id,
            trader_id=account.trader_id,
            symbol=deal.symbol,
            side=deal.side,
            entry=deal.entry,
            volume_lots=deal.volume_lots,
            commission=deal.commission,
            closed_at=deal.closed_at,
            account_group=account.group,
            opened_at=deal.opened_at,  # when the platform reported it on the deal
        )
        resolution = context.resolve(fact)
        if (
            fact.opened_at is None
            and resolution.chain
            and resolution.chain[0].rules.min_hold_seconds
            and deal.entry in CLOSING_ENTRIES
        ):
            holding.add(deal.position_id)
        facts.append((deal, fact))
        resolved.append(resolution)
    opened = await opening_times(session, context.server_id, holding) if holding else {}
    rows: list[dict[str, Any]] = []
    excluded = 0
    now = datetime.now(UTC)
    for (deal, known), resolved_as in zip(facts, resolved, strict=True):
        if known is None or resolved_as is None:
            excluded += 1
            reasons["unknown_login"] += 1
            if unpaid is not None:
                unpaid.append(_unpaid(context, deal, "unknown_login", None, None, now))
            continue
        fact = known
        accruals: list[Accrual] = []
        reason = resolved_as.reason
        if reason is None:
            opened_at = opened.get(deal.position_id)
            if fact.opened_at is None and opened_at is not None:
                fact = replace(fact, opened_at=opened_at)
            accruals, reason = accrue(fact, list(resolved_as.chain))
        if reason is not None:
            excluded += 1
            reasons["min_hold" if reason.startswith("held_") else reason] += 1
            if unpaid is not None:
                ib_id = resolved_as.attribution.ib_id if resolved_as.attribution else None
                unpaid.append(_unpaid(context, deal, reason, fact.trader_id, ib_id, now))
            continue
        own_period = period_of(fact.closed_at)
        period = open_period(fact.closed_at, latest_closed)
        about: dict[str, Any] = {
            "deal": deal.deal_id,
            "symbol": deal.symbol,
            "volume_lots": str(deal.volume_lots),
        }
        if period != own_period:
            about["deal_period"] = own_period  # late: an adjustment of a later settlement
        for accrual in accruals:
            rows.append(
                {
                    "brand_id": context.brand_id,
                    "deal_pk": accrual.deal_key,
                    "beneficiary_id": accrual.beneficiary,
                    "rule": accrual.rule,
                    "depth": accrual.depth,
                    "amount": accrual.amount,
                    "currency": accrual.currency,
                    "plan_version_id": accrual.plan_version_id or None,
                    "trader_id": fact.trader_id,
                    "period": period,
                    "closed_at": fact.closed_at,
                    "inputs": {**about, **accrual.inputs},
                    "created_at": now,
                }
            )
    return rows, excluded


def reason_code(reason: str) -> str:
    """The engine's reason as a short code to filter by: `held_12s_below_60s` is min_hold,
    `excluded:self_referral:...` is excluded; the others are codes already."""
    if reason.startswith("held_"):
        return "min_hold"
    return reason.split(":", 1)[0]


def _unpaid(
    context: IbContext,
    deal: Any,
    reason: str,
    trader_id: str | None,
    ib_id: str | None,
    now: datetime,
) -> dict[str, Any]:
    return {
        "deal_pk": deal.id,
        "brand_id": context.brand_id,
        "server_id": context.server_id,
        "login": deal.login,
        "reason": reason_code(reason),
        "detail": reason[:200],
        "trader_id": trader_id,
        "ib_id": ib_id,
        "closed_at": deal.closed_at,
        "created_at": now,
    }
