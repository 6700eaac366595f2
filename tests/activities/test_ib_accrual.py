"""Real-time IB accrual on the database: who earns what per deal along a 3-level tree, exactly once,
effective-dated hierarchy, attributions and plans, per-link overrides, minimum holding time,
close-by, and late deals of a settled period."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import ActivityEnvironment

from fxcrm.activities.ib_accrual import IbAccrualActivities
from fxcrm.core.db import transaction
from fxcrm.models import (
    Brand,
    IbAccrual,
    IbAccrualCursor,
    IbAttribution,
    IbParentLink,
    IbPartner,
    IbPlan,
    IbPlanAssignment,
    IbPlanVersion,
    IbSettlementPeriod,
    IbUnpaidDeal,
    IngestedDeal,
    PlatformServer,
    Trader,
    TradingAccount,
)
from fxcrm.workflows.ib_accrual_types import AccrueInput, AccrueResult

Sessions = async_sessionmaker[AsyncSession]
T0 = datetime(2026, 3, 2, tzinfo=UTC)
FX = {"EURUSD": "fx_major"}


def per_lot(rate: str, **extra: Any) -> dict[str, Any]:
    return {"symbol_groups": FX, "per_lot": {"fx_major": {"*": rate}}, **extra}


@dataclass
class World:
    """A brand of its own with a server and the tree MASTER > SUB > LEAF (LEAF without any parent
    link: its master comes from IbPartner.parent_id, since its creation)."""

    sessions: Sessions
    brand_id: str
    server_id: str
    ibs: dict[str, str]
    activities: IbAccrualActivities
    logins: int = 0
    deals: int = 0
    traders: dict[int, str] = field(default_factory=dict)

    async def ib(self, name: str, parent: str | None = None) -> str:
        async with transaction(self.sessions) as session:
            partner = IbPartner(
                brand_id=self.brand_id,
                email=f"{name.lower()}-{uuid.uuid4().hex[:6]}@example.com",
                name=name,
                referral_code=f"{name}-{uuid.uuid4().hex[:8]}",
                parent_id=self.ibs.get(parent) if parent else None,
                password_hash="x",
                created_at=T0 - timedelta(days=60),
            )
            session.add(partner)
        self.ibs[name] = partner.id
        return partner.id

    async def link(self, ib: str, parent: str | None, at: datetime) -> None:
        async with transaction(self.sessions) as session:
            session.add(
                IbParentLink(
                    ib_id=self.ibs[ib],
                    parent_id=self.ibs[parent] if parent else None,
                    effective_from=at,
                )
            )

    async def plan(
        self, rules: dict[str, Any], ib: str, link_code: str | None = None, at: datetime = T0
    ) -> str:
        """A one-version plan assigned to `ib` (for one referral link only with `link_code`)."""
        async with transaction(self.sessions) as session:
            plan = IbPlan(brand_id=self.brand_id, name=f"plan-{uuid.uuid4().hex[:8]}")
            session.add(plan)
            await session.flush()
            version = IbPlanVersion(
                plan_id=plan.id, version=1, effective_from=at - timedelta(days=30), rules=rules
            )
            session.add(version)
            session.add(
                IbPlanAssignment(
                    ib_id=self.ibs[ib], plan_id=plan.id, link_code=link_code, effective_from=at
                )
            )
        return version.id

    async def client(
        self,
        ib: str | None,
        at: datetime = T0,
        *,
        link_code: str | None = None,
        excluded: str | None = None,
    ) -> int:
        """A trader with an account on the server, attributed to `ib` from `at`; its login."""
        self.logins += 1
        login = 700_000 + self.logins
        async with transaction(self.sessions) as session:
            trader = Trader(
                brand_id=self.brand_id,
                email=f"{uuid.uuid4().hex[:10]}@example.com",
                password_hash="x",
                first_name="Ana",
                last_name="Lopez",
                date_of_birth="1985-03-14",
                phone="+34600000000",
                address="{}",
                country="ES",
                account_type="retail",
                status="active",
            )
            session.add(trader)
            await session.flush()
            session.add(
                TradingAccount(
                    trader_id=trader.id,
                    brand_id=self.brand_id,
                    server_id=self.server_id,
                    platform="mt5",
                    opening_key=uuid.uuid4().hex,
                    status="open",
                    login=login,
                    group="real\\retail\\std",
                    leverage=30,
                    currency="USD",
                    account_type="retail",
                )
            )
        self.traders[login] = trader.id
        if ib is not None:
            await self.attribute(login, ib, at, link_code=link_code, excluded=excluded)
        return login

    async def attribute(
        self,
        login: int,
        ib: str,
        at: datetime,
        *,
        link_code: str | None = None,
        excluded: str | None = None,
    ) -> None:
        async with transaction(self.sessions) as session:
            session.add(
                IbAttribution(
                    trader_id=self.traders[login],
                    ib_id=self.ibs[ib],
                    effective_from=at,
                    link_code=link_code,
                    source="registration",
                    excluded=excluded,
                )
            )

    async def deal(
        self,
        login: int,
        at: datetime,
        *,
        lots: str = "1",
        entry: str = "out",
        side: str = "sell",
        position: str | None = None,
        commission: str = "-7",
        opened_at: datetime | None = None,
    ) -> int:
        self.deals += 1
        async with transaction(self.sessions) as session:
            row = IngestedDeal(
                server_id=self.server_id,
                deal_id=str(self.deals),
                login=login,
                position_id=position or f"p{self.deals}",
                symbol="EURUSD",
                side=side,
                entry=entry,
                volume_lots=Decimal(lots),
                price=Decimal("1.08"),
                profit=Decimal(0),
                commission=Decimal(commission),
                swap=Decimal(0),
                closed_at=at,
                opened_at=opened_at,
                raw={},
            )
            session.add(row)
        return row.id

    async def accrue(self, max_deals: int = 50_000) -> AccrueResult:
        return await ActivityEnvironment().run(
            self.activities.accrue_deals,
            AccrueInput(server_id=self.server_id, max_deals=max_deals),
        )

    async def earned(self, deal_pk: int | None = None) -> dict[tuple[str, str], Decimal]:
        """(IB name, rule) → amount, for one deal or all."""
        names = {ib_id: name for name, ib_id in self.ibs.items()}
        async with self.sessions() as session:
            query = select(IbAccrual).where(IbAccrual.brand_id == self.brand_id)
            if deal_pk is not None:
                query = query.where(IbAccrual.deal_pk == deal_pk)
            rows = (await session.scalars(query)).all()
        out: dict[tuple[str, str], Decimal] = {}
        for row in rows:
            key = (names[row.beneficiary_id], row.rule)
            out[key] = out.get(key, Decimal(0)) + row.amount
        return out

    async def rows(self) -> list[IbAccrual]:
        async with self.sessions() as session:
            query = select(IbAccrual).where(IbAccrual.brand_id == self.brand_id)
            return list((await session.scalars(query)).all())


@pytest.fixture
async def world(sessions: Sessions) -> AsyncIterator[World]:
    suffix = uuid.uuid4().hex[:8]
    async with transaction(sessions) as session:
        brand = Brand(code=f"ib-{suffix}", name="IB test", legal_entity="IB Test Ltd", config={})
        session.add(brand)
        await session.flush()
        session.add(
            PlatformServer(
                id=f"mt5-ib-{suffix}",
                brand_id=brand.id,
                platform="mt5",
                name="MT5 IB test",
                base_url="https://127.0.0.1:1",
                config={},
            )
        )
    w = World(sessions, brand.id, f"mt5-ib-{suffix}", {}, IbAccrualActivities(sessions))
    await w.ib("MASTER")
    await w.ib("SUB")
    await w.ib("LEAF", parent="SUB")
    await w.link("MASTER", None, T0 - timedelta(days=60))
    await w.link("SUB", "MASTER", T0 - timedelta(days=60))
    yield w


async def test_differential_pays_each_level_the_difference(world: World) -> None:
    await world.plan(per_lot("10"), "MASTER")
    await world.plan(per_lot("7"), "SUB")
    leaf_version = await world.plan(per_lot("5"), "LEAF")
    login = await world.client("LEAF")
    deal = await world.deal(login, T0 + timedelta(days=1), lots="2")
    result = await world.accrue()
    assert result.read == 1 and result.accrued == 3 and result.excluded == 0 and result.caught_up
    assert await world.earned(deal) == {
        ("LEAF", "per_lot"): Decimal(10),
        ("SUB", "per_lot"): Decimal(4),
        ("MASTER", "per_lot"): Decimal(6),
    }
    rows = {row.depth: row for row in await world.rows()}
    assert rows[1].plan_version_id == leaf_version
    assert rows[1].period == "2026-03" and rows[1].trader_id == world.traders[login]
    assert rows[3].inputs["model"] == "differential"
    assert rows[3].inputs["below"] == "14.00000000" and rows[3].inputs["deal"] == "1"
    assert rows[1].inputs["symbol"] == "EURUSD" and rows[1].inputs["volume_lots"] == "2"


async def test_split_shares_the_direct_ibs_pool_with_spread_and_commission(world: World) -> None:
    await world.plan(
        per_lot(
            "10",
            spread_markup_per_lot={"fx_major": "8"},
            spread_share_pct="50",
            commission_share_pct="20",
            distribution={"model": "split", "split_pct": ["60", "30", "10"]},
        ),
        "LEAF",
    )
    login = await world.client("LEAF")
    deal = await world.deal(login, T0 + timedelta(days=1), commission="-7")
    await world.accrue()
    # Pools: per lot 10, spread 8 x 50 % = 4, commission 7 x 20 % = 1.4; masters without a plan
    # of their own still get their share of the leaf's pool.
    assert await world.earned(deal) == {
        ("LEAF", "per_lot"): Decimal(6),
        ("SUB", "per_lot"): Decimal(3),
        ("MASTER", "per_lot"): Decimal(1),
        ("LEAF", "spread_share"): Decimal("2.4"),
        ("SUB", "spread_share"): Decimal("1.2"),
        ("MASTER", "spread_share"): Decimal("0.4"),
        ("LEAF", "commission_share"): Decimal("0.84"),
        ("SUB", "commission_share"): Decimal("0.42"),
        ("MASTER", "commission_share"): Decimal("0.14"),
    }


async def test_rerun_accrues_nothing_twice(world: World) -> None:
    await world.plan(per_lot("5"), "LEAF")
    login = await world.client("LEAF")
    for n in range(7):
        await world.deal(login, T0 + timedelta(hours=n))
    world.activities = IbAccrualActivities(world.sessions, batch_size=3)
    first = await world.accrue(max_deals=5)
    assert (first.read, first.accrued, first.caught_up) == (5, 5, False)
    second = await world.accrue(max_deals=5)
    assert (second.read, second.accrued, second.caught_up) == (2, 2, True)
    assert (await world.accrue()).read == 0
    # A cursor set back (a retried batch whose commit was lost) re-reads and writes nothing new.
    async with transaction(world.sessions) as session:
        await session.execute(
            update(IbAccrualCursor)
            .where(IbAccrualCursor.server_id == world.server_id)
            .values(upto_deal_pk=0)
        )
    again = await world.accrue()
    assert (again.read, again.accrued) == (7, 0)
    assert await world.earned() == {("LEAF", "per_lot"): Decimal(35)}


async def test_deal_before_attribution_pays_nobody_after_it_pays(world: World) -> None:
    await world.plan(per_lot("5"), "LEAF")
    login = await world.client(None)
    before = await world.deal(login, T0 + timedelta(days=1))
    result = await world.accrue()
    assert result.reasons == {"not_attributed": 1} and result.accrued == 0
    # The attribution is added later (effective from day 2): the cached context sees it.
    await world.attribute(login, "LEAF", T0 + timedelta(days=2))
    late_but_before = await world.deal(login, T0 + timedelta(days=1, hours=12))
    after = await world.deal(login, T0 + timedelta(days=3))
    result = await world.accrue()
    assert result.reasons == {"not_attributed": 1} and result.accrued == 1
    assert await world.earned(before) == {} and await world.earned(late_but_before) == {}
    assert await world.earned(after) == {("LEAF", "per_lot"): Decimal(5)}


async def test_self_referral_and_unknown_login_pay_nobody(world: World) -> None:
    await world.plan(per_lot("5"), "LEAF")
    own = await world.client("LEAF", excluded="self_referral")
    await world.deal(own, T0 + timedelta(days=1))
    await world.deal(999_999, T0 + timedelta(days=1))  # an account fxcrm did not open
    result = await world.accrue()
    assert result.accrued == 0 and result.excluded == 2
    assert result.reasons == {"excluded:self_referral": 1, "unknown_login": 1}


async def test_sub_ib_moved_pays_old_master_before_and_new_after(world: World) -> None:
    await world.ib("OTHER")
    await world.plan(per_lot("10"), "MASTER")
    await world.plan(per_lot("12"), "OTHER")
    await world.plan(per_lot("5"), "SUB")
    await world.link("SUB", "OTHER", T0 + timedelta(days=10))
    login = await world.client("SUB")
    before = await world.deal(login, T0 + timedelta(days=5))
    after = await world.deal(login, T0 + timedelta(days=15))
    await world.accrue()
    assert await world.earned(before) == {
        ("SUB", "per_lot"): Decimal(5),
        ("MASTER", "per_lot"): Decimal(5),
    }
    assert await world.earned(after) == {
        ("SUB", "per_lot"): Decimal(5),
        ("OTHER", "per_lot"): Decimal(7),
    }


async def test_leaf_without_links_follows_its_parent_since_creation(world: World) -> None:
    await world.plan(per_lot("9"), "SUB")
    await world.plan(per_lot("4"), "LEAF")
    login = await world.client("LEAF")
    deal = await world.deal(login, T0 + timedelta(days=1))
    await world.accrue()
    # LEAF has no parent link: IbPartner.parent_id (SUB) applies; MASTER has no plan: nothing.
    assert await world.earned(deal) == {
        ("LEAF", "per_lot"): Decimal(4),
        ("SUB", "per_lot"): Decimal(5),
    }


async def test_referral_link_override_plan(world: World) -> None:
    await world.plan(per_lot("5"), "LEAF")
    vip = await world.plan(per_lot("8"), "LEAF", link_code="VIP")
    general = await world.client("LEAF", link_code="OTHERLINK")
    through_vip = await world.client("LEAF", link_code="VIP")
    first = await world.deal(general, T0 + timedelta(days=1))
    second = await world.deal(through_vip, T0 + timedelta(days=1))
    await world.accrue()
    assert await world.earned(first) == {("LEAF", "per_lot"): Decimal(5)}
    assert await world.earned(second) == {("LEAF", "per_lot"): Decimal(8)}
    assert [r.plan_version_id for r in await world.rows() if r.deal_pk == second] == [vip]


async def test_minimum_holding_time(world: World) -> None:
    await world.plan(per_lot("5", min_hold_seconds=60), "LEAF")
    login = await world.client("LEAF")
    opened = T0 + timedelta(days=1)
    await world.deal(login, opened, entry="in", side="buy", position="P1")
    scalp = await world.deal(login, opened + timedelta(seconds=30), position="P1")
    await world.deal(login, opened, entry="in", side="buy", position="P2")
    held = await world.deal(login, opened + timedelta(seconds=90), position="P2")
    result = await world.accrue()
    assert result.reasons == {"opening_deal": 2, "min_hold": 1}
    assert await world.earned(scalp) == {}
    assert await world.earned(held) == {("LEAF", "per_lot"): Decimal(5)}


async def test_minimum_holding_time_from_the_stored_opening(world: World) -> None:
    """Closing deals that carry their position's opening time (as MT5 ingestion stores it when the
    opening deal was in the same read, and the other platforms always): no "in" deal needed."""
    await world.plan(per_lot("5", min_hold_seconds=60), "LEAF")
    login = await world.client("LEAF")
    opened = T0 + timedelta(days=1)
    scalp = await world.deal(login, opened + timedelta(seconds=30), position="P1", opened_at=opened)
    held = await world.deal(login, opened + timedelta(seconds=90), position="P2", opened_at=opened)
    # A later partial close read without the opening: the position's stored time still applies.
    rest = await world.deal(login, opened + timedelta(seconds=40), position="P1")
    # The stored time wins over an "in" deal of the same position.
    await world.deal(login, opened + timedelta(seconds=80), entry="in", side="buy", position="P3")
    stored = await world.deal(
        login, opened + timedelta(seconds=100), position="P3", opened_at=opened
    )
    unknown = await world.deal(login, opened + timedelta(seconds=1), position="P4")
    result = await world.accrue()
    assert result.reasons == {"opening_deal": 1, "min_hold": 2}
    assert await world.earned(scalp) == {}
    assert await world.earned(rest) == {}
    assert await world.earned(held) == {("LEAF", "per_lot"): Decimal(5)}
    assert await world.earned(stored) == {("LEAF", "per_lot"): Decimal(5)}
    # Neither an opening time nor an "in" deal: the minimum holding time cannot be checked.
    assert await world.earned(unknown) == {("LEAF", "per_lot"): Decimal(5)}


async def test_close_by_pays_once_on_the_buy_leg(world: World) -> None:
    await world.plan(per_lot("5"), "LEAF")
    login = await world.client("LEAF")
    at = T0 + timedelta(days=1)
    buy = await world.deal(login, at, entry="out_by", side="buy", position="A")
    sell = await world.deal(login, at, entry="out_by", side="sell", position="B")
    result = await world.accrue()
    assert result.reasons == {"close_by_paid_on_buy_leg": 1}
    assert await world.earned(buy) == {("LEAF", "per_lot"): Decimal(5)}
    assert await world.earned(sell) == {}


async def test_late_deal_of_a_settled_period_goes_to_the_next(world: World) -> None:
    await world.plan(per_lot("5"), "LEAF")
    login = await world.client("LEAF")
    async with transaction(world.sessions) as session:
        # Settlement closed March and April (periods close in order).
        for period in ("2026-03", "2026-04"):
            session.add(
                IbSettlementPeriod(
                    brand_id=world.brand_id, period=period, status="settled", currency="USD"
                )
            )
    late = await world.deal(login, datetime(2026, 3, 31, 23, 59, tzinfo=UTC))
    current = await world.deal(login, datetime(2026, 5, 2, tzinfo=UTC))
    await world.accrue()
    by_deal = {row.deal_pk: row for row in await world.rows()}
    assert by_deal[late].period == "2026-05"
    assert by_deal[late].inputs["deal_period"] == "2026-03"
    assert by_deal[current].period == "2026-05" and "deal_period" not in by_deal[current].inputs


async def test_every_deal_that_pays_nobody_says_why_once(world: World) -> None:
    """Staff can answer "why did this deal pay nothing?": one row per deal, its reason a code to
    filter by and the engine's detail, written with the cursor (a re-read adds nothing)."""
    await world.plan(per_lot("5", min_hold_seconds=60), "LEAF")
    await world.plan({"symbol_groups": FX, "per_lot": {"fx_major": {"*": "0"}}}, "SUB")
    login = await world.client("LEAF")
    no_rate = await world.client("SUB")
    own = await world.client("LEAF", excluded="self_referral:ib:email")
    opened = T0 + timedelta(days=1)
    deals = {
        "opening": await world.deal(login, opened, entry="in", side="buy", position="P1"),
        "scalp": await world.deal(login, opened + timedelta(seconds=30), position="P1"),
        "paid": await world.deal(login, opened + timedelta(hours=1), opened_at=opened),
        "no_rate": await world.deal(no_rate, opened + timedelta(hours=1)),
        "own": await world.deal(own, opened + timedelta(hours=1)),
        "unknown": await world.deal(999_998, opened + timedelta(hours=1)),
    }
    result = await world.accrue()
    assert result.excluded == 5

    async def unpaid() -> dict[int, IbUnpaidDeal]:
        async with world.sessions() as session:
            rows = await session.scalars(
                select(IbUnpaidDeal).where(IbUnpaidDeal.server_id == world.server_id)
            )
            return {row.deal_pk: row for row in rows}

    rows = await unpaid()
    assert {pk: (row.reason, row.detail) for pk, row in rows.items()} == {
        deals["opening"]: ("opening_deal", "opening_deal"),
        deals["scalp"]: ("min_hold", "held_30s_below_60s"),
        deals["no_rate"]: ("no_rate", "no_rate"),
        deals["own"]: ("excluded", "excluded:self_referral:ib:email"),
        deals["unknown"]: ("unknown_login", "unknown_login"),
    }
    assert rows[deals["no_rate"]].ib_id == world.ibs["SUB"]
    assert rows[deals["no_rate"]].trader_id == world.traders[no_rate]
    assert rows[deals["unknown"]].trader_id is None and rows[deals["unknown"]].login == 999_998
    assert all(row.brand_id == world.brand_id for row in rows.values())
    # A re-read of the whole backlog (a retried batch) writes no second row.
    async with transaction(world.sessions) as session:
        await session.execute(
            update(IbAccrualCursor)
            .where(IbAccrualCursor.server_id == world.server_id)
            .values(upto_deal_pk=0)
        )
    again = await world.accrue()
    assert again.read == 6 and again.accrued == 0
    assert len(await unpaid()) == 5
