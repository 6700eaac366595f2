"""Recalculation of a period's IB commissions: what a plan change or a re-attribution would have
paid (what-if), and the adjustment accruals that make it so, without editing anything paid.

A change covers the deals that closed in one period (YYYY-MM):
- plan: other rules (proposed, or an existing plan version) for one IB, or for every IB earning by
  one plan;
- attribution: one client belonging to another IB (through one of its links) for the period.

The deals recalculated are those the change touches: whose chain of earning IBs (with plans) is
not the same with and without it. They go through the accrual itself (fxcrm.activities.ib_accrual,
fxcrm.domain.ib.engine.accrue) with a what-if IB context (IbContext.with_changes), and every
(deal, beneficiary, rule) is compared with what is accrued already: the original accrual plus the
adjustments of earlier recalculations. Earlier applied recalculations of the same period are part
of the context too, so a second change builds on the first instead of undoing it.

Applying writes each difference as an accrual with rule `adjustment:{recalculation}:{rule}` into the
brand's first open period (the recalculated one itself if it is not settled yet; never a closed
one), its inputs saying what it was, what it is now and why. The unique (deal, beneficiary, rule)
key makes a second apply write nothing; the recalculation's status refuses it before that.
Re-attributing a period does not move the client for the future: that is the staff
re-assignment (POST /backoffice/traders/{id}/ib-attributions).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fxcrm.core.audit import Actor, append_audit
from fxcrm.core.db import insert_ignoring_duplicates
from fxcrm.domain.ib.engine import DealFacts
from fxcrm.domain.ib.hierarchy import Attribution
from fxcrm.domain.ib.plans import PlanError, PlanRules, parse_plan
from fxcrm.domain.ib.settlement import PeriodError, parse_period, period_end, period_start
from fxcrm.domain.money_text import amount_text as plain_amount
from fxcrm.ib.accrual import ACCRUAL_UNIQUE, DEAL_COLUMNS, accrual_rows
from fxcrm.ib.context import AttributionOverride, IbContext, PlanOverride
from fxcrm.ib.periods import closed_through, lock_periods, open_period
from fxcrm.ib.reports import explain
from fxcrm.models import (
    IbAccrual,
    IbPartner,
    IbPlan,
    IbPlanVersion,
    IbReferralLink,
    IngestedDeal,
    PlatformServer,
    Trader,
    TradingAccount,
)
from fxcrm.models.base import utcnow
from fxcrm.models.ib import IbRecalculation

ADJUSTMENT = "adjustment:"
BATCH = 5_000  # deals per query
SAMPLE = 100  # per-deal lines shown in a preview
ZERO = Decimal(0)
PRECISION = Decimal("0.00000001")


def amount_text(value: Decimal) -> str:
    """8 decimals, never an exponent: "4.00000000", "-2.00000000", "0.00000000"."""
    return plain_amount(value.quantize(PRECISION))


class RecalcError(ValueError):
    """A refused recalculation: the API answers `status` with `code`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


# ---------------------------------------------------------------- the change


@dataclass(frozen=True)
class PlanChange:
    rules: PlanRules
    version_id: str | None = None  # an existing version; None: rules proposed by staff
    ib_id: str | None = None  # the IB whose plan changes, or
    plan_id: str | None = None  # every IB earning by this plan


@dataclass(frozen=True)
class AttributionChange:
    trader_id: str
    ib_id: str
    link_code: str | None = None


@dataclass(frozen=True)
class Change:
    plan: PlanChange | None = None
    attribution: AttributionChange | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.plan is not None:
            out["plan"] = {
                "ib_id": self.plan.ib_id,
                "plan_id": self.plan.plan_id,
                "plan_version_id": self.plan.version_id,
                "rules": self.plan.rules.model_dump(mode="json"),
            }
        if self.attribution is not None:
            out["attribution"] = {
                "trader_id": self.attribution.trader_id,
                "ib_id": self.attribution.ib_id,
                "link_code": self.attribution.link_code,
            }
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Change:
        """A stored change (validated when it was previewed)."""
        plan = data.get("plan")
        moved = data.get("attribution")
        return cls(
            plan=PlanChange(
                rules=parse_plan(plan["rules"]),
                version_id=plan.get("plan_version_id"),
                ib_id=plan.get("ib_id"),
                plan_id=plan.get("plan_id"),
            )
            if plan
            else None,
            attribution=AttributionChange(
                moved["trader_id"], moved["ib_id"], moved.get("link_code")
            )
            if moved
            else None,
        )

    def describe(self) -> str:
        parts = []
        if self.plan is not None:
            whose = f"IB {self.plan.ib_id}" if self.plan.ib_id else f"plan {self.plan.plan_id}"
            rules = f"plan version {self.plan.version_id}" if self.plan.version_id else "new rules"
            parts.append(f"{whose} earns by {rules}")
        if self.attribution is not None:
            via = f" (link {self.attribution.link_code})" if self.attribution.link_code else ""
            parts.append(
                f"client {self.attribution.trader_id} belongs to IB {self.attribution.ib_id}{via}"
            )
        return "; ".join(parts)

    def overrides(self, period: str) -> tuple[list[PlanOverride], list[AttributionOverride]]:
        plans, attributions = [], []
        if self.plan is not None:
            plans.append(
                PlanOverride(
                    self.plan.version_id or "", self.plan.rules, self.plan.ib_id, self.plan.plan_id
                )
            )
        if self.attribution is not None:
            moved = Attribution(
                self.attribution.trader_id,
                self.attribution.ib_id,
                period_start(period),
                self.attribution.link_code,
            )
            attributions.append(AttributionOverride(moved, period_end(period)))
        return plans, attributions


def check_period(period: str, now: datetime) -> str:
    try:
        parse_period(period)
    except PeriodError as exc:
        raise RecalcError(422, exc.code, str(exc)) from exc
    if period_start(period) > now:
        raise RecalcError(422, "period_future", f"{period} has not started")
    return period


async def _of_brand(session: AsyncSession, model: Any, key: str | None, brand_id: str) -> Any:
    row = await session.get(model, key) if key else None
    if row is None or row.brand_id != brand_id:
        raise RecalcError(404, "not_found", f"no {model.__tablename__[:-1]} {key}")
    return row


async def parse_change(session: AsyncSession, brand_id: str, data: dict[str, Any]) -> Change:
    """A change as staff send it, checked against the brand's records."""
    plan = data.get("plan") or None
    moved = data.get("attribution") or None
    if plan is None and moved is None:
        raise RecalcError(422, "empty_change", "the change names no plan and no attribution")
    plan_change = None
    if plan is not None:
        ib_id, plan_id = plan.get("ib_id"), plan.get("plan_id")
        version_id, rules = plan.get("plan_version_id"), plan.get("rules")
        if (ib_id is None) == (plan_id is None):
            raise RecalcError(422, "invalid_change", "name either ib_id or plan_id")
        if (version_id is None) == (rules is None):
            raise RecalcError(
                422,
                "empty_change" if rules is None else "invalid_change",
                "give either the rules or a plan_version_id",
            )
        if ib_id is not None:
            await _of_brand(session, IbPartner, ib_id, brand_id)
        else:
            await _of_brand(session, IbPlan, plan_id, brand_id)
        if version_id is not None:
            version = await session.get(IbPlanVersion, version_id)
            owner = await session.get(IbPlan, version.plan_id) if version else None
            if version is None or owner is None or owner.brand_id != brand_id:
                raise RecalcError(404, "not_found", f"no plan version {version_id}")
            rules = version.rules
        try:
            parsed = parse_plan(rules)
        except PlanError as exc:
            raise RecalcError(422, exc.code, str(exc)) from exc
        plan_change = PlanChange(parsed, version_id, ib_id, plan_id)
    attribution = None
    if moved is not None:
        trader = await _of_brand(session, Trader, moved.get("trader_id"), brand_id)
        partner = await _of_brand(session, IbPartner, moved.get("ib_id"), brand_id)
        code = moved.get("link_code")
        if code is not None and not await session.scalar(
            select(IbReferralLink.id).where(
                IbReferralLink.ib_id == partner.id, IbReferralLink.code == code
            )
        ):
            raise RecalcError(422, "unknown_link", "not one of this IB's links")
        attribution = AttributionChange(trader.id, partner.id, code)
    return Change(plan_change, attribution)


# ---------------------------------------------------------------- the what-if


@dataclass
class Line:
    """One (deal, beneficiary, rule): what is accrued and what the change would accrue."""

    deal_pk: int
    deal_id: str
    trader_id: str
    closed_at: datetime
    beneficiary_id: str
    rule: str
    depth: int
    currency: str
    original: Decimal
    recalculated: Decimal
    plan_version_id: str | None = None
    explanation: str | None = None  # of the recalculated amount

    @property
    def delta(self) -> Decimal:
        return self.recalculated - self.original

    def as_json(self) -> dict[str, Any]:
        return {
            "deal_pk": self.deal_pk,
            "deal_id": self.deal_id,
            "trader_id": self.trader_id,
            "ib_id": self.beneficiary_id,
            "rule": self.rule,
            "depth": self.depth,
            "currency": self.currency,
            "original": amount_text(self.original),
            "recalculated": amount_text(self.recalculated),
            "delta": amount_text(self.delta),
            "explanation": self.explanation,
        }


def base_rule(rule: str) -> str:
    """The engine's rule of an accrual: `adjustment:{id}:per_lot` adjusts `per_lot`."""
    return rule.split(":", 2)[2] if rule.startswith(ADJUSTMENT) else rule


async def _earlier(session: AsyncSession, brand_id: str, period: str, but: str) -> list[Change]:
    rows = await session.execute(
        select(IbRecalculation.change)
        .where(
            IbRecalculation.brand_id == brand_id,
            IbRecalculation.period == period,
            IbRecalculation.status == "applied",
            IbRecalculation.id != but,
        )
        .order_by(IbRecalculation.applied_at, IbRecalculation.id)
    )
    return [Change.from_json(change) for (change,) in rows]


def _with(context: IbContext, changes: Sequence[Change], period: str) -> IbContext:
    plans: list[PlanOverride] = []
    attributions: list[AttributionOverride] = []
    for change in changes:
        p, a = change.overrides(period)
        plans += p
        attributions += a
    return context.with_changes(plans, attributions)


async def compute(
    session: AsyncSession, brand_id: str, period: str, change: Change, recalculation_id: str
) -> list[Line]:
    """Every (deal, beneficiary, rule) of the deals the change touches, with both amounts."""
    start, end = period_start(period), period_end(period)
    earlier = await _earlier(session, brand_id, period, recalculation_id)
    servers = (
        await session.scalars(select(PlatformServer.id).where(PlatformServer.brand_id == brand_id))
    ).all()
    lines: list[Line] = []
    for server_id in servers:
        logins: list[int] | None = None
        if change.plan is None and change.attribution is not None:
            # Only this client's deals can change: read no others.
            logins = [
                int(login)
                for login in (
                    await session.scalars(
                        select(TradingAccount.login).where(
                            TradingAccount.server_id == server_id,
                            TradingAccount.trader_id == change.attribution.trader_id,
                            TradingAccount.login.is_not(None),
                        )
                    )
                ).all()
                if login is not None
            ]
            if not logins:
                continue
        loaded = await IbContext.load(session, server_id)
        before = _with(loaded, earlier, period)
        after = _with(before, [change], period)
        after_pk = 0
        while True:
            query = (
                select(*DEAL_COLUMNS)
                .where(
                    IngestedDeal.server_id == server_id,
                    IngestedDeal.closed_at >= start,
                    IngestedDeal.closed_at < end,
                    IngestedDeal.id > after_pk,
                )
                .order_by(IngestedDeal.id)
                .limit(BATCH)
            )
            if logins is not None:
                query = query.where(IngestedDeal.login.in_(logins))
            deals = (await session.execute(query)).all()
            if not deals:
                break
            after_pk = deals[-1].id
            touched = [deal for deal in deals if _touched(before, after, deal)]
            if touched:
                lines += await _compare(session, brand_id, after, touched)
    return lines


def _touched(before: IbContext, after: IbContext, deal: Any) -> bool:
    account = before.account(deal.login)
    if account is None:
        return False
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
    )
    return before.resolve(fact) != after.resolve(fact)


async def _compare(
    session: AsyncSession, brand_id: str, context: IbContext, deals: Sequence[Any]
) -> list[Line]:
    # The accrual's own row builder, with the what-if context: nothing of it is re-implemented.
    rows, _ = await accrual_rows(session, context, deals, None, Counter())
    recalculated = {(r["deal_pk"], r["beneficiary_id"], r["rule"]): r for r in rows}
    accrued: dict[tuple[int, str, str], list[Any]] = defaultdict(lambda: [ZERO, 0, "", ""])
    existing = await session.execute(
        select(
            IbAccrual.deal_pk,
            IbAccrual.beneficiary_id,
            IbAccrual.rule,
            IbAccrual.depth,
            IbAccrual.currency,
            IbAccrual.amount,
            IbAccrual.trader_id,
        ).where(IbAccrual.brand_id == brand_id, IbAccrual.deal_pk.in_([d.id for d in deals]))
    )
    for deal_pk, beneficiary, rule, depth, currency, amount, trader_id in existing:
        entry = accrued[(deal_pk, beneficiary, base_rule(rule))]
        entry[0] += amount
        if not rule.startswith(ADJUSTMENT) or not entry[1]:
            entry[1:] = [depth, currency, trader_id]
    by_pk = {deal.id: deal for deal in deals}
    lines = []
    for key in sorted(set(recalculated) | set(accrued)):
        deal = by_pk[key[0]]
        new = recalculated.get(key)
        old = accrued.get(key)
        if old is not None and new is not None and old[2] != new["currency"]:
            raise RecalcError(
                422,
                "currency_mismatch",
                f"deal {deal.deal_id} paid {old[2]}, the change would pay {new['currency']}",
            )
        amount = new["amount"] if new is not None else ZERO
        if new is None and old is not None and not old[0]:
            continue  # reversed entirely by an earlier recalculation: nothing left to compare
        lines.append(
            Line(
                deal_pk=key[0],
                deal_id=deal.deal_id,
                trader_id=new["trader_id"] if new is not None else old[3],  # type: ignore[index]
                closed_at=deal.closed_at,
                beneficiary_id=key[1],
                rule=key[2],
                depth=new["depth"] if new is not None else old[1],  # type: ignore[index]
                currency=new["currency"] if new is not None else old[2],  # type: ignore[index]
                original=old[0] if old is not None else ZERO,
                recalculated=amount,
                plan_version_id=new["plan_version_id"] if new is not None else None,
                explanation=explain(key[2], new["inputs"], amount, new["currency"])
                if new is not None
                else None,
            )
        )
    return lines


def summary(lines: Sequence[Line]) -> dict[str, Any]:
    """Totals per currency and per IB, and the first per-deal lines that change."""
    totals: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    per_ib: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [ZERO, ZERO, 0])
    changed = [line for line in lines if line.delta]
    for line in lines:
        totals[line.currency][0] += line.original
        totals[line.currency][1] += line.recalculated
        entry = per_ib[(line.beneficiary_id, line.currency)]
        entry[0] += line.original
        entry[1] += line.recalculated
        entry[2] += 1 if line.delta else 0
    return {
        "deals": len({line.deal_pk for line in lines}),
        "lines": len(changed),
        "totals": {
            currency: {
                "original": amount_text(o),
                "recalculated": amount_text(r),
                "delta": amount_text(r - o),
            }
            for currency, (o, r) in sorted(totals.items())
        },
        "per_ib": [
            {
                "ib_id": ib_id,
                "currency": currency,
                "original": amount_text(o),
                "recalculated": amount_text(r),
                "delta": amount_text(r - o),
                "lines": n,
            }
            for (ib_id, currency), (o, r, n) in sorted(per_ib.items())
        ],
        "sample": [line.as_json() for line in changed[:SAMPLE]],
    }


# ---------------------------------------------------------------- preview and apply


async def preview(
    session: AsyncSession,
    brand_id: str,
    period: str,
    change: Change,
    reason: str,
    actor: Actor,
) -> IbRecalculation:
    """Computes and stores a preview, in the caller's transaction (audited)."""
    recalculation = IbRecalculation(
        brand_id=brand_id,
        period=period,
        change=change.as_json(),
        reason=reason,
        status="previewed",
        preview={},
        created_by=actor.id,
    )
    session.add(recalculation)
    await session.flush()
    lines = await compute(session, brand_id, period, change, recalculation.id)
    recalculation.preview = summary(lines)
    await append_audit(
        session,
        actor=actor,
        action="ib.recalculation_previewed",
        entity_type="ib_recalculation",
        entity_id=recalculation.id,
        brand_id=brand_id,
        after={
            "period": period,
            "change": recalculation.change,
            "reason": reason,
            "totals": recalculation.preview["totals"],
        },
    )
    return recalculation


async def apply(session: AsyncSession, recalculation_id: str, actor: Actor) -> IbRecalculation:
    """Writes the differences as adjustment accruals into the first open period, once, in the
    caller's transaction. Recomputed now: whatever was accrued or adjusted since the preview
    is taken into account."""
    recalculation = await session.get(
        IbRecalculation, recalculation_id, with_for_update=True, populate_existing=True
    )
    if recalculation is None:
        raise RecalcError(404, "not_found", f"no recalculation {recalculation_id}")
    if recalculation.status == "applied":
        raise RecalcError(
            409,
            "already_applied",
            f"applied on {recalculation.applied_at} by {recalculation.applied_by}",
        )
    brand_id = recalculation.brand_id
    # Exclusive: a close waits for the adjustments, and two applies never interleave.
    await lock_periods(session, brand_id, exclusive=True)
    target = open_period(
        period_start(recalculation.period), await closed_through(session, brand_id)
    )
    change = Change.from_json(recalculation.change)
    lines = await compute(session, brand_id, recalculation.period, change, recalculation.id)
    now = utcnow()
    described = change.describe()
    rows = [
        {
            "brand_id": brand_id,
            "deal_pk": line.deal_pk,
            "beneficiary_id": line.beneficiary_id,
            "rule": f"{ADJUSTMENT}{recalculation.id}:{line.rule}",
            "depth": line.depth,
            "amount": line.delta,
            "currency": line.currency,
            "plan_version_id": line.plan_version_id,
            "trader_id": line.trader_id,
            "period": target,
            "closed_at": line.closed_at,
            "inputs": {
                "deal": line.deal_id,
                "deal_period": recalculation.period,
                "original": amount_text(line.original),
                "recalculated": amount_text(line.recalculated),
                "recalculation": line.explanation or "nothing",
                "change": described,
                "reason": recalculation.reason,
                "recalculation_id": recalculation.id,
            },
            "created_at": now,
        }
        for line in lines
        if line.delta
    ]
    written = await insert_ignoring_duplicates(
        session,
        IbAccrual.__table__,  # type: ignore[arg-type]
        rows,
        ACCRUAL_UNIQUE,
    )
    result = summary(lines)
    recalculation.status = "applied"
    recalculation.target_period = target
    recalculation.applied = {**result, "written": written}
    recalculation.applied_by = actor.id
    recalculation.applied_at = now
    await append_audit(
        session,
        actor=actor,
        action="ib.recalculation_applied",
        entity_type="ib_recalculation",
        entity_id=recalculation.id,
        brand_id=brand_id,
        before={"status": "previewed", "totals": recalculation.preview.get("totals")},
        after={
            "period": recalculation.period,
            "target_period": target,
            "change": recalculation.change,
            "reason": recalculation.reason,
            "totals": result["totals"],
            "adjustments": written,
        },
        event_key=f"ib-recalculation:{recalculation.id}",
    )
    return recalculation
