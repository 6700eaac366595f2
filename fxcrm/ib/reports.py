"""What an IB earned, read one way for everyone: the partner portal and the back office call these
same functions, so the two can never show different numbers.

Also the current shape of the programme (the hierarchy at a time, an IB's downline and the clients
attributed to it), which both the partner API and the staff API show.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fxcrm.domain.ib.hierarchy import Hierarchy, ParentLink
from fxcrm.domain.ib.settlement import PeriodError, parse_period
from fxcrm.domain.money_text import AmountText, amount_text
from fxcrm.models import (
    IbAccrual,
    IbAttribution,
    IbParentLink,
    IbPartner,
    IbSettlement,
    IngestedDeal,
)


def valid_period(period: str) -> bool:
    try:
        parse_period(period)
    except PeriodError:
        return False
    return True


# ---- the hierarchy ----


async def load_hierarchy(session: AsyncSession, brand_id: str) -> Hierarchy:
    """The brand's effective-dated hierarchy. An IB without any parent link (created before links
    were recorded) keeps its current master from its creation."""
    links = (
        await session.execute(
            select(IbParentLink.ib_id, IbParentLink.parent_id, IbParentLink.effective_from)
            .join(IbPartner, IbPartner.id == IbParentLink.ib_id)
            .where(IbPartner.brand_id == brand_id)
        )
    ).all()
    linked = {row.ib_id for row in links}
    rows = [ParentLink(r.ib_id, r.parent_id, r.effective_from) for r in links]
    partners = (
        await session.execute(
            select(IbPartner.id, IbPartner.parent_id, IbPartner.created_at).where(
                IbPartner.brand_id == brand_id
            )
        )
    ).all()
    rows += [ParentLink(p.id, p.parent_id, p.created_at) for p in partners if p.id not in linked]
    return Hierarchy(rows)


@dataclass(frozen=True)
class Tree:
    """The hierarchy at one moment: every IB's master then, and the IBs under each."""

    parents: dict[str, str | None]
    children: dict[str, list[str]]

    def descendants(self, root: str) -> list[tuple[str, int]]:
        """(ib, depth below root) for every IB under root, breadth first; root excluded."""
        out: list[tuple[str, int]] = []
        frontier = deque([(root, 0)])
        seen = {root}
        while frontier:
            ib_id, depth = frontier.popleft()
            for child in sorted(self.children.get(ib_id, [])):
                if child not in seen:  # a cycle cannot be stored, but never loop on bad data
                    seen.add(child)
                    out.append((child, depth + 1))
                    frontier.append((child, depth + 1))
        return out


async def tree_at(session: AsyncSession, brand_id: str, at: datetime) -> Tree:
    """The brand's tree at `at`, from the effective-dated links (IbPartner.parent_id is only a
    denormalized copy, and a future-dated move does not update it when its day comes)."""
    hierarchy = await load_hierarchy(session, brand_id)
    ids = (await session.scalars(select(IbPartner.id).where(IbPartner.brand_id == brand_id))).all()
    parents = {ib_id: hierarchy.parent_at(ib_id, at) for ib_id in ids}
    children: dict[str, list[str]] = defaultdict(list)
    for ib_id, parent in parents.items():
        if parent is not None:
            children[parent].append(ib_id)
    return Tree(parents, dict(children))


async def chain_at(session: AsyncSession, ib_id: str, at: datetime) -> list[str]:
    """`ib_id` and its masters at `at`, direct IB first, reading only the IBs of the chain."""
    chain = [ib_id]
    current: str | None = ib_id
    while current is not None:
        parent = await session.scalar(
            select(IbParentLink.parent_id)
            .where(IbParentLink.ib_id == current, IbParentLink.effective_from <= at)
            .order_by(IbParentLink.effective_from.desc())
            .limit(1)
        )
        if parent is None and not await session.scalar(
            select(IbParentLink.id).where(IbParentLink.ib_id == current).limit(1)
        ):
            # No recorded links (an IB created before links were kept): its current master.
            parent = await session.scalar(
                select(IbPartner.parent_id).where(IbPartner.id == current)
            )
        if parent is None or parent in chain:
            break
        chain.append(parent)
        current = parent
    return chain


async def current_attributions(
    session: AsyncSession, ib_ids: list[str], at: datetime
) -> list[IbAttribution]:
    """The attribution in force at `at` of every client whose IB (then) is one of `ib_ids`."""
    if not ib_ids:
        return []
    latest = (
        select(
            IbAttribution.trader_id.label("trader_id"),
            func.max(IbAttribution.effective_from).label("since"),
        )
        .where(IbAttribution.effective_from <= at)
        .group_by(IbAttribution.trader_id)
        .subquery()
    )
    return list(
        (
            await session.scalars(
                select(IbAttribution)
                .join(
                    latest,
                    and_(
                        IbAttribution.trader_id == latest.c.trader_id,
                        IbAttribution.effective_from == latest.c.since,
                    ),
                )
                .where(IbAttribution.ib_id.in_(ib_ids))
                .order_by(IbAttribution.effective_from, IbAttribution.trader_id)
            )
        ).all()
    )


# ---- commissions ----


class CommissionLine(BaseModel):
    """One accrual: what one deal paid this IB by one rule, and why."""

    accrual_id: int
    period: str
    trader_id: str
    deal_pk: int
    server_id: str | None
    deal_id: str | None
    symbol: str | None
    side: str | None
    entry: str | None
    volume_lots: AmountText | None
    closed_at: datetime
    rule: str
    depth: int
    amount: AmountText  # 8 decimals, rounded once at settlement
    currency: str
    plan_version_id: str | None
    inputs: dict[str, Any]
    explanation: str


class CommissionPage(BaseModel):
    lines: list[CommissionLine]
    next_after: int | None  # pass as `after` for the next page


class RuleTotal(BaseModel):
    rule: str
    currency: str
    amount: AmountText
    lines: int


class DepthTotal(BaseModel):
    depth: int
    currency: str
    amount: AmountText
    lines: int


class SettlementView(BaseModel):
    period: str
    status: str
    currency: str
    accrued: AmountText
    period_rules: AmountText
    carried_in: AmountText
    payable: AmountText
    carried_out: AmountText
    ledger_transfer_id: str | None
    details: dict[str, Any]
    created_at: datetime


class PeriodTotals(BaseModel):
    ib_id: str
    period: str
    totals: dict[str, Decimal]  # currency → sum of the period's per-deal lines
    lines: int
    deals: int
    clients: int
    by_rule: list[RuleTotal]
    by_depth: list[DepthTotal]
    settlement: SettlementView | None


def _fmt(value: object) -> str:
    return str(value) if value is not None else "?"


def explain(rule: str, inputs: dict[str, Any], amount: Decimal, currency: str) -> str:
    """A sentence an IB can check with a calculator, from the inputs the engine recorded."""
    i = inputs
    if rule == "per_lot":
        base = f"{_fmt(i.get('lots'))} lots x {_fmt(i.get('rate'))} {currency}/lot"
        if i.get("cell"):
            base += f" (rate cell {i['cell']})"
    elif rule == "spread_share":
        base = (
            f"{_fmt(i.get('pct'))}% of the spread markup: {_fmt(i.get('lots'))} lots x "
            f"{_fmt(i.get('markup'))} {currency}/lot"
        )
    elif rule == "commission_share":
        base = (
            f"{_fmt(i.get('pct'))}% of the {_fmt(i.get('commission'))} {currency} "
            "commission the client paid"
        )
    else:
        shown = {k: v for k, v in i.items() if k not in {"model", "own", "below", "pool"}}
        base = f"{rule}: " + ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))
    model = i.get("model")
    if model == "differential":
        base += (
            f"; your plan gives {_fmt(i.get('own'))}, less {_fmt(i.get('below'))} paid below you"
        )
    elif model == "split":
        base += f"; pool {_fmt(i.get('pool'))}, your share {_fmt(i.get('share_pct'))}%"
    return f"{base} = {amount_text(amount)} {currency}"


def _line(accrual: IbAccrual, deal: Any) -> CommissionLine:
    return CommissionLine(
        accrual_id=accrual.id,
        period=accrual.period,
        trader_id=accrual.trader_id,
        deal_pk=accrual.deal_pk,
        server_id=deal.server_id if deal else None,
        deal_id=deal.deal_id if deal else None,
        symbol=deal.symbol if deal else None,
        side=deal.side if deal else None,
        entry=deal.entry if deal else None,
        volume_lots=deal.volume_lots if deal else None,
        closed_at=accrual.closed_at,
        rule=accrual.rule,
        depth=accrual.depth,
        amount=accrual.amount,
        currency=accrual.currency,
        plan_version_id=accrual.plan_version_id,
        inputs=accrual.inputs or {},
        explanation=explain(accrual.rule, accrual.inputs or {}, accrual.amount, accrual.currency),
    )


async def commission_lines(
    session: AsyncSession,
    ib_id: str,
    *,
    period: str | None = None,
    trader_id: str | None = None,
    after: int = 0,
    limit: int = 100,
) -> CommissionPage:
    """The IB's own accrual lines, oldest first, one keyset page at a time."""
    query = (
        select(IbAccrual, IngestedDeal)
        .outerjoin(IngestedDeal, IngestedDeal.id == IbAccrual.deal_pk)
        .where(IbAccrual.beneficiary_id == ib_id, IbAccrual.id > after)
    )
    if period is not None:
        query = query.where(IbAccrual.period == period)
    if trader_id is not None:
        query = query.where(IbAccrual.trader_id == trader_id)
    rows = (await session.execute(query.order_by(IbAccrual.id).limit(limit + 1))).all()
    more = len(rows) > limit
    lines = [_line(accrual, deal) for accrual, deal in rows[:limit]]
    return CommissionPage(lines=lines, next_after=lines[-1].accrual_id if more else None)


def settlement_view(row: IbSettlement) -> SettlementView:
    return SettlementView(
        period=row.period,
        status=row.status,
        currency=row.currency,
        accrued=row.accrued,
        period_rules=row.period_rules,
        carried_in=row.carried_in,
        payable=row.payable,
        carried_out=row.carried_out,
        ledger_transfer_id=row.ledger_transfer_id,
        details=row.details or {},
        created_at=row.created_at,
    )


async def period_totals(session: AsyncSession, ib_id: str, period: str) -> PeriodTotals:
    """The period's totals per rule and per level, summed by the database from the same lines
    commission_lines returns, and the settlement if the period is settled."""
    grouped = (
        await session.execute(
            select(
                IbAccrual.rule,
                IbAccrual.depth,
                IbAccrual.currency,
                func.sum(IbAccrual.amount),
                func.count(),
            )
            .where(IbAccrual.beneficiary_id == ib_id, IbAccrual.period == period)
            .group_by(IbAccrual.rule, IbAccrual.depth, IbAccrual.currency)
        )
    ).all()
    counts = (
        await session.execute(
            select(
                func.count(func.distinct(IbAccrual.deal_pk)),
                func.count(func.distinct(IbAccrual.trader_id)),
            ).where(IbAccrual.beneficiary_id == ib_id, IbAccrual.period == period)
        )
    ).one()
    totals: dict[str, Decimal] = defaultdict(Decimal)
    by_rule: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [Decimal(0), 0])
    by_depth: dict[tuple[int, str], list[Any]] = defaultdict(lambda: [Decimal(0), 0])
    lines = 0
    for rule, depth, currency, amount, count in grouped:
        amount = amount if amount is not None else Decimal(0)
        totals[currency] += amount
        by_rule[(rule, currency)][0] += amount
        by_rule[(rule, currency)][1] += count
        by_depth[(depth, currency)][0] += amount
        by_depth[(depth, currency)][1] += count
        lines += count
    settlement = await session.scalar(
        select(IbSettlement).where(IbSettlement.ib_id == ib_id, IbSettlement.period == period)
    )
    return PeriodTotals(
        ib_id=ib_id,
        period=period,
        totals=dict(sorted(totals.items())),
        lines=lines,
        deals=counts[0],
        clients=counts[1],
        by_rule=[
            RuleTotal(rule=r, currency=c, amount=v[0], lines=v[1])
            for (r, c), v in sorted(by_rule.items())
        ],
        by_depth=[
            DepthTotal(depth=d, currency=c, amount=v[0], lines=v[1])
            for (d, c), v in sorted(by_depth.items())
        ],
        settlement=settlement_view(settlement) if settlement else None,
    )


async def settlements(
    session: AsyncSession, ib_id: str, status: str | None = None
) -> list[SettlementView]:
    query = select(IbSettlement).where(IbSettlement.ib_id == ib_id)
    if status is not None:
        query = query.where(IbSettlement.status == status)
    rows = (await session.scalars(query.order_by(IbSettlement.period.desc()))).all()
    return [settlement_view(r) for r in rows]
