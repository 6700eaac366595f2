"""Recalculation of a period on the database: a plan change on a settled period pays the exact
differential deltas into the next open period, once; a re-attribution moves commission from the
old chain to the new IB; an open period is adjusted in place; a later recalculation builds on an
earlier one; nothing accrued or paid before is edited; bad changes are refused with a code."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update

from fxcrm.activities.ib_settlement import close_period, settle_period
from fxcrm.core.audit import Actor
from fxcrm.core.db import transaction
from fxcrm.domain.brand import demo_brand_config
from fxcrm.ib import recalculation as recalc
from fxcrm.models import (
    AuditEvent,
    Brand,
    IbAccrual,
    IbPlanAssignment,
    IbPlanVersion,
    IbSettlement,
)
from fxcrm.models.ib import IbRecalculation
from fxcrm.workflows.ib_settlement_types import IbSettlementInput
from tests.activities.test_ib_accrual import T0, World, per_lot
from tests.activities.test_ib_accrual import world as accrual_world  # noqa: F401

D = Decimal
ADMIN = Actor(type="staff", id="admin-1", role="admin")
PERIOD = "2026-03"  # T0's month
LATER = T0 + timedelta(days=400)


@pytest.fixture
async def world(accrual_world: World) -> AsyncIterator[World]:  # noqa: F811
    """MASTER(10) > SUB(7) > LEAF(5), differential, plus a top-level OTHER(9); the brand can be
    settled (a brand config and a code)."""
    w = accrual_world
    async with transaction(w.sessions) as session:
        config = demo_brand_config(w.server_id).model_dump(mode="json")
        config["ib"] = {**config.get("ib", {}), "minimum_payout": "0", "currency": "USD"}
        await session.execute(update(Brand).where(Brand.id == w.brand_id).values(config=config))
    await w.plan(per_lot("10"), "MASTER")
    await w.plan(per_lot("7"), "SUB")
    await w.plan(per_lot("5"), "LEAF")
    await w.ib("OTHER")
    await w.link("OTHER", None, T0 - timedelta(days=60))
    await w.plan(per_lot("9"), "OTHER")
    yield w


async def _code(w: World) -> str:
    async with w.sessions() as session:
        code = await session.scalar(select(Brand.code).where(Brand.id == w.brand_id))
    assert code is not None
    return code


async def _settle(w: World, period: str) -> None:
    closed = await close_period(
        w.sessions, IbSettlementInput(brand=await _code(w), period=period), LATER
    )
    await settle_period(w.sessions, closed)


async def _preview(w: World, change: dict[str, Any], period: str = PERIOD) -> IbRecalculation:
    async with transaction(w.sessions) as session:
        parsed = await recalc.parse_change(session, w.brand_id, change)
        return await recalc.preview(session, w.brand_id, period, parsed, "rate agreed", ADMIN)


async def _apply(recalc_id: str, w: World) -> IbRecalculation:
    async with transaction(w.sessions) as session:
        return await recalc.apply(session, recalc_id, ADMIN)


def _per_ib(w: World, summary: dict[str, Any]) -> dict[str, Decimal]:
    names = {ib_id: name for name, ib_id in w.ibs.items()}
    return {names[row["ib_id"]]: D(row["delta"]) for row in summary["per_ib"]}


async def _snapshot(w: World) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    async with w.sessions() as session:
        accruals = (await session.execute(select(IbAccrual).where(~_adjustment()))).scalars()
        settlements = (await session.scalars(select(IbSettlement))).all()
        return (
            {(a.id, a.beneficiary_id, a.rule, a.amount, a.period) for a in accruals},
            {(s.id, s.ib_id, s.period, s.status, s.payable, s.carried_out) for s in settlements},
        )


def _adjustment() -> Any:
    return IbAccrual.rule.like("adjustment:%")


async def _adjustments(w: World) -> list[IbAccrual]:
    async with w.sessions() as session:
        query = select(IbAccrual).where(IbAccrual.brand_id == w.brand_id, _adjustment())
        return list((await session.scalars(query.order_by(IbAccrual.id))).all())


async def test_plan_change_on_a_settled_period_adjusts_the_next_open_one_once(
    world: World,
) -> None:
    login = await world.client("LEAF")
    deal = await world.deal(login, T0 + timedelta(days=1), lots="2")
    await world.accrue()
    assert await world.earned(deal) == {
        ("LEAF", "per_lot"): D(10),
        ("SUB", "per_lot"): D(4),
        ("MASTER", "per_lot"): D(6),
    }
    await _settle(world, PERIOD)
    before = await _snapshot(world)

    # SUB at 8/lot: LEAF still 10, SUB 16 - 10 = 6 (+2), MASTER 20 - 16 = 4 (-2).
    preview = await _preview(world, {"plan": {"ib_id": world.ibs["SUB"], "rules": per_lot("8")}})
    assert preview.status == "previewed"
    assert _per_ib(world, preview.preview) == {"LEAF": D(0), "SUB": D(2), "MASTER": D(-2)}
    assert preview.preview["totals"]["USD"] == {
        "original": "20.00000000",
        "recalculated": "20.00000000",
        "delta": "0.00000000",
    }
    assert preview.preview["deals"] == 1 and preview.preview["lines"] == 2
    assert not await _adjustments(world)  # a preview accrues nothing

    applied = await _apply(preview.id, world)
    assert applied.status == "applied" and applied.target_period == "2026-04"
    assert applied.applied is not None and applied.applied["written"] == 2
    rows = await _adjustments(world)
    assert {(r.beneficiary_id, r.amount, r.period, r.depth) for r in rows} == {
        (world.ibs["SUB"], D(2), "2026-04", 2),
        (world.ibs["MASTER"], D(-2), "2026-04", 3),
    }
    sub = next(r for r in rows if r.beneficiary_id == world.ibs["SUB"])
    assert sub.rule == f"adjustment:{preview.id}:per_lot" and sub.deal_pk == deal
    assert sub.inputs["original"] == "4.00000000" and sub.inputs["recalculated"] == "6.00000000"
    assert sub.inputs["reason"] == "rate agreed" and sub.inputs["recalculation_id"] == preview.id
    assert sub.inputs["deal_period"] == PERIOD and "earns by new rules" in sub.inputs["change"]
    assert sub.plan_version_id is None  # proposed rules, not a stored version

    # Once: a second apply is refused; even forced, it finds nothing left to adjust.
    with pytest.raises(recalc.RecalcError) as refused:
        await _apply(preview.id, world)
    assert refused.value.status == 409 and refused.value.code == "already_applied"
    async with transaction(world.sessions) as session:
        await session.execute(
            update(IbRecalculation)
            .where(IbRecalculation.id == preview.id)
            .values(status="previewed")
        )
    assert (await _apply(preview.id, world)).applied["written"] == 0  # type: ignore[index]
    assert len(await _adjustments(world)) == 2

    # Nothing accrued or paid before was edited; the per-deal totals now follow the new plan.
    assert await _snapshot(world) == before
    totals = await world.earned(deal)
    assert totals[("SUB", f"adjustment:{preview.id}:per_lot")] == D(2)
    async with world.sessions() as session:
        actions = (
            await session.scalars(
                select(AuditEvent.action).where(AuditEvent.entity_id == preview.id)
            )
        ).all()
    assert actions == ["ib.recalculation_previewed", "ib.recalculation_applied"]

    # The next settlement pays the adjustments.
    await _settle(world, "2026-04")
    async with world.sessions() as session:
        paid = {
            s.ib_id: s.accrued
            for s in await session.scalars(
                select(IbSettlement).where(IbSettlement.period == "2026-04")
            )
        }
    assert paid[world.ibs["SUB"]] == D(2) and paid[world.ibs["MASTER"]] == D(-2)


async def test_reattribution_moves_commission_from_the_old_chain_to_the_new_ib(
    world: World,
) -> None:
    login = await world.client("LEAF")
    deal = await world.deal(login, T0 + timedelta(days=1), lots="2")
    other_client = await world.client("LEAF")
    untouched = await world.deal(other_client, T0 + timedelta(days=2), lots="1")
    await world.accrue()
    await _settle(world, PERIOD)
    change = {"attribution": {"trader_id": world.traders[login], "ib_id": world.ibs["OTHER"]}}
    preview = await _preview(world, change)
    assert _per_ib(world, preview.preview) == {
        "LEAF": D(-10),
        "SUB": D(-4),
        "MASTER": D(-6),
        "OTHER": D(18),
    }
    await _apply(preview.id, world)
    rows = await _adjustments(world)
    assert {r.deal_pk for r in rows} == {deal}  # the other client's deal is not touched
    assert untouched not in {r.deal_pk for r in rows}
    earned = await world.earned(deal)
    by_ib: dict[str, Decimal] = {}
    for (name, _), amount in earned.items():
        by_ib[name] = by_ib.get(name, D(0)) + amount
    assert by_ib == {"LEAF": D(0), "SUB": D(0), "MASTER": D(0), "OTHER": D(18)}
    other = next(r for r in rows if r.beneficiary_id == world.ibs["OTHER"])
    assert other.inputs["original"] == "0.00000000" and other.depth == 1
    assert "belongs to IB" in other.inputs["change"]
    assert other.inputs["recalculation"].startswith("2 lots x 9 USD/lot")


async def test_open_period_is_adjusted_in_place_and_changes_build_on_each_other(
    world: World,
) -> None:
    login = await world.client("LEAF")
    deal = await world.deal(login, T0 + timedelta(days=1), lots="1")
    await world.accrue()
    moved = await _preview(
        world, {"attribution": {"trader_id": world.traders[login], "ib_id": world.ibs["OTHER"]}}
    )
    applied = await _apply(moved.id, world)
    assert applied.target_period == PERIOD  # not settled yet: the same period
    # A later plan change of OTHER sees the client as OTHER's already: only OTHER's rate moves.
    repriced = await _preview(
        world, {"plan": {"ib_id": world.ibs["OTHER"], "rules": per_lot("12")}}
    )
    assert _per_ib(world, repriced.preview) == {"OTHER": D(3)}
    await _apply(repriced.id, world)
    totals: dict[str, Decimal] = {}
    for (name, _), amount in (await world.earned(deal)).items():
        totals[name] = totals.get(name, D(0)) + amount
    assert totals == {"LEAF": D(0), "SUB": D(0), "MASTER": D(0), "OTHER": D(12)}
    assert {r.period for r in await _adjustments(world)} == {PERIOD}


async def _plan_of(w: World, name: str) -> tuple[str, str]:
    """(plan id, its version id) of the one-version plan `name` earns by."""
    async with w.sessions() as session:
        plan_id = await session.scalar(
            select(IbPlanAssignment.plan_id).where(IbPlanAssignment.ib_id == w.ibs[name])
        )
        version_id = await session.scalar(
            select(IbPlanVersion.id).where(IbPlanVersion.plan_id == plan_id)
        )
    assert plan_id is not None and version_id is not None
    return plan_id, version_id


async def test_a_whole_plan_by_a_stored_version(world: World) -> None:
    login = await world.client("LEAF")
    await world.deal(login, T0 + timedelta(days=1), lots="1")
    await world.accrue()
    # LEAF's plan priced like OTHER's version (9/lot), differential: LEAF 9 (+4),
    # SUB max(0, 7 - 9) = 0 (-2), MASTER 10 - 9 = 1 (-2).
    leaf_plan, _ = await _plan_of(world, "LEAF")
    _, other_version = await _plan_of(world, "OTHER")
    preview = await _preview(
        world, {"plan": {"plan_id": leaf_plan, "plan_version_id": other_version}}
    )
    assert _per_ib(world, preview.preview) == {"LEAF": D(4), "SUB": D(-2), "MASTER": D(-2)}
    applied = await _apply(preview.id, world)
    leaf = next(r for r in await _adjustments(world) if r.beneficiary_id == world.ibs["LEAF"])
    assert leaf.plan_version_id == other_version and applied.target_period == PERIOD


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({}, 422, "empty_change"),
        ({"plan": {"ib_id": "SUB"}}, 422, "empty_change"),
        ({"plan": {"ib_id": "SUB", "rules": per_lot("-1")}}, 422, "negative_rate"),
        ({"plan": {"rules": per_lot("1")}}, 422, "invalid_change"),
        ({"plan": {"ib_id": "nobody", "rules": per_lot("1")}}, 404, "not_found"),
        ({"plan": {"ib_id": "SUB", "plan_version_id": "nope"}}, 404, "not_found"),
        ({"attribution": {"trader_id": "nobody", "ib_id": "SUB"}}, 404, "not_found"),
    ],
)
async def test_bad_changes_are_refused(
    world: World, change: dict[str, Any], status: int, code: str
) -> None:
    change = copy.deepcopy(change)  # the parameters are shared by both database backends
    plan = change.get("plan")
    if plan and plan.get("ib_id") in world.ibs:
        plan["ib_id"] = world.ibs[plan["ib_id"]]
    moved = change.get("attribution")
    if moved:
        moved["ib_id"] = world.ibs[moved["ib_id"]]
    async with world.sessions() as session:
        with pytest.raises(recalc.RecalcError) as refused:
            await recalc.parse_change(session, world.brand_id, change)
    assert (refused.value.status, refused.value.code) == (status, code)


@pytest.mark.parametrize(
    ("period", "code"), [("2026-13", "invalid_period"), ("26-01", "invalid_period")]
)
def test_bad_periods_are_refused(period: str, code: str) -> None:
    with pytest.raises(recalc.RecalcError) as refused:
        recalc.check_period(period, T0)
    assert refused.value.code == code


def test_a_future_period_is_refused_and_the_current_one_accepted() -> None:
    with pytest.raises(recalc.RecalcError) as refused:
        recalc.check_period("2026-04", T0)
    assert refused.value.code == "period_future"
    assert recalc.check_period(PERIOD, T0) == PERIOD
