"""Monthly IB settlement on the database: close a brand's period, aggregate it per IB, apply the
period rules (fxcrm.domain.ib.settlement) and pay each IB's payable wallet through the ledger.

Closing a period: periods close in order, under the brand's exclusive period lock (see
fxcrm.ib.periods for the accrual side and the race):
- a missed month is not lost: the settlement of a period covers every accrual period after the
  previously closed one; settling a period older than the last closed one is refused.

Exactly once: the settlement row is unique per (IB, period) and is written in the same
transaction as the ledger transfer (key `ib-settlement:{brand}:{period}:{ib}`); a retried or
re-run settlement skips the IBs that have a row. Because the period is closed first, the inputs
do not change between runs. IBs are written in chunks (one transaction per chunk, the chunk's
transfers posted by the ledger's bulk `transfer_many`): a few thousand IBs settle in a few
transactions of a few statements each.

Statements are not stored: they are regenerated on demand from the immutable accrual rows and
the settlement row (fxcrm.api.routes.ib_settlement).

Memory: per IB, never per accrual row (one GROUP BY over the period's accruals, joined to the
deals only when a plan needs deal-based measures, and payment aggregates per IB).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import structlog
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Table,
    and_,
    case,
    distinct,
    exists,
    func,
    insert,
    literal_column,
    not_,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased
from temporalio import activity
from temporalio.exceptions import ApplicationError

from fxcrm.activities.money import house_account
from fxcrm.core.audit import Actor, append_audit
from fxcrm.core.db import insert_ignoring_duplicates, transaction
from fxcrm.domain import ledger as rules
from fxcrm.domain.brand import BrandConfig
from fxcrm.domain.ib.plans import PlanRules, TierBasis, parse_plan
from fxcrm.domain.ib.settlement import (
    ZERO,
    Carry,
    CpaFacts,
    IbPeriod,
    PeriodError,
    Settled,
    Status,
    check_settleable,
    period_end,
    period_start,
    settle,
)
from fxcrm.domain.ledger import ACCOUNT_RULES, AccountKind, TransferKind
from fxcrm.domain.money import CURRENCY_SCALE, Money
from fxcrm.domain.money_text import amount_text
from fxcrm.domain.payments import DepositStatus, WithdrawalStatus
from fxcrm.ib.periods import closed_through, lock_periods
from fxcrm.ledger import TransferRequest, transfer_many
from fxcrm.models import (
    Brand,
    IbAccrual,
    IbAttribution,
    IbCpaEvent,
    IbPartner,
    IbPlan,
    IbPlanAssignment,
    IbPlanVersion,
    IbSettlement,
    IbSettlementPeriod,
    IngestedDeal,
    LedgerAccount,
    Payment,
    TradingAccount,
)
from fxcrm.models.base import new_id, utcnow
from fxcrm.workflows.ib_settlement_types import (
    ClosedPeriod,
    IbSettlementInput,
    IbSettlementResult,
)

log = structlog.get_logger(__name__)

CHUNK = 2000  # IBs per transaction (a few statements each; fewer commits)
IN_BATCH = 500  # ids per IN (...) list
AGGREGATE_WORK_MEM = "128MB"  # PostgreSQL, for the settlement's aggregate queries only
SCALED = Decimal(10) ** 8  # ScaledDecimal's unit
CLOSING_ENTRIES = ("out", "inout", "out_by")
ARRIVED = (
    DepositStatus.COMPLETED.value,
    DepositStatus.CREDIT_FAILED.value,
    DepositStatus.CHARGED_BACK.value,
    DepositStatus.REFUNDED.value,
)
REVERSED = (DepositStatus.CHARGED_BACK.value, DepositStatus.REFUNDED.value)
SYSTEM = Actor(type="system", id="ib-settlement")


# ---------------------------------------------------------------- closing (shared with accrual)


def _refuse(code: str, message: str) -> ApplicationError:
    return ApplicationError(message, code, type="IbSettlementRefused", non_retryable=True)


async def _brand(session: AsyncSession, code: str) -> tuple[Brand, BrandConfig]:
    brand = await session.scalar(select(Brand).where(Brand.code == code))
    if brand is None:
        raise _refuse("unknown_brand", f"brand {code!r} does not exist")
    return brand, BrandConfig.model_validate(brand.config)


async def close_period(
    sessions: async_sessionmaker[AsyncSession], inp: IbSettlementInput, now: datetime
) -> ClosedPeriod:
    """Marks the period closed (idempotent); refuses an open, future or already covered one."""
    try:
        check_settleable(inp.period, now)
    except PeriodError as exc:
        raise _refuse(exc.code, str(exc)) from exc
    async with transaction(sessions) as session:
        brand, config = await _brand(session, inp.brand)
        await lock_periods(session, brand.id, exclusive=True)
        marker = await session.scalar(
            select(IbSettlementPeriod).where(
                IbSettlementPeriod.brand_id == brand.id, IbSettlementPeriod.period == inp.period
            )
        )
        if marker is None:
            latest = await closed_through(session, brand.id)
            if latest is not None and latest > inp.period:
                raise _refuse(
                    "period_covered",
                    f"{inp.period} is covered by the settlement of {latest} (periods close in order)",
                )
            marker = IbSettlementPeriod(
                brand_id=brand.id,
                period=inp.period,
                from_period=latest,
                status="closing",
                currency=config.ib.currency.upper(),
                requested_by=inp.requested_by,
                details={"minimum_payout": str(config.ib.minimum_payout)},
            )
            session.add(marker)
            await session.flush()
        return ClosedPeriod(
            brand=brand.code,
            brand_id=brand.id,
            period=inp.period,
            from_period=marker.from_period,
            currency=marker.currency,
            minimum_payout=marker.details.get("minimum_payout", str(config.ib.minimum_payout)),
            requested_by=inp.requested_by,
        )


# ---------------------------------------------------------------- gathering the inputs


def _raw(column: Any) -> ColumnElement[int]:
    """A ScaledDecimal column as its stored integer (10^-8 units), for SUMs in SQL."""
    return type_coerce(column, BigInteger)


def _scaled(value: Any) -> Decimal:
    return (Decimal(int(value or 0)) / SCALED).normalize() if value else ZERO


def _chunks(items: list[str], size: int = IN_BATCH) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class _Facts:
    accrued: Decimal = ZERO
    direct: Decimal = ZERO
    lots: Decimal = ZERO
    clients: int = 0
    pnl: Decimal = ZERO
    net_deposits: Decimal = ZERO
    cpa: list[CpaFacts] = field(default_factory=list)


def _accrual_filter(closed: ClosedPeriod) -> list[ColumnElement[bool]]:
    where = [IbAccrual.brand_id == closed.brand_id, IbAccrual.period <= closed.period]
    if closed.from_period:
        where.append(IbAccrual.period > closed.from_period)
    return where


async def _plans(
    session: AsyncSession, brand_id: str, until: datetime
) -> dict[str, tuple[str, PlanRules]]:
    """Each IB's plan version in force at `until` (its base assignment, not a link override)."""
    assigned: dict[str, tuple[datetime, str]] = {}
    rows = await session.execute(
        select(IbPlanAssignment.ib_id, IbPlanAssignment.plan_id, IbPlanAssignment.effective_from)
        .join(IbPartner, IbPartner.id == IbPlanAssignment.ib_id)
        .where(
            IbPartner.brand_id == brand_id,
            IbPlanAssignment.link_code.is_(None),
            IbPlanAssignment.effective_from < until,
        )
    )
    for ib_id, plan_id, since in rows:
        if ib_id not in assigned or since > assigned[ib_id][0]:
            assigned[ib_id] = (since, plan_id)
    versions: dict[str, tuple[datetime, str, dict[str, Any]]] = {}
    version_rows = await session.execute(
        select(
            IbPlanVersion.plan_id,
            IbPlanVersion.id,
            IbPlanVersion.effective_from,
            IbPlanVersion.rules,
        )
        .join(IbPlan, IbPlan.id == IbPlanVersion.plan_id)
        .where(IbPlan.brand_id == brand_id, IbPlanVersion.effective_from < until)
    )
    for plan_id, version_id, since, data in version_rows:
        if plan_id not in versions or since > versions[plan_id][0]:
            versions[plan_id] = (since, version_id, data)
    parsed = {plan: (v[1], parse_plan(v[2])) for plan, v in versions.items()}
    return {ib: parsed[plan] for ib, (_, plan) in assigned.items() if plan in parsed}


async def _accrued(session: AsyncSession, closed: ClosedPeriod, facts: dict[str, _Facts]) -> None:
    """One GROUP BY over the period's accruals: total and direct (tier base) per IB."""
    ib = _by_ib(session)
    direct = case(
        (
            and_(IbAccrual.depth == 1, not_(IbAccrual.rule.like("adjustment:%"))),
            _raw(IbAccrual.amount),
        ),
        else_=0,
    )
    rows = await session.execute(
        select(
            ib,
            IbAccrual.currency,
            func.sum(_raw(IbAccrual.amount)),
            func.sum(direct),
        )
        .where(*_accrual_filter(closed))
        .group_by(ib, IbAccrual.currency)
    )
    for ib_id, currency, total, direct_total in rows:
        _check_currency(closed, ib_id, currency)
        entry = facts.setdefault(ib_id, _Facts())
        entry.accrued, entry.direct = _scaled(total), _scaled(direct_total)


def _by_ib(session: AsyncSession) -> ColumnElement[str]:
    """The IB column to group the accruals by. On SQLite an expression of it (the same value):
    grouping by the bare column, SQLite walks the (IB, period) index to save a sort and reads
    the table in that order, about three times slower than a scan and a sort of the groups."""
    if session.get_bind().dialect.name == "sqlite":
        return IbAccrual.beneficiary_id.concat(literal_column("''"))
    return IbAccrual.beneficiary_id.expression


def _check_currency(closed: ClosedPeriod, ib_id: str, currency: str) -> None:
    if currency != closed.currency:
        raise _refuse(
            "currency_mismatch",
            f"IB {ib_id} has {currency} accruals; the brand settles in {closed.currency}",
        )


def _counted_elsewhere() -> ColumnElement[bool]:
    """The deal has another accrual row for the same IB that counts the deal instead: its
    per_lot row, or a row of a rule earlier by name (adjustments never count). Probes the
    unique (deal, IB, rule) index."""
    other = aliased(IbAccrual)
    return exists().where(
        other.deal_pk == IbAccrual.deal_pk,
        other.beneficiary_id == IbAccrual.beneficiary_id,
        not_(other.rule.like("adjustment:%")),
        or_(other.rule == "per_lot", other.rule < IbAccrual.rule),
    )


def _counted_once() -> ColumnElement[bool]:
    """True on exactly one accrual row per (deal, IB): its per_lot row, else the row of its
    first rule by name; adjustments never. Deal measures summed over these rows count each deal
    once per IB without grouping by (IB, deal); the NOT EXISTS runs only for rows that are not
    per_lot."""
    return case(
        (IbAccrual.rule == "per_lot", True),
        (IbAccrual.rule.like("adjustment:%"), False),
        (_counted_elsewhere(), False),
        else_=True,
    )


def _split_counting(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def _accrued_with_deals(
    session: AsyncSession, closed: ClosedPeriod, facts: dict[str, _Facts], clients: bool
) -> None:
    """The same totals as `_accrued`, in the same single pass joined to the deals: per IB, the
    downline lots and the direct clients' P/L (profit + commission + swap) of the deals that paid
    it; with `clients`, the number of active direct clients (a second, COUNT DISTINCT, query).

    PostgreSQL runs that join in parallel, but not with a correlated EXISTS in it (and its cost
    estimate would switch the JIT compiler on, longer to compile than the query runs): there the
    pass counts the per_lot rows only and a second pass, over the other rules' rows only, adds
    the deals that have no per_lot row. SQLite evaluates `_counted_once` inline."""
    deal = IngestedDeal
    ib = _by_ib(session)
    split = _split_counting(session)
    counted = IbAccrual.rule == "per_lot" if split else _counted_once()
    direct = and_(IbAccrual.depth == 1, not_(IbAccrual.rule.like("adjustment:%")))
    pnl = _raw(deal.profit) + _raw(deal.commission) + _raw(deal.swap)
    rows = await session.execute(
        select(
            ib,
            IbAccrual.currency,
            func.sum(_raw(IbAccrual.amount)),
            func.sum(case((direct, _raw(IbAccrual.amount)), else_=0)),
            func.sum(case((counted, _raw(deal.volume_lots)), else_=0)),
            func.sum(case((and_(IbAccrual.depth == 1, counted), pnl), else_=0)),
        )
        .join(deal, deal.id == IbAccrual.deal_pk)
        .where(*_accrual_filter(closed))
        .group_by(ib, IbAccrual.currency)
    )
    for ib_id, currency, total, direct_total, lots, client_pnl in rows:
        _check_currency(closed, ib_id, currency)
        entry = facts.setdefault(ib_id, _Facts())
        entry.accrued, entry.direct = _scaled(total), _scaled(direct_total)
        entry.lots, entry.pnl = _scaled(lots), _scaled(client_pnl)
    if split:
        others = await session.execute(
            select(
                IbAccrual.beneficiary_id,
                func.sum(_raw(deal.volume_lots)),
                func.sum(case((IbAccrual.depth == 1, pnl), else_=0)),
            )
            .join(deal, deal.id == IbAccrual.deal_pk)
            .where(
                *_accrual_filter(closed),
                IbAccrual.rule != "per_lot",
                not_(IbAccrual.rule.like("adjustment:%")),
                not_(_counted_elsewhere()),
            )
            .group_by(IbAccrual.beneficiary_id)
        )
        for ib_id, lots, client_pnl in others:
            entry = facts.setdefault(ib_id, _Facts())
            entry.lots += _scaled(lots)
            entry.pnl += _scaled(client_pnl)
    if not clients:
        return
    active = await session.execute(
        select(ib, func.count(distinct(IbAccrual.trader_id)))
        .where(*_accrual_filter(closed), direct)
        .group_by(ib)
    )
    for ib_id, count in active:
        facts.setdefault(ib_id, _Facts()).clients = int(count)


def _attributed(moment: Any) -> ColumnElement[bool]:
    """The payment's trader was attributed to `IbAttribution.ib_id` at `moment` (the latest
    attribution not after it, unless it is a self-referral)."""
    later = IbAttribution.__table__.alias("later_attribution")
    return and_(
        IbAttribution.trader_id == Payment.trader_id,
        IbAttribution.effective_from <= moment,
        IbAttribution.excluded.is_(None),
        ~exists().where(
            later.c.trader_id == IbAttribution.trader_id,
            later.c.effective_from <= moment,
            later.c.effective_from > IbAttribution.effective_from,
        ),
    )


async def _net_deposits(
    session: AsyncSession, closed: ClosedPeriod, start: datetime, until: datetime
) -> dict[str, Decimal]:
    """Deposits - withdrawals - reversed deposits of each IB's attributed clients, in the
    settlement currency (payments in other currencies are not converted: they don't count)."""
    scale = CURRENCY_SCALE[closed.currency]
    out: dict[str, Decimal] = defaultdict(lambda: ZERO)
    parts = (
        (
            Payment.completed_at,
            1,
            and_(Payment.kind == "deposit", Payment.status.in_(ARRIVED)),
        ),
        (
            Payment.completed_at,
            -1,
            and_(Payment.kind == "withdrawal", Payment.status == WithdrawalStatus.PAID.value),
        ),
        (Payment.updated_at, -1, and_(Payment.kind == "deposit", Payment.status.in_(REVERSED))),
    )
    for moment, sign, condition in parts:
        rows = await session.execute(
            select(IbAttribution.ib_id, func.sum(Payment.amount))
            .select_from(Payment)
            .join(IbAttribution, _attributed(moment))
            .where(
                Payment.brand_id == closed.brand_id,
                Payment.currency == closed.currency,
                moment >= start,
                moment < until,
                condition,
            )
            .group_by(IbAttribution.ib_id)
        )
        for ib_id, amount in rows:
            out[ib_id] += sign * Decimal(int(amount)).scaleb(-scale)
    return out


async def _cpa_facts(
    session: AsyncSession,
    closed: ClosedPeriod,
    plans: dict[str, tuple[str, PlanRules]],
    start: datetime,
    until: datetime,
) -> dict[str, list[CpaFacts]]:
    """Clients whose first deposit is recent enough to qualify or be clawed back now, per IB
    they were attributed to at that first deposit."""
    cpa_rules = {ib: r.cpa for ib, (_, r) in plans.items() if r.cpa is not None}
    if not cpa_rules:
        return {}
    days = max(max(c.within_days, c.clawback_days) for c in cpa_rules.values())
    rows = (
        await session.execute(
            select(
                Payment.trader_id,
                Payment.amount,
                Payment.currency,
                Payment.completed_at,
                IbAttribution.ib_id,
            )
            .select_from(Payment)
            .join(IbAttribution, _attributed(Payment.completed_at))
            .where(
                Payment.brand_id == closed.brand_id,
                Payment.kind == "deposit",
                Payment.is_ftd.is_(True),
                Payment.status.in_(ARRIVED),
                Payment.completed_at >= start - timedelta(days=days),
                Payment.completed_at < until,
            )
        )
    ).all()
    # trader → (first deposit in minor units, its currency, when, the IB it was attributed to)
    ftds: dict[str, tuple[int, str, datetime, str]] = {
        trader: (amount, currency, at, ib_id)
        for trader, amount, currency, at, ib_id in rows
        if ib_id in cpa_rules and at is not None
    }
    traders = list(ftds)
    events: dict[tuple[str, str], Decimal] = {}
    charged: dict[str, datetime] = {}
    lots: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for batch in _chunks(traders):
        for trader_id, kind, paid in await session.execute(
            select(IbCpaEvent.trader_id, IbCpaEvent.kind, IbCpaEvent.amount).where(
                IbCpaEvent.trader_id.in_(batch)
            )
        ):
            events[(trader_id, kind)] = paid
        for trader_id, first in await session.execute(
            select(Payment.trader_id, func.min(Payment.updated_at))
            .where(
                Payment.trader_id.in_(batch),
                Payment.kind == "deposit",
                Payment.status == DepositStatus.CHARGED_BACK.value,
            )
            .group_by(Payment.trader_id)
        ):
            charged[trader_id] = first
        unpaid = [t for t in batch if (t, "paid") not in events]
        if not unpaid:
            continue
        earliest = min(ftds[t][2] for t in unpaid)
        deals = await session.execute(
            select(TradingAccount.trader_id, IngestedDeal.closed_at, _raw(IngestedDeal.volume_lots))
            .join(
                TradingAccount,
                and_(
                    TradingAccount.server_id == IngestedDeal.server_id,
                    TradingAccount.login == IngestedDeal.login,
                ),
            )
            .where(
                TradingAccount.trader_id.in_(unpaid),
                IngestedDeal.entry.in_(CLOSING_ENTRIES),
                IngestedDeal.closed_at >= earliest,
                IngestedDeal.closed_at < until,
            )
        )
        for trader_id, closed_at, volume in deals:
            ftd_at = ftds[trader_id][2]
            window = timedelta(days=cpa_rules[ftds[trader_id][3]].within_days)
            if ftd_at <= closed_at < ftd_at + window:
                lots[trader_id] += _scaled(volume)
    scale = CURRENCY_SCALE[closed.currency]
    out: dict[str, list[CpaFacts]] = defaultdict(list)
    for trader_id, (minor, currency, at, ib_id) in ftds.items():
        out[ib_id].append(
            CpaFacts(
                trader_id=trader_id,
                first_deposit=(
                    Decimal(minor).scaleb(-scale) if currency == closed.currency else None
                ),
                first_deposit_at=at,
                lots_in_window=lots[trader_id],
                charged_back_at=charged.get(trader_id),
                paid_amount=events.get((trader_id, "paid")),
                clawed_back=(trader_id, "clawback") in events,
            )
        )
    return out


async def _carried_in(session: AsyncSession, closed: ClosedPeriod) -> dict[str, Carry]:
    """Each IB's carry from its latest settlement before this period."""
    latest = (
        select(IbSettlement.ib_id, func.max(IbSettlement.period).label("period"))
        .where(IbSettlement.brand_id == closed.brand_id, IbSettlement.period < closed.period)
        .group_by(IbSettlement.ib_id)
        .subquery()
    )
    rows = await session.execute(
        select(IbSettlement.ib_id, IbSettlement.carried_out, IbSettlement.details).join(
            latest,
            and_(IbSettlement.ib_id == latest.c.ib_id, IbSettlement.period == latest.c.period),
        )
    )
    return {
        ib_id: Carry.from_json((details or {}).get("carry"), amount)
        for ib_id, amount, details in rows
    }


async def compute(
    session: AsyncSession, closed: ClosedPeriod, plans: dict[str, tuple[str, PlanRules]]
) -> list[Settled]:
    """Every IB's settlement of the closed period (pure rules over aggregated inputs)."""
    until = period_end(closed.period)
    start = period_end(closed.from_period) if closed.from_period else period_start(closed.period)
    facts: dict[str, _Facts] = {}
    # The deal-based measures cost a join with the deals: only when a plan needs them.
    if any(r.tiers or r.revshare_net_loss_pct for _, r in plans.values()):
        by_clients = any(
            r.tiers and r.tier_basis == TierBasis.ACTIVE_CLIENTS for _, r in plans.values()
        )
        await _accrued_with_deals(session, closed, facts, by_clients)
    else:
        await _accrued(session, closed, facts)
    if any(r.revshare_net_deposits_pct for _, r in plans.values()):
        for ib_id, amount in (await _net_deposits(session, closed, start, until)).items():
            if ib_id in plans and plans[ib_id][1].revshare_net_deposits_pct:
                facts.setdefault(ib_id, _Facts()).net_deposits = amount
    for ib_id, clients in (await _cpa_facts(session, closed, plans, start, until)).items():
        facts.setdefault(ib_id, _Facts()).cpa = clients
    carried = await _carried_in(session, closed)
    for ib_id, carry in carried.items():
        if carry.amount:
            facts.setdefault(ib_id, _Facts())
    suspended = set(
        (
            await session.scalars(
                select(IbPartner.id).where(
                    IbPartner.brand_id == closed.brand_id, IbPartner.status == "suspended"
                )
            )
        ).all()
    )
    minimum = Decimal(closed.minimum_payout)
    results = []
    for ib_id in sorted(facts):
        entry = facts[ib_id]
        inp = IbPeriod(
            ib_id=ib_id,
            currency=closed.currency,
            accrued=entry.accrued,
            direct_accrued=entry.direct,
            downline_lots=entry.lots,
            active_clients=entry.clients,
            net_deposits=entry.net_deposits,
            client_pnl=entry.pnl,
            cpa=tuple(entry.cpa),
            rules=plans[ib_id][1] if ib_id in plans else None,
            carried_in=carried.get(ib_id, Carry()),
            suspended=ib_id in suspended,
        )
        results.append(settle(inp, minimum, until))
    return results


# ---------------------------------------------------------------- writing


async def _wallets(session: AsyncSession, brand_id: str, codes: dict[str, str]) -> dict[str, str]:
    rows = await session.execute(
        select(LedgerAccount.code, LedgerAccount.id, LedgerAccount.kind).where(
            LedgerAccount.brand_id == brand_id, LedgerAccount.code.in_(list(codes))
        )
    )
    found = {}
    for code, account_id, kind in rows:
        if kind != AccountKind.IB_PAYABLE.value:
            raise rules.IdempotencyConflict(f"account {code} exists with another kind")
        found[codes[code]] = account_id
    return found


async def _payable_accounts(
    session: AsyncSession, brand_id: str, currency: str, ib_ids: list[str]
) -> dict[str, str]:
    """The IBs' payable wallets (opened in bulk when missing); ib id → ledger account id.
    Looked up first: after an IB's first payout its wallet exists, and an INSERT of thousands
    of rows that all conflict costs as much as one that writes them."""
    if not ib_ids:
        return {}
    codes = {rules.ib_payable_code(ib, currency): ib for ib in ib_ids}
    found = await _wallets(session, brand_id, codes)
    missing = {code: ib for code, ib in codes.items() if ib not in found}
    if not missing:
        return found
    rule = ACCOUNT_RULES[AccountKind.IB_PAYABLE]
    await insert_ignoring_duplicates(
        session,
        LedgerAccount.__table__,  # type: ignore[arg-type]
        [
            {
                "id": new_id(),
                "brand_id": brand_id,
                "code": code,
                "kind": AccountKind.IB_PAYABLE.value,
                "currency": currency,
                "owner_id": ib,
                "normal_balance": rule.normal_balance.value,
                "must_not_go_negative": rule.must_not_go_negative,
                "debits_posted": 0,
                "credits_posted": 0,
                "debits_pending": 0,
                "credits_pending": 0,
                "created_at": utcnow(),
            }
            for code, ib in missing.items()
        ],
        ["brand_id", "code"],
    )
    return found | await _wallets(session, brand_id, missing)


def transfer_key(brand_id: str, period: str, ib_id: str) -> str:
    return f"ib-settlement:{brand_id}:{period}:{ib_id}"


def _row(closed: ClosedPeriod, result: Settled, transfer_id: str | None) -> dict[str, Any]:
    """An ib_settlements row (inserted in bulk: thousands of IBs per period)."""
    return dict(
        id=new_id(),
        brand_id=closed.brand_id,
        ib_id=result.ib_id,
        period=closed.period,
        status=result.status.value,
        currency=result.currency,
        accrued=result.accrued,
        period_rules=result.period_rules,
        carried_in=result.carried_in,
        payable=result.payable,
        carried_out=result.carried_out.amount,
        ledger_transfer_id=transfer_id,
        created_at=utcnow(),
        details={
            "reason": result.reason,
            "total": str(result.total),
            "carry": result.carried_out.as_json(),
            "from_period": closed.from_period,
            "lines": [
                {
                    "rule": line.rule,
                    "amount": amount_text(line.amount),
                    "trader_id": line.trader_id,
                    "explanation": line.explanation,
                }
                for line in result.lines
            ],
        },
    )


async def write_chunk(session: AsyncSession, closed: ClosedPeriod, chunk: list[Settled]) -> int:
    """Writes the settlements of IBs not settled yet, their CPA events and one ledger transfer
    per paid IB, in the caller's transaction. Returns how many were written."""
    done = set(
        (
            await session.scalars(
                select(IbSettlement.ib_id).where(
                    IbSettlement.period == closed.period,
                    IbSettlement.ib_id.in_([r.ib_id for r in chunk]),
                )
            )
        ).all()
    )
    todo = [r for r in chunk if r.ib_id not in done]
    if not todo:
        return 0
    paid = [r for r in todo if r.status is Status.PAID]
    transfers: dict[str, str] = {}
    if paid:
        expense = await house_account(
            session,
            closed.brand_id,
            AccountKind.BROKER_EXPENSE,
            rules.broker_expense_code(closed.currency),
            closed.currency,
        )
        wallets = await _payable_accounts(
            session, closed.brand_id, closed.currency, [r.ib_id for r in paid]
        )
        views = await transfer_many(
            session,
            [
                TransferRequest(
                    idempotency_key=transfer_key(closed.brand_id, closed.period, r.ib_id),
                    debit_account_id=expense,
                    credit_account_id=wallets[r.ib_id],
                    amount=Money(amount=r.payable, currency=closed.currency),
                    kind=TransferKind.COMMISSION,
                    reference=f"ib-settlement:{closed.period}",
                    details={"ib_id": r.ib_id, "period": closed.period},
                )
                for r in paid
            ],
        )
        transfers = {r.ib_id: view.id for r, view in zip(paid, views, strict=True)}
    await session.execute(
        insert(cast(Table, IbSettlement.__table__)),
        [_row(closed, r, transfers.get(r.ib_id)) for r in todo],
    )
    events = [
        IbCpaEvent(
            brand_id=closed.brand_id,
            ib_id=r.ib_id,
            trader_id=line.trader_id,
            kind="paid" if line.rule == "cpa" else "clawback",
            period=closed.period,
            amount=line.amount,
        )
        for r in todo
        for line in r.lines
        if line.rule in ("cpa", "cpa_clawback") and line.trader_id
    ]
    session.add_all(events)
    await session.flush()
    return len(todo)


async def finish(session: AsyncSession, closed: ClosedPeriod, written: int) -> IbSettlementResult:
    """Totals of the period from its settlement rows; the period marked settled, audited once."""
    rows = (
        await session.execute(
            select(IbSettlement.status, func.count(), func.sum(_raw(IbSettlement.payable)))
            .where(IbSettlement.brand_id == closed.brand_id, IbSettlement.period == closed.period)
            .group_by(IbSettlement.status)
        )
    ).all()
    counts = {status: (int(n), _scaled(total)) for status, n, total in rows}
    paid_count, paid_total = counts.get(Status.PAID.value, (0, ZERO))
    ibs = sum(n for n, _ in counts.values())
    await session.execute(
        update(IbSettlementPeriod)
        .where(
            IbSettlementPeriod.brand_id == closed.brand_id,
            IbSettlementPeriod.period == closed.period,
        )
        .values(
            status="settled",
            ib_count=ibs,
            paid_count=paid_count,
            paid_total=paid_total,
            settled_at=utcnow(),
        )
    )
    await append_audit(
        session,
        actor=(
            Actor(type="staff", id=closed.requested_by, role="finance")
            if closed.requested_by
            else SYSTEM
        ),
        action="ib.period_settled",
        entity_type="ib_settlement_period",
        entity_id=f"{closed.brand_id}:{closed.period}",
        brand_id=closed.brand_id,
        after={"ibs": ibs, "paid": paid_count, "paid_total": str(paid_total)},
        workflow_id=f"ib-settlement-{closed.brand}-{closed.period}",
        event_key=f"ib-settlement:{closed.brand_id}:{closed.period}",
    )
    return IbSettlementResult(
        brand=closed.brand,
        period=closed.period,
        currency=closed.currency,
        ibs=ibs,
        paid=paid_count,
        carried=counts.get(Status.CARRIED.value, (0, ZERO))[0],
        held=counts.get(Status.HELD.value, (0, ZERO))[0],
        paid_total=str(paid_total),
        settled_now=written,
    )


async def settle_period(
    sessions: async_sessionmaker[AsyncSession],
    closed: ClosedPeriod,
    progress: Callable[[int], None] = lambda _: None,
    chunk: int = CHUNK,
) -> IbSettlementResult:
    """Aggregate, apply the rules, write in chunks of IBs, then mark the period settled."""
    async with sessions() as session:
        if session.get_bind().dialect.name == "postgresql":
            # A monthly batch: let the (IB, deal) aggregate hash and sort in memory.
            await session.execute(text(f"SET LOCAL work_mem = '{AGGREGATE_WORK_MEM}'"))
        plans = await _plans(session, closed.brand_id, period_end(closed.period))
        results = await compute(session, closed, plans)
    written = 0
    for start in range(0, len(results), chunk):
        async with transaction(sessions) as session:
            written += await write_chunk(session, closed, results[start : start + chunk])
        progress(start + chunk)
    async with transaction(sessions) as session:
        result = await finish(session, closed, written)
    log.info(
        "ib period settled",
        brand=closed.brand,
        period=closed.period,
        ibs=result.ibs,
        paid=result.paid,
        written=written,
    )
    return result


class IbSettlementActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._clock = clock

    @activity.defn
    async def close_ib_period(self, inp: IbSettlementInput) -> ClosedPeriod:
        return await close_period(self._sessions, inp, self._clock())

    @activity.defn
    async def settle_ib_period(self, closed: ClosedPeriod) -> IbSettlementResult:
        return await settle_period(
            self._sessions, closed, progress=lambda done: activity.heartbeat(done)
        )
