"""Per-deal accrual: which IBs earn what on one closed deal, and why.

Explicit rules, each tested (tests/domain/test_ib_engine.py):
- only closing deals pay ("out", "inout", "out_by"); an opening deal ("in") pays nothing, so a
  round trip pays once, on its close;
- a partial close pays on its own volume: the partial closes of a position add up to it;
- MT5 close-by closes two opposite positions with two "out_by" deals; it pays once, on the buy
  leg (the two legs are one execution that nets them off);
- hedged positions (buy and sell open on a hedging account) are two positions and pay on each
  close, like any other position; a close-by between them pays once as above;
- a deal with zero volume (a balance correction, a swap-only line) pays nothing;
- a trade held less than the direct IB's plan minimum pays nothing (scalping);
- a deal closed before the client's attribution pays nobody (the caller finds no chain);
- amounts keep 8 decimal places (ROUND_HALF_EVEN); they are rounded to the currency once, at
  settlement (fxcrm.domain.ib.settlement).
Distribution up the chain follows the direct IB's plan (fxcrm.domain.ib.plans.Distribution).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from fxcrm.domain.ib.plans import HUNDRED, DistributionModel, PlanRules
from fxcrm.domain.money_text import amount_text

PRECISION = Decimal("0.00000001")
CLOSING_ENTRIES = {"out", "inout", "out_by"}
RULES = ("per_lot", "spread_share", "commission_share")


@dataclass(frozen=True)
class DealFacts:
    deal_key: int  # closed_deals.id
    trader_id: str
    symbol: str
    side: str  # buy | sell
    entry: str  # in | out | inout | out_by
    volume_lots: Decimal
    commission: (
        Decimal  # what the client paid on the deal (negative on the platform), plan currency
    )
    closed_at: datetime
    account_group: str
    opened_at: datetime | None = None  # the position's opening, when known


@dataclass(frozen=True)
class Level:
    """One IB of the chain at the deal's time, with the plan version that applies to it."""

    ib_id: str
    depth: int  # 1: the client's direct IB
    plan_version_id: str
    rules: PlanRules


@dataclass(frozen=True)
class Accrual:
    deal_key: int
    beneficiary: str
    rule: str  # per_lot | spread_share | commission_share
    depth: int
    amount: Decimal
    currency: str
    plan_version_id: str
    inputs: dict[str, Any] = field(default_factory=dict)  # the explanation shown to IB and staff


def _q(value: Decimal) -> Decimal:
    return value.quantize(PRECISION, ROUND_HALF_EVEN)


def exclusion(deal: DealFacts, direct: Level | None) -> str | None:
    """Why a deal pays nothing at all, or None if it pays."""
    if direct is None:
        return "no_ib"
    if deal.volume_lots <= 0:
        return "zero_volume"
    if deal.entry not in CLOSING_ENTRIES:
        return "opening_deal"
    if deal.entry == "out_by" and deal.side != "buy":
        return "close_by_paid_on_buy_leg"
    minimum = direct.rules.min_hold_seconds
    if minimum and deal.opened_at is not None:
        held = (deal.closed_at - deal.opened_at).total_seconds()
        if held < minimum:
            return f"held_{int(held)}s_below_{minimum}s"
    return None


def base_amounts(deal: DealFacts, rules: PlanRules) -> dict[str, tuple[Decimal, dict[str, Any]]]:
    """What one plan pays on the deal, per rule, with the inputs of each figure."""
    lots = deal.volume_lots
    out: dict[str, tuple[Decimal, dict[str, Any]]] = {}
    found = rules.lot_rate(deal.symbol, deal.account_group)
    if found is not None and found[0] > 0:
        rate, cell = found
        out["per_lot"] = (
            lots * rate,
            {"lots": amount_text(lots), "rate": amount_text(rate), "cell": cell},
        )
    markup = rules.markup(deal.symbol)
    if rules.spread_share_pct and markup:
        amount = lots * markup * rules.spread_share_pct / HUNDRED
        out["spread_share"] = (
            amount,
            {
                "lots": amount_text(lots),
                "markup": amount_text(markup),
                "pct": amount_text(rules.spread_share_pct),
            },
        )
    if rules.commission_share_pct and deal.commission:
        paid = abs(deal.commission)
        amount = paid * rules.commission_share_pct / HUNDRED
        out["commission_share"] = (
            amount,
            {"commission": amount_text(paid), "pct": amount_text(rules.commission_share_pct)},
        )
    return out


def accrue(deal: DealFacts, chain: list[Level]) -> tuple[list[Accrual], str | None]:
    """The accruals of one deal for a chain (direct IB first) and, if none, why."""
    direct = chain[0] if chain else None
    reason = exclusion(deal, direct)
    if reason is not None or direct is None:
        return [], reason
    distribution = direct.rules.distribution
    levels = chain[: distribution.max_levels] if distribution.max_levels else chain
    if distribution.model == DistributionModel.SPLIT:
        accruals = _split(deal, levels, direct)
    else:
        accruals = _differential(deal, levels)
    return accruals, None if accruals else "no_rate"


def _split(deal: DealFacts, levels: list[Level], direct: Level) -> list[Accrual]:
    pool = base_amounts(deal, direct.rules)
    shares = direct.rules.distribution.split_pct
    out = []
    for level in levels[: len(shares)]:
        pct = shares[level.depth - 1]
        for rule, (amount, inputs) in pool.items():
            share = _q(amount * pct / HUNDRED)
            if share > 0:
                out.append(
                    Accrual(
                        deal.deal_key,
                        level.ib_id,
                        rule,
                        level.depth,
                        share,
                        direct.rules.currency,
                        direct.plan_version_id,
                        {
                            **inputs,
                            "model": "split",
                            "pool": amount_text(_q(amount)),
                            "share_pct": amount_text(pct),
                        },
                    )
                )
    return out


def _differential(deal: DealFacts, levels: list[Level]) -> list[Accrual]:
    """Each level earns its plan's amount minus what the levels below it already earn, never
    less than zero: the chain in total pays the highest plan's amount, never more."""
    out = []
    below: dict[str, Decimal] = {}
    for level in levels:
        mine = base_amounts(deal, level.rules)
        for rule in RULES:
            if rule not in mine:
                continue
            amount, inputs = mine[rule]
            already = below.get(rule, Decimal(0))
            earned = _q(amount - already)
            if earned > 0:
                out.append(
                    Accrual(
                        deal.deal_key,
                        level.ib_id,
                        rule,
                        level.depth,
                        earned,
                        level.rules.currency,
                        level.plan_version_id,
                        {
                            **inputs,
                            "model": "differential",
                            "own": amount_text(_q(amount)),
                            "below": amount_text(_q(already)),
                        },
                    )
                )
            below[rule] = max(already, amount)
    return out
