"""The IB engine's per-deal rules, distribution models, plan validation and the hierarchy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from fxcrm.domain.ib.engine import DealFacts, Level, accrue
from fxcrm.domain.ib.hierarchy import (
    Attribution,
    Attributions,
    Hierarchy,
    HierarchyError,
    ParentLink,
)
from fxcrm.domain.ib.plans import PlanError, PlanRules, parse_plan

T0 = datetime(2026, 10, 1, tzinfo=UTC)
D = Decimal


def plan(rate: str, **extra: object) -> PlanRules:
    return parse_plan(
        {
            "symbol_groups": {"EURUSD": "fx_major", "XAUUSD": "metals"},
            "per_lot": {"fx_major": {"*": rate, "pro": str(D(rate) + 1)}, "*": {"*": "1"}},
            **extra,
        }
    )


def deal(**overrides: object) -> DealFacts:
    values: dict[str, object] = {
        "deal_key": 1,
        "trader_id": "t1",
        "symbol": "EURUSD",
        "side": "sell",
        "entry": "out",
        "volume_lots": D("0.50"),
        "commission": D("-3.50"),
        "closed_at": T0 + timedelta(hours=1),
        "account_group": "retail",
        "opened_at": T0,
    }
    values.update(overrides)
    return DealFacts(**values)  # type: ignore[arg-type]


def chain(*rates: str, **extra: object) -> list[Level]:
    return [
        Level(f"ib{depth}", depth, f"plan-{rate}", plan(rate, **extra))
        for depth, rate in enumerate(rates, start=1)
    ]


def paid(accruals: list) -> dict[str, Decimal]:  # type: ignore[type-arg]
    out: dict[str, Decimal] = {}
    for a in accruals:
        out[a.beneficiary] = out.get(a.beneficiary, D(0)) + a.amount
    return out


def test_differential_pays_each_level_its_rate_minus_the_one_below() -> None:
    accruals, reason = accrue(deal(), chain("5", "7", "10"))
    assert reason is None
    assert paid(accruals) == {"ib1": D("2.5"), "ib2": D("1.0"), "ib3": D("1.5")}
    assert sum(a.amount for a in accruals) == D("0.50") * 10  # the top plan's amount, no more
    master = next(a for a in accruals if a.beneficiary == "ib2")
    assert master.inputs == {
        "lots": "0.50",
        "rate": "7",
        "cell": "fx_majorx*",
        "model": "differential",
        "own": "3.50000000",
        "below": "2.50000000",
    }


def test_differential_never_pays_a_master_below_its_sub() -> None:
    accruals, _ = accrue(deal(), chain("8", "6"))
    assert paid(accruals) == {"ib1": D("4.0")}


def test_split_shares_one_pool_and_never_more() -> None:
    levels = chain("10", "10", "10", distribution={"model": "split", "split_pct": ["70", "20"]})
    accruals, _ = accrue(deal(), levels)
    assert paid(accruals) == {"ib1": D("3.5"), "ib2": D("1.0")}  # ib3 beyond the split: nothing


def test_split_over_the_pool_and_negative_rates_are_refused() -> None:
    with pytest.raises(PlanError) as over:
        plan("5", distribution={"model": "split", "split_pct": ["80", "30"]})
    assert over.value.code == "pool_exceeded"
    with pytest.raises(PlanError) as negative:
        plan("-1")
    assert negative.value.code == "negative_rate"
    with pytest.raises(PlanError) as unknown:
        parse_plan({"per_lot": {"crypto": {"*": "1"}}})
    assert unknown.value.code == "unknown_symbol_group"


def test_matrix_resolution_and_hybrid_rules() -> None:
    levels = chain(
        "5",
        spread_markup_per_lot={"fx_major": "10"},
        spread_share_pct="30",
        commission_share_pct="50",
    )
    accruals, _ = accrue(deal(account_group="pro"), levels)
    by_rule = {a.rule: a.amount for a in accruals}
    assert by_rule == {"per_lot": D("3.0"), "spread_share": D("1.5"), "commission_share": D("1.75")}
    gold, _ = accrue(deal(symbol="XAUUSD"), chain("5"))
    assert [a.inputs["cell"] for a in gold] == ["*x*"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"entry": "in"}, "opening_deal"),
        ({"volume_lots": D(0)}, "zero_volume"),
        ({"entry": "out_by", "side": "sell"}, "close_by_paid_on_buy_leg"),
        ({"opened_at": T0 + timedelta(hours=1) - timedelta(seconds=30)}, "held_30s_below_60s"),
    ],
)
def test_deals_that_pay_nothing_say_why(changes: dict[str, object], reason: str) -> None:
    accruals, why = accrue(deal(**changes), chain("5", min_hold_seconds=60))
    assert accruals == [] and why == reason


def test_close_by_pays_once_and_partial_closes_add_up() -> None:
    buy_leg, _ = accrue(deal(entry="out_by", side="buy"), chain("5"))
    assert paid(buy_leg) == {"ib1": D("2.5")}
    partials = [
        accrue(deal(deal_key=k, volume_lots=D(v)), chain("5"))[0]
        for k, v in ((1, "0.2"), (2, "0.3"))
    ]
    assert sum(a.amount for part in partials for a in part) == D("2.5")


def test_no_chain_pays_nobody() -> None:
    assert accrue(deal(), []) == ([], "no_ib")


def test_hierarchy_moves_are_effective_dated_and_cycles_refused() -> None:
    h = Hierarchy(
        [
            ParentLink("sub", "masterA", T0),
            ParentLink("masterA", "top", T0),
            ParentLink("masterB", "top", T0),
        ]
    )
    h.add_link(ParentLink("sub", "masterB", T0 + timedelta(days=10)))
    assert h.chain_at("sub", T0 + timedelta(days=5)) == ["sub", "masterA", "top"]
    assert h.chain_at("sub", T0 + timedelta(days=15)) == ["sub", "masterB", "top"]
    with pytest.raises(HierarchyError) as cycle:
        h.add_link(ParentLink("top", "sub", T0 + timedelta(days=20)))
    assert cycle.value.code == "cycle"
    with pytest.raises(HierarchyError):
        h.add_link(ParentLink("top", "top", T0))
    # A move into the past that would cycle with a later link is refused too.
    with pytest.raises(HierarchyError):
        h.add_link(ParentLink("top", "masterA", T0 + timedelta(days=1)))


def test_attribution_is_effective_dated() -> None:
    a = Attributions(
        [
            Attribution("t1", "ib1", T0 + timedelta(days=1)),
            Attribution("t1", "ib2", T0 + timedelta(days=10)),
        ]
    )
    assert a.at("t1", T0) is None  # before any attribution: nobody
    assert a.at("t1", T0 + timedelta(days=2)).ib_id == "ib1"  # type: ignore[union-attr]
    assert a.at("t1", T0 + timedelta(days=11)).ib_id == "ib2"  # type: ignore[union-attr]
