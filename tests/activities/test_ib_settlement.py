"""IB settlement on the database: a period is closed, aggregated per IB, paid once through the
ledger (re-runs and backfills pay nobody twice), refused while open, late deals go to the next
period, period rules from payments and deals, statements whose totals are the sums of lines."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError

from fxcrm.activities.ib_settlement import close_period, settle_period, transfer_key
from fxcrm.api.routes.ib_settlement import render_statement
from fxcrm.core.config import Settings
from fxcrm.core.db import transaction
from fxcrm.core.fields import configure_field_cipher
from fxcrm.domain.ib.plans import CpaRule, PlanRules, Tier, TierBasis
from fxcrm.domain.ib.statements import render_csv
from fxcrm.domain.ledger import ib_payable_code
from fxcrm.ib.periods import is_settled, open_period_for
from fxcrm.ledger import account_by_code, check_invariants
from fxcrm.models import (
    Brand,
    IbAccrual,
    IbAttribution,
    IbPartner,
    IbPlan,
    IbPlanAssignment,
    IbPlanVersion,
    IbSettlement,
    IbSettlementPeriod,
    IngestedDeal,
    LedgerTransfer,
    Payment,
)
from fxcrm.seed import DEMO_BRAND, seed_demo
from fxcrm.workflows.ib_settlement_types import IbSettlementInput
from tests.e2e.money import new_account, new_trader

Sessions = async_sessionmaker[AsyncSession]
D = Decimal
LATER = datetime(2030, 1, 1, tzinfo=UTC)  # every test period has ended by then


@dataclass
class World:
    """A fresh brand (so tests sharing the session database never meet) and its IB programme."""

    sessions: Sessions
    brand_id: str
    code: str
    ibs: dict[str, str] = field(default_factory=dict)  # name → ib id
    traders: dict[str, tuple[str, int]] = field(default_factory=dict)  # name → (trader, login)
    _deal: int = 0

    async def ib(self, name: str, *, suspended: bool = False, plan: PlanRules | None = None) -> str:
        async with transaction(self.sessions) as session:
            partner = IbPartner(
                brand_id=self.brand_id,
                email=f"{name}-{uuid.uuid4().hex[:6]}@ib.test",
                name=name,
                referral_code=uuid.uuid4().hex[:12],
                password_hash="x",
                status="suspended" if suspended else "active",
            )
            session.add(partner)
            await session.flush()
            if plan is not None:
                row = IbPlan(brand_id=self.brand_id, name=f"plan-{name}")
                session.add(row)
                await session.flush()
                since = datetime(2020, 1, 1, tzinfo=UTC)
                session.add(
                    IbPlanVersion(
                        plan_id=row.id,
                        version=1,
                        effective_from=since,
                        rules=plan.model_dump(mode="json"),
                    )
                )
                session.add(
                    IbPlanAssignment(ib_id=partner.id, plan_id=row.id, effective_from=since)
                )
        self.ibs[name] = partner.id
        return partner.id

    async def trader(self, name: str, ib: str | None = None) -> str:
        login = 7_000_000 + abs(hash((self.code, name))) % 1_000_000
        async with transaction(self.sessions) as session:
            trader = new_trader(self.brand_id, kyc_status="APPROVED")
            session.add(trader)
            await session.flush()
            session.add(new_account(trader.id, self.brand_id, login))
            if ib is not None:
                session.add(
                    IbAttribution(
                        trader_id=trader.id,
                        ib_id=self.ibs[ib],
                        effective_from=datetime(2020, 1, 1, tzinfo=UTC),
                        source="staff",
                    )
                )
        self.traders[name] = (trader.id, login)
        return trader.id

    async def deal(
        self, trader: str, closed_at: datetime, lots: str = "1", profit: str = "0"
    ) -> int:
        self._deal += 1
        _, login = self.traders[trader]
        async with transaction(self.sessions) as session:
            row = IngestedDeal(
                server_id=await session.scalar(
                    select(Brand.config["platform_server"].as_string()).where(
                        Brand.id == self.brand_id
                    )
                ),
                deal_id=f"{self.code}-{self._deal}",
                login=login,
                position_id=str(self._deal),
                symbol="EURUSD",
                side="buy",
                entry="out",
                volume_lots=D(lots),
                price=D("1.1"),
                profit=D(profit),
                commission=D(0),
                swap=D(0),
                closed_at=closed_at,
                raw={},
            )
            session.add(row)
            await session.flush()
            return row.id

    async def accrue(
        self,
        deal_pk: int,
        trader: str,
        ib: str,
        amount: str,
        period: str,
        depth: int = 1,
        rule: str = "per_lot",
    ) -> None:
        async with transaction(self.sessions) as session:
            session.add(
                IbAccrual(
                    brand_id=self.brand_id,
                    deal_pk=deal_pk,
                    beneficiary_id=self.ibs[ib],
                    rule=rule,
                    depth=depth,
                    amount=D(amount),
                    currency="USD",
                    trader_id=self.traders[trader][0],
                    period=period,
                    closed_at=datetime(2026, 1, 15, tzinfo=UTC),
                    inputs={"lots": "1", "rate": amount},
                )
            )

    async def trade(
        self,
        trader: str,
        ib: str,
        amount: str,
        period: str,
        *,
        lots: str = "1",
        profit: str = "0",
        depth: int = 1,
    ) -> int:
        year, month = (int(x) for x in period.split("-"))
        pk = await self.deal(trader, datetime(year, month, 10, tzinfo=UTC), lots, profit)
        await self.accrue(pk, trader, ib, amount, period, depth)
        return pk

    async def payment(
        self, trader: str, kind: str, amount: int, at: datetime, **fields: Any
    ) -> str:
        payment_id = uuid.uuid4().hex
        status = "completed" if kind == "deposit" else "paid"
        async with transaction(self.sessions) as session:
            session.add(
                Payment(
                    **{
                        "id": payment_id,
                        "brand_id": self.brand_id,
                        "trader_id": self.traders[trader][0],
                        "kind": kind,
                        "status": status,
                        "idempotency_key": payment_id,
                        "request_hash": "x",
                        "workflow_id": f"{kind}-{payment_id}",
                        "currency": "USD",
                        "amount": amount,
                        "source_kind": "psp" if kind == "deposit" else "wallet",
                        "target_kind": "wallet" if kind == "deposit" else "psp",
                        "completed_at": at,
                        "updated_at": at,
                        "details": {},
                        **fields,
                    }
                )
            )
        return payment_id

    async def settle(self, period: str, now: datetime = LATER) -> Any:
        closed = await close_period(
            self.sessions, IbSettlementInput(brand=self.code, period=period), now
        )
        return await settle_period(self.sessions, closed, chunk=2)

    async def settlements(self, period: str) -> dict[str, IbSettlement]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(IbSettlement).where(
                    IbSettlement.brand_id == self.brand_id, IbSettlement.period == period
                )
            )
            names = {v: k for k, v in self.ibs.items()}
            return {names[row.ib_id]: row for row in rows}

    async def wallet(self, ib: str) -> Decimal:
        async with self.sessions() as session:
            view = await account_by_code(
                session, self.brand_id, ib_payable_code(self.ibs[ib], "USD")
            )
            return view.posted.amount


async def new_world(sessions: Sessions, minimum_payout: str = "50") -> World:
    configure_field_cipher(Settings(env="test").field_encryption_keys)
    await seed_demo(sessions)
    code = f"s{uuid.uuid4().hex[:8]}"
    async with transaction(sessions) as session:
        demo = await session.scalar(select(Brand).where(Brand.code == DEMO_BRAND))
        assert demo is not None
        config = {**demo.config, "ib": {"minimum_payout": minimum_payout, "currency": "USD"}}
        brand = Brand(code=code, name=code, legal_entity="Test Ltd", config=config)
        session.add(brand)
        await session.flush()
    return World(sessions, brand.id, code)


async def invariants_ok(sessions: Sessions) -> None:
    async with sessions() as session:
        report = await check_invariants(session)
    assert report.ok, report


async def transfers_of(sessions: Sessions, brand_id: str, period: str) -> int:
    async with sessions() as session:
        return int(
            await session.scalar(
                select(func.count()).where(
                    LedgerTransfer.idempotency_key.like(f"ib-settlement:{brand_id}:{period}:%")
                )
            )
            or 0
        )


# ---------------------------------------------------------------- tests


async def test_pays_each_ib_once_and_reruns_pay_nobody_twice(sessions: Sessions) -> None:
    world = await new_world(sessions)
    for name, suspended in (("big", False), ("small", False), ("frozen", True)):
        await world.ib(name, suspended=suspended)
    await world.trader("alice", "big")
    await world.trade("alice", "big", "70.123456789"[:11], "2026-01")
    await world.trade("alice", "big", "30.00000001", "2026-01")
    await world.trade("alice", "small", "12.5", "2026-01", depth=2)
    await world.trade("alice", "frozen", "500", "2026-01")

    first = await world.settle("2026-01")
    assert (first.ibs, first.paid, first.carried, first.held, first.settled_now) == (3, 1, 1, 1, 3)
    rows = await world.settlements("2026-01")
    big = rows["big"]
    assert (big.status, big.payable, big.carried_out) == ("paid", D("100.12"), D("0.00345679"))
    assert big.accrued == D("100.12345679")
    assert (rows["small"].status, rows["small"].carried_out) == ("carried", D("12.5"))
    assert (rows["frozen"].status, rows["frozen"].payable, rows["frozen"].carried_out) == (
        "held",
        0,
        D("500"),
    )
    assert await world.wallet("big") == D("100.12")
    async with sessions() as session:
        paid = await session.scalar(
            select(LedgerTransfer).where(
                LedgerTransfer.idempotency_key
                == transfer_key(world.brand_id, "2026-01", world.ibs["big"])
            )
        )
        assert paid is not None and paid.id == big.ledger_transfer_id

    # A retried activity, a re-run by finance, the schedule's catch-up: nothing paid twice.
    again = await world.settle("2026-01")
    assert (again.ibs, again.paid, again.settled_now) == (3, 1, 0)
    assert await transfers_of(sessions, world.brand_id, "2026-01") == 1
    assert await world.wallet("big") == D("100.12")
    await invariants_ok(sessions)

    # The next month: small's carry reaches the minimum, big's sub-cent remainder is kept.
    await world.trade("alice", "small", "40", "2026-02", depth=2)
    await world.trade("alice", "big", "0.00654321", "2026-02")
    feb = await world.settle("2026-02")
    rows = await world.settlements("2026-02")
    assert (rows["small"].status, rows["small"].payable) == ("paid", D("52.5"))
    assert (rows["big"].carried_in, rows["big"].status) == (D("0.00345679"), "carried")
    assert rows["big"].carried_out == D("0.01")  # below the minimum: carried whole
    assert (rows["frozen"].status, rows["frozen"].carried_out) == ("held", D("500"))
    assert feb.paid == 1 and await world.wallet("small") == D("52.5")

    # Backfilling a period a later settlement covers is refused; nothing changes.
    with pytest.raises(ApplicationError) as refused:
        await world.settle("2025-12")
    assert refused.value.non_retryable and refused.value.type == "IbSettlementRefused"
    assert refused.value.details == ("period_covered",)
    assert await transfers_of(sessions, world.brand_id, "2025-12") == 0
    await invariants_ok(sessions)


async def test_open_and_future_periods_are_refused(sessions: Sessions) -> None:
    world = await new_world(sessions)
    for period, now, code in (
        ("2026-03", datetime(2026, 3, 20, tzinfo=UTC), "period_open"),
        ("2026-03", datetime(2026, 4, 1, 1, tzinfo=UTC), "period_open"),  # within the grace
        ("2026-05", datetime(2026, 3, 20, tzinfo=UTC), "period_future"),
        ("2026-3", datetime(2026, 3, 20, tzinfo=UTC), "invalid_period"),
    ):
        with pytest.raises(ApplicationError) as refused:
            await world.settle(period, now)
        assert refused.value.non_retryable and refused.value.details == (code,)
    async with sessions() as session:
        markers = await session.scalar(
            select(func.count()).where(IbSettlementPeriod.brand_id == world.brand_id)
        )
    assert markers == 0


async def test_a_closed_period_sends_late_deals_to_the_next_and_a_missed_month_is_covered(
    sessions: Sessions,
) -> None:
    world = await new_world(sessions, minimum_payout="0")
    await world.ib("ib")
    await world.trader("bob", "ib")
    await world.trade("bob", "ib", "10", "2026-01")
    await world.trade("bob", "ib", "5", "2026-02")  # February is never settled on its own
    late = datetime(2026, 1, 31, 23, 59, tzinfo=UTC)
    async with sessions() as session:
        assert await open_period_for(session, world.brand_id, late) == "2026-01"
    await world.settle("2026-01")
    async with sessions() as session:
        assert await is_settled(session, world.brand_id, "2026-01")
        assert not await is_settled(session, world.brand_id, "2026-02")
        assert await open_period_for(session, world.brand_id, late) == "2026-02"
    await world.trade("bob", "ib", "1", "2026-03")
    await world.settle("2026-03")  # covers February and March
    rows = await world.settlements("2026-03")
    assert (rows["ib"].accrued, rows["ib"].payable) == (D("6"), D("6"))
    assert await world.wallet("ib") == D("16")


async def test_period_rules_from_payments_and_deals(sessions: Sessions) -> None:
    world = await new_world(sessions, minimum_payout="0")
    await world.ib(
        "rev",
        plan=PlanRules(revshare_net_deposits_pct=D(10), revshare_net_loss_pct=D(20)),
    )
    cpa = PlanRules(
        cpa=CpaRule(amount=D(250), min_first_deposit=D(100), min_lots=D(2), within_days=30),
        tiers=[Tier(threshold=D(3), multiplier=D("1.5"))],
    )
    await world.ib("cpa", plan=cpa)
    await world.trader("c1", "rev")
    await world.trader("c2", "cpa")
    await world.trader("c3", "cpa")
    jan = datetime(2026, 1, 5, tzinfo=UTC)
    # rev: deposits 1000 - withdrawal 300 = 700 → 70; clients lost 200 → 40.
    await world.payment("c1", "deposit", 100_000, jan, is_ftd=True)
    await world.payment("c1", "withdrawal", 30_000, jan + timedelta(days=3))
    await world.trade("c1", "rev", "1", "2026-01", profit="-200")
    # cpa: c2 qualifies (FTD 150, 2.5 lots); c3's deposit is too small.
    await world.payment("c2", "deposit", 15_000, jan, is_ftd=True)
    await world.payment("c3", "deposit", 5_000, jan, is_ftd=True)
    await world.trade("c2", "cpa", "4", "2026-01", lots="2.5")
    await world.trade("c3", "cpa", "6", "2026-01", lots="1")
    await world.settle("2026-01")
    rows = await world.settlements("2026-01")
    lines = {line["rule"]: D(line["amount"]) for line in rows["rev"].details["lines"]}
    assert lines == {"revshare_net_deposits": D(70), "revshare_net_loss": D(40)}
    assert rows["rev"].payable == D(111)
    lines = {line["rule"]: D(line["amount"]) for line in rows["cpa"].details["lines"]}
    assert lines == {"cpa": D(250), "tier_bonus": D(5)}  # 3.5 lots >= 3: x1.5 on 10
    assert rows["cpa"].payable == D(265)

    # February: c2's deposit is charged back within the window: the CPA is clawed back, once.
    async with transaction(sessions) as session:
        payment = await session.scalar(
            select(Payment).where(Payment.trader_id == world.traders["c2"][0])
        )
        assert payment is not None
        payment.status, payment.updated_at = "charged_back", datetime(2026, 2, 3, tzinfo=UTC)
    await world.trade("c2", "cpa", "300", "2026-02")
    await world.settle("2026-02")
    rows = await world.settlements("2026-02")
    lines = {line["rule"]: D(line["amount"]) for line in rows["cpa"].details["lines"]}
    assert lines == {"cpa_clawback": D(-250)}
    assert rows["cpa"].payable == D(50)
    await world.trade("c2", "cpa", "1", "2026-03")
    await world.settle("2026-03")
    rows = await world.settlements("2026-03")
    assert rows["cpa"].details["lines"] == [] and rows["cpa"].payable == D(1)
    await invariants_ok(sessions)


async def test_statement_totals_equal_the_sums_of_its_lines(sessions: Sessions) -> None:
    world = await new_world(sessions, minimum_payout="0")
    await world.ib("ib", plan=PlanRules(tiers=[Tier(threshold=D(1), multiplier=D("1.1"))]))
    await world.trader("dan", "ib")
    for n in range(7):
        await world.trade("dan", "ib", f"1.{n}1234567", "2026-01", lots="0.5")
    await world.settle("2026-01")
    row = (await world.settlements("2026-01"))["ib"]
    async with sessions() as session:
        rows = list(csv.reader(io.StringIO(render_csv(await render_statement(session, row)))))
    trades = [r for r in rows if r[0] == "trade"]
    assert len(trades) == 7 and all("***@" in r[2] for r in trades)
    totals = {r[5].split(" ")[0]: D(r[7]) for r in rows if r[0] == "total"}
    assert totals["trades_total"] == sum((D(r[7]) for r in trades), D(0)) == row.accrued
    assert (
        totals["period_rules_total"]
        == sum((D(r[7]) for r in rows if r[0] == "period_rule"), D(0))
        == row.period_rules
    )
    assert totals["total"] == row.accrued + row.period_rules + row.carried_in
    assert totals["payable"] + totals["carried_out"] == totals["total"]
    assert totals["payable"] == row.payable


async def test_tier_measures_count_each_deal_once_per_ib(sessions: Sessions) -> None:
    """Several rules on one deal, or an adjustment, never count the deal's lots twice."""
    world = await new_world(sessions, minimum_payout="0")
    tiers = PlanRules(tiers=[Tier(threshold=D(4), multiplier=D(2))])
    await world.ib("strict", plan=tiers)
    await world.ib("loose", plan=PlanRules(tiers=[Tier(threshold=D("3.5"), multiplier=D(2))]))
    clients = PlanRules(
        tier_basis=TierBasis.ACTIVE_CLIENTS, tiers=[Tier(threshold=D(2), multiplier=D(3))]
    )
    await world.ib("clients", plan=clients)
    await world.trader("t1", "strict")
    await world.trader("t2", "strict")
    jan = datetime(2026, 1, 10, tzinfo=UTC)
    one = await world.deal("t1", jan, lots="2")
    two = await world.deal("t2", jan, lots="1.5")
    adjusted = await world.deal("t1", jan, lots="10")
    for ib in ("strict", "loose", "clients"):
        await world.accrue(one, "t1", ib, "1", "2026-01", rule="per_lot")
        await world.accrue(one, "t1", ib, "1", "2026-01", rule="spread_share")
        await world.accrue(two, "t2", ib, "1", "2026-01", rule="spread_share")
        await world.accrue(two, "t2", ib, "1", "2026-01", rule="commission_share")
        await world.accrue(adjusted, "t1", ib, "1", "2026-01", rule="adjustment:x:per_lot")
    await world.settle("2026-01")
    rows = await world.settlements("2026-01")
    # 3.5 lots: below 4, at 3.5; two active direct clients.
    assert rows["strict"].details["lines"] == [] and rows["strict"].payable == D(5)
    (loose,) = rows["loose"].details["lines"]
    assert (loose["rule"], loose["explanation"]["measure"]) == ("tier_bonus", "3.5")
    assert rows["loose"].payable == D(9)  # 5 + (2 - 1) x 4 direct (the adjustment excluded)
    (by_clients,) = rows["clients"].details["lines"]
    assert by_clients["explanation"]["measure"] == "2" and rows["clients"].payable == D(13)
