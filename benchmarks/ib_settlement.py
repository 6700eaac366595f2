"""Monthly IB settlement of a big broker's month, against the plain SQL aggregate (the ceiling).

Bulk-inserts ACCRUALS accrual rows (default 1,000,000) for IBS IBs (5,000, in a tree; each deal
pays its client's direct IB and up to 3 uplines) and CLIENTS clients (50,000) in one month, with
mixed plans (per-lot only; lot tiers; revenue share on net loss + CPA), then in the same run times:
- the ceiling: `SELECT beneficiary_id, SUM(amount) FROM ib_accruals WHERE period = ? GROUP BY
  beneficiary_id` (run twice, the warm figure reported);
- the settlement end to end, as the workflow's activities run it (no Temporal): close the period,
  aggregate, apply the rules, write every IB's settlement and ledger transfer; then a re-run
  (nothing to write); then the aggregation and the rules alone (no writes), for the split;
and prints both, their ratio and the peak resident memory while settling.

    .venv/bin/python benchmarks/ib_settlement.py [--accruals 1000000] [--sqlite/--no-sqlite]
        [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/fxcrm_bench2]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker  # noqa: E402

from fxcrm.activities.ib_settlement import (  # noqa: E402
    AGGREGATE_WORK_MEM,
    _plans,
    close_period,
    compute,
    settle_period,
)
from fxcrm.core.config import Settings  # noqa: E402
from fxcrm.core.db import create_engine, session_factory  # noqa: E402
from fxcrm.core.fields import configure_field_cipher  # noqa: E402
from fxcrm.core.migrate import upgrade  # noqa: E402
from fxcrm.domain.ib.plans import CpaRule, PlanRules, Tier  # noqa: E402
from fxcrm.domain.ib.settlement import period_end  # noqa: E402
from fxcrm.ledger import check_invariants  # noqa: E402
from fxcrm.models import (  # noqa: E402
    Brand,
    IbAccrual,
    IbPartner,
    IbPlan,
    IbPlanAssignment,
    IbPlanVersion,
    IngestedDeal,
)
from fxcrm.models.base import new_id  # noqa: E402
from fxcrm.seed import DEMO_BRAND, DEMO_SERVER, seed_demo  # noqa: E402
from fxcrm.workflows.ib_settlement_types import ClosedPeriod, IbSettlementInput  # noqa: E402

PERIOD = "2026-01"
MONTH = datetime(2026, 1, 1, tzinfo=UTC)
BATCH = 20_000
CEILING = text(
    "SELECT beneficiary_id, SUM(amount) FROM ib_accruals WHERE period = :period "
    "GROUP BY beneficiary_id"
)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def reset_postgres(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


PLANS = [
    PlanRules(per_lot={"*": {"*": Decimal(5)}}),
    PlanRules(
        per_lot={"*": {"*": Decimal(6)}},
        tiers=[Tier(threshold=Decimal(100), multiplier=Decimal("1.1"))],
    ),
    PlanRules(
        per_lot={"*": {"*": Decimal(4)}},
        revshare_net_loss_pct=Decimal(20),
        cpa=CpaRule(amount=Decimal(200), min_first_deposit=Decimal(100), min_lots=Decimal(2)),
    ),
]


async def populate(
    sessions: async_sessionmaker[AsyncSession], accruals: int, ibs: int, clients: int
) -> str:
    """The demo brand with `ibs` IBs, their plans, closed deals and `accruals` accrual rows."""
    brand_id = await seed_demo(sessions)
    rng = random.Random(5)
    now = datetime.now(UTC)
    ib_ids = [new_id() for _ in range(ibs)]
    parent: list[int | None] = [None] + [(i - 1) // 8 for i in range(1, ibs)]  # 5 levels deep
    async with sessions() as session, session.begin():
        brand = await session.scalar(select(Brand).where(Brand.code == DEMO_BRAND))
        assert brand is not None
        brand.config = {**brand.config, "ib": {"minimum_payout": "50", "currency": "USD"}}
        await session.execute(
            insert(IbPartner),
            [
                {
                    "id": ib_ids[i],
                    "brand_id": brand_id,
                    "email": f"bench-ib{i}@ib.test",
                    "name": f"Bench IB {i}",
                    "referral_code": f"BENCH{i}",
                    "parent_id": None if (up := parent[i]) is None else ib_ids[up],
                    "status": "suspended" if i % 97 == 0 else "active",
                    "password_hash": "x",
                    "failed_logins": 0,
                    "created_at": now,
                }
                for i in range(ibs)
            ],
        )
        plan_ids = []
        for n, rules in enumerate(PLANS):
            plan = IbPlan(brand_id=brand_id, name=f"bench-{n}")
            session.add(plan)
            await session.flush()
            session.add(
                IbPlanVersion(
                    plan_id=plan.id,
                    version=1,
                    effective_from=MONTH - timedelta(days=365),
                    rules=rules.model_dump(mode="json"),
                )
            )
            plan_ids.append(plan.id)
        await session.execute(
            insert(IbPlanAssignment),
            [
                {
                    "id": new_id(),
                    "ib_id": ib_ids[i],
                    "plan_id": plan_ids[i % len(plan_ids)],
                    "link_code": None,
                    "effective_from": MONTH - timedelta(days=365),
                    "created_at": now,
                }
                for i in range(ibs)
            ],
        )
    client_ib = [rng.randrange(ibs) for _ in range(clients)]
    client_ids = [new_id() for _ in range(clients)]
    written = deal = 0
    began = time.perf_counter()
    while written < accruals:
        deals: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        while len(rows) < BATCH and written + len(rows) < accruals:
            deal += 1
            client = rng.randrange(clients)
            lots = Decimal(rng.randint(1, 300)) / 100
            closed_at = MONTH + timedelta(seconds=rng.randrange(31 * 86400 - 1))
            deals.append(
                {
                    "id": deal,
                    "server_id": DEMO_SERVER,
                    "deal_id": str(deal),
                    "login": 1_000_000 + client,
                    "position_id": str(deal),
                    "symbol": "EURUSD",
                    "side": "buy",
                    "entry": "out",
                    "volume_lots": lots,
                    "price": Decimal("1.1"),
                    "profit": Decimal(rng.randint(-50_000, 40_000)) / 100,
                    "commission": Decimal(0),
                    "swap": Decimal(0),
                    "closed_at": closed_at,
                    "raw": {},
                    "ingested_at": now,
                }
            )
            ib: int | None = client_ib[client]
            depth = 1
            while ib is not None and depth <= 4 and written + len(rows) < accruals:
                rate = Decimal(5) if depth == 1 else Decimal(1)
                rows.append(
                    {
                        "brand_id": brand_id,
                        "deal_pk": deal,
                        "beneficiary_id": ib_ids[ib],
                        "rule": "per_lot",
                        "depth": depth,
                        "amount": (lots * rate / 3).quantize(Decimal("0.00000001")),
                        "currency": "USD",
                        "plan_version_id": None,
                        "trader_id": client_ids[client],
                        "period": PERIOD,
                        "closed_at": closed_at,
                        "inputs": {"lots": str(lots), "rate": str(rate)},
                        "created_at": now,
                    }
                )
                ib, depth = parent[ib], depth + 1
        async with sessions() as session, session.begin():
            await session.execute(insert(IngestedDeal), deals)
            await session.execute(insert(IbAccrual), rows)
        written += len(rows)
    print(
        f"  populated {written:,} accruals over {deal:,} deals, {ibs:,} IBs, {clients:,} clients "
        f"in {time.perf_counter() - began:.0f} s"
    )
    return brand_id


async def ceiling(sessions: async_sessionmaker[AsyncSession]) -> tuple[float, int]:
    async with sessions() as session:
        began = time.perf_counter()
        rows = (await session.execute(CEILING, {"period": PERIOD})).all()
        return time.perf_counter() - began, len(rows)


async def aggregation(sessions: async_sessionmaker[AsyncSession], closed: ClosedPeriod) -> float:
    """The settlement's read side alone, as settle_period runs it: plans, inputs, rules."""
    began = time.perf_counter()
    async with sessions() as session:
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text(f"SET LOCAL work_mem = '{AGGREGATE_WORK_MEM}'"))
        plans = await _plans(session, closed.brand_id, period_end(closed.period))
        await compute(session, closed, plans)
    return time.perf_counter() - began


async def run(url: str, accruals: int, ibs: int, clients: int) -> None:
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    backend = engine.dialect.name
    print(f"{backend}:")
    await populate(sessions, accruals, ibs, clients)
    if backend == "postgresql":
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
    await ceiling(sessions)  # warm the cache as the settlement will find it
    ceiling_s, groups = await ceiling(sessions)

    peak = rss_mb()
    before = peak
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, rss_mb())
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    now = datetime(2026, 2, 1, 3, tzinfo=UTC)
    began = time.perf_counter()
    closed = await close_period(sessions, IbSettlementInput(brand=DEMO_BRAND, period=PERIOD), now)
    result = await settle_period(sessions, closed)
    settle_s = time.perf_counter() - began
    began = time.perf_counter()
    again = await settle_period(sessions, closed)
    rerun_s = time.perf_counter() - began
    sampling = False
    await sampler
    aggregate_s = await aggregation(sessions, closed)
    ceiling_after, _ = await ceiling(sessions)
    async with sessions() as session:
        report = await check_invariants(session)
    await engine.dispose()
    ceiling_s = min(ceiling_s, ceiling_after)
    print(f"  ceiling (plain GROUP BY, {groups:,} groups): {ceiling_s:.3f} s")
    print(
        f"  settlement end to end: {settle_s:.3f} s  ({result.ibs:,} IBs: {result.paid:,} paid, "
        f"{result.carried:,} carried, {result.held:,} held; paid {result.paid_total} USD)"
    )
    print(f"  ratio settlement / ceiling: {settle_s / ceiling_s:.1f}x")
    print(
        f"  of which the aggregation and the rules (timed alone): {aggregate_s:.3f} s "
        f"({aggregate_s / ceiling_s:.1f}x the ceiling); the rest is writing"
    )
    print(f"  re-run (nothing to pay): {rerun_s:.3f} s, written {again.settled_now}")
    print(
        f"  RSS before settling {before:.0f} MB, peak while settling {peak:.0f} MB "
        f"(process peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB); "
        f"ledger invariants ok: {report.ok}"
    )


async def main(args: argparse.Namespace) -> None:
    configure_field_cipher(Settings(env="test").field_encryption_keys)
    if args.sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            await run(f"sqlite+aiosqlite:///{tmp}/bench.db", args.accruals, args.ibs, args.clients)
    if args.postgres:
        await reset_postgres(args.postgres)
        await run(args.postgres, args.accruals, args.ibs, args.clients)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--accruals", type=int, default=1_000_000)
    parser.add_argument("--ibs", type=int, default=5_000)
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--sqlite", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--postgres", default=None, help="postgresql+asyncpg://... (reset first)")
    asyncio.run(main(parser.parse_args()))
