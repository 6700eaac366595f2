"""IB commission accrual: deals per second from closed_deals to accrual rows, and worker memory.

Builds a brand with 5,000 IBs in a tree up to 10 levels deep (some moved to another master in the
middle of the month, some known only by IbPartner.parent_id), 50,000 attributed clients with
trading accounts (a few self-referrals, a few attributed mid-month, some through referral links
with an override plan), mixed plans (differential per-lot matrix, split with a spread share, hybrid
per-lot + commission share; some with a minimum holding time), and a month of closed deals
(opening and closing, bulk-inserted straight into closed_deals). Then runs the accrual activity
exactly as the worker does (IbAccrualActivities.accrue_deals, batches, cursor in the database),
with no Temporal server, until it has caught up; resident memory is sampled as it goes.

    .venv/bin/python benchmarks/ib_accrual.py [--deals 1000000] [--postgres URL] [--no-sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("FXCRM_ENV", "dev")  # the development field-encryption key

from sqlalchemy import func, insert, select, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker  # noqa: E402
from temporalio.testing import ActivityEnvironment  # noqa: E402

from fxcrm.activities.ib_accrual import IbAccrualActivities  # noqa: E402
from fxcrm.core.db import create_engine, session_factory  # noqa: E402
from fxcrm.core.migrate import upgrade  # noqa: E402
from fxcrm.ib.context import IbContext  # noqa: E402
from fxcrm.models import (  # noqa: E402
    Brand,
    IbAccrual,
    IbAttribution,
    IbParentLink,
    IbPartner,
    IbPlan,
    IbPlanAssignment,
    IbPlanVersion,
    IngestedDeal,
    PlatformServer,
    Trader,
    TradingAccount,
)
from fxcrm.models.base import new_id  # noqa: E402
from fxcrm.workflows.ib_accrual_types import AccrueInput  # noqa: E402

SERVER = "mt5-bench"
MONTH = datetime(2026, 3, 1, tzinfo=UTC)
MONTH_SECONDS = 31 * 86400
CREATED = MONTH - timedelta(days=90)
SYMBOLS = {
    "EURUSD": "fx_major",
    "GBPUSD": "fx_major",
    "USDJPY": "fx_major",
    "EURGBP": "fx_minor",
    "AUDNZD": "fx_minor",
    "XAUUSD": "metals",
    "US30": "indices",
    "BTCUSD": "other",
}
GROUPS = ["real\\retail\\std", "real\\pro\\std", "real\\vip\\raw"]
MAX_DEPTH = 10


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


# ---------------------------------------------------------------- plans


def differential(depth: int) -> dict[str, Any]:
    """Masters earn more per lot than their subs: each level keeps the difference."""
    top = Decimal(12) - Decimal("0.8") * (depth - 1)
    return {
        "symbol_groups": SYMBOLS,
        "per_lot": {
            "fx_major": {"real\\retail\\std": str(top), "real\\pro\\std": str(top / 2), "*": "1"},
            "fx_minor": {"*": str(top + 2)},
            "metals": {"*": str(top * 2)},
            "*": {"*": "0.5"},
        },
        "min_hold_seconds": 60 if depth % 4 == 0 else 0,
        "distribution": {"model": "differential"},
    }


def split() -> dict[str, Any]:
    return {
        "symbol_groups": SYMBOLS,
        "per_lot": {"fx_major": {"*": "6"}, "*": {"*": "2"}},
        "spread_markup_per_lot": {"fx_major": "10", "metals": "25", "*": "5"},
        "spread_share_pct": "40",
        "distribution": {"model": "split", "split_pct": ["50", "20", "10", "5", "5"]},
    }


def hybrid(depth: int) -> dict[str, Any]:
    return {
        "symbol_groups": SYMBOLS,
        "per_lot": {"fx_major": {"*": str(Decimal(8) - Decimal("0.5") * (depth - 1))}},
        "commission_share_pct": str(30 - depth),
        "min_hold_seconds": 120 if depth % 3 == 0 else 0,
        "distribution": {"model": "differential", "max_levels": 6},
    }


# ---------------------------------------------------------------- the brand


async def chunked_insert(
    sessions: async_sessionmaker[AsyncSession], table: Any, rows: list[dict[str, Any]]
) -> None:
    for start in range(0, len(rows), 20_000):
        async with sessions() as session, session.begin():
            await session.execute(insert(table), rows[start : start + 20_000])


async def build_brand(
    sessions: async_sessionmaker[AsyncSession], ibs: int, clients: int, rng: random.Random
) -> dict[str, Any]:
    brand_id = new_id()
    async with sessions() as session, session.begin():
        session.add(Brand(id=brand_id, code="bench", name="Bench", legal_entity="Bench Ltd"))
        await session.flush()
        session.add(
            PlatformServer(id=SERVER, brand_id=brand_id, platform="mt5", name="bench", base_url="-")
        )
    # The tree: 50 masters, then each IB under a recent one not yet 10 deep (so chains deepen).
    ids = [new_id() for _ in range(ibs)]
    depth: list[int] = []
    parent: list[int | None] = []
    for i in range(ibs):
        if i < 50:
            parent.append(None)
            depth.append(1)
            continue
        p = rng.randrange(max(0, i - 300), i)
        for _ in range(20):
            if depth[p] < MAX_DEPTH:
                break
            p = rng.randrange(max(0, i - 300), i)
        else:
            p = rng.randrange(50)  # the recent ones are all 10 deep: under a master
        parent.append(p)
        depth.append(depth[p] + 1)
    partners = [
        {
            "id": ids[i],
            "brand_id": brand_id,
            "email": f"ib{i}@bench.example",
            "name": f"IB {i}",
            "referral_code": f"IB{i}",
            "parent_id": ids[p] if (p := parent[i]) is not None else None,
            "status": "active",
            "password_hash": "x",
            "failed_logins": 0,
            "created_at": CREATED,
        }
        for i in range(ibs)
    ]
    # In index order: a master is always inserted before its subs (the self-reference).
    await chunked_insert(sessions, IbPartner.__table__, partners)
    links = []
    for i in range(ibs):
        if i % 10 == 9:
            continue  # known only by IbPartner.parent_id
        p = parent[i]
        links.append(
            {
                "id": new_id(),
                "ib_id": ids[i],
                "parent_id": ids[p] if p is not None else None,
                "effective_from": CREATED,
                "created_at": CREATED,
            }
        )
        if p is not None and i % 100 == 7:
            # Moved mid-month up under its master's master (never a cycle).
            q = parent[p]
            links.append(
                {
                    "id": new_id(),
                    "ib_id": ids[i],
                    "parent_id": ids[q] if q is not None else None,
                    "effective_from": MONTH + timedelta(days=15),
                    "created_at": CREATED,
                }
            )
    await chunked_insert(sessions, IbParentLink.__table__, links)
    plans: list[dict[str, Any]] = []
    versions: list[dict[str, Any]] = []
    plan_of: dict[tuple[str, int], str] = {}
    for kind in ("differential", "split", "hybrid"):
        for d in range(1, MAX_DEPTH + 1):
            plan_id = new_id()
            rules = differential(d) if kind == "differential" else hybrid(d)
            rules = split() if kind == "split" else rules
            plans.append(
                {"id": plan_id, "brand_id": brand_id, "name": f"{kind}-{d}", "created_at": CREATED}
            )
            versions.append(
                {
                    "id": new_id(),
                    "plan_id": plan_id,
                    "version": 1,
                    "effective_from": CREATED,
                    "rules": rules,
                    "created_at": CREATED,
                }
            )
            plan_of[(kind, d)] = plan_id
    await chunked_insert(sessions, IbPlan.__table__, plans)
    await chunked_insert(sessions, IbPlanVersion.__table__, versions)
    assignments = []
    for i in range(ibs):
        kind = rng.choices(["differential", "split", "hybrid"], [6, 2, 2])[0]
        assignments.append(
            {
                "id": new_id(),
                "ib_id": ids[i],
                "plan_id": plan_of[(kind, depth[i])],
                "link_code": None,
                "effective_from": CREATED,
                "created_at": CREATED,
            }
        )
        if i % 20 == 0:  # a referral link with a better plan
            assignments.append(
                {
                    "id": new_id(),
                    "ib_id": ids[i],
                    "plan_id": plan_of[("differential", 1)],
                    "link_code": f"VIP{i}",
                    "effective_from": CREATED,
                    "created_at": CREATED,
                }
            )
    await chunked_insert(sessions, IbPlanAssignment.__table__, assignments)
    traders, accounts, attributions = [], [], []
    for c in range(clients):
        trader_id = new_id()
        ib = rng.randrange(ibs)
        traders.append(
            {
                "id": trader_id,
                "brand_id": brand_id,
                "email": f"c{c}@bench.example",
                "password_hash": "x",
                "first_name": "A",
                "last_name": "B",
                "date_of_birth": "1980-01-01",
                "phone": "+1",
                "address": "{}",
                "country": "DE",
                "account_type": "retail",
                "is_pep_declared": False,
                "status": "active",
                "stage": "active",
                "kyc_status": "GREEN",
                "failed_logins": 0,
                "created_at": CREATED,
            }
        )
        accounts.append(
            {
                "id": new_id(),
                "trader_id": trader_id,
                "brand_id": brand_id,
                "server_id": SERVER,
                "platform": "mt5",
                "opening_key": f"bench-{c}",
                "status": "open",
                "login": 1_000_000 + c,
                "group": GROUPS[c % 3],
                "leverage": 100,
                "currency": "USD",
                "account_type": "retail",
                "created_at": CREATED,
            }
        )
        attributions.append(
            {
                "id": new_id(),
                "trader_id": trader_id,
                "ib_id": ids[ib],
                "effective_from": MONTH + timedelta(days=10) if c % 50 == 1 else CREATED,
                "link_code": f"VIP{ib}" if ib % 20 == 0 else None,
                "source": "registration",
                "excluded": "self_referral" if c % 100 == 3 else None,
                "created_at": CREATED,
            }
        )
    await chunked_insert(sessions, Trader.__table__, traders)
    await chunked_insert(sessions, TradingAccount.__table__, accounts)
    await chunked_insert(sessions, IbAttribution.__table__, attributions)
    return {"brand_id": brand_id, "max_depth": max(depth)}


def deal_rows(count: int, clients: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    """A month of deals in time order: about one in six opens a position that a later deal
    closes (a few seconds to an hour later); the rest close positions opened before the month."""
    pending: dict[int, tuple[int, str, str, Decimal]] = {}  # closing index → position
    step = MONTH_SECONDS / count
    symbols = list(SYMBOLS)
    for k in range(count):
        at = MONTH + timedelta(seconds=k * step)
        closing = pending.pop(k, None)
        if closing is not None:
            login, position, symbol, lots = closing
            side, entry = "sell", "out"
        elif rng.random() < 0.17 and k + 20 < count:
            login = 1_000_000 + rng.randrange(clients)
            position, symbol = f"P{k}", rng.choice(symbols)
            lots = Decimal(rng.choice(["0.01", "0.1", "0.5", "1", "2.5"]))
            close_at = k + rng.randrange(1, 4_000)
            while close_at in pending or close_at >= count:
                close_at = k + rng.randrange(1, 20) if close_at >= count else close_at + 1
            pending[close_at] = (login, position, symbol, lots)
            side, entry = "buy", "in"
        else:
            login = 1_000_000 + rng.randrange(clients)
            position, symbol = f"Q{k}", rng.choice(symbols)
            lots = Decimal(rng.choice(["0.01", "0.1", "0.5", "1", "2.5"]))
            side = rng.choice(["buy", "sell"])
            entry = "out_by" if k % 97 == 0 else "out"
        yield {
            "server_id": SERVER,
            "deal_id": str(k + 1),
            "login": login,
            "position_id": position,
            "symbol": symbol,
            "side": side,
            "entry": entry,
            "volume_lots": lots,
            "price": Decimal("1.0845"),
            "profit": Decimal("12.5"),
            "commission": -(lots * 7),
            "swap": Decimal(0),
            "closed_at": at,
            "raw": {},
            "ingested_at": at,
        }


async def insert_deals(
    sessions: async_sessionmaker[AsyncSession], count: int, clients: int, rng: random.Random
) -> None:
    chunk: list[dict[str, Any]] = []
    for row in deal_rows(count, clients, rng):
        chunk.append(row)
        if len(chunk) == 50_000:
            async with sessions() as session, session.begin():
                await session.execute(insert(IngestedDeal.__table__), chunk)
            chunk = []
    if chunk:
        async with sessions() as session, session.begin():
            await session.execute(insert(IngestedDeal.__table__), chunk)


# ---------------------------------------------------------------- the run


async def run(url: str, deals: int, ibs: int, clients: int, batch: int) -> None:
    backend = url.split(":", 1)[0]
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    rng = random.Random(2026)
    began = time.perf_counter()
    brand = await build_brand(sessions, ibs, clients, rng)
    built = time.perf_counter()
    await insert_deals(sessions, deals, clients, rng)
    inserted = time.perf_counter()
    print(
        f"[{backend}] brand: {ibs:,} IBs (max depth {brand['max_depth']}), {clients:,} clients "
        f"in {built - began:.1f} s; {deals:,} deals inserted in {inserted - built:.1f} s"
    )
    async with sessions() as session:
        t = time.perf_counter()
        context = await IbContext.load(session, SERVER)
        load_seconds = time.perf_counter() - t
    del context
    print(f"[{backend}] IB context load: {load_seconds:.2f} s")

    activities = IbAccrualActivities(sessions, batch_size=batch)
    env = ActivityEnvironment()
    peak = rss_mb()
    start_rss = peak
    samples: list[tuple[int, float]] = []
    running = True

    async def sample() -> None:
        nonlocal peak
        while running:
            peak = max(peak, rss_mb())
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample())
    reasons: Counter[str] = Counter()
    read = accrued = 0
    t0 = time.perf_counter()
    while True:
        result = await env.run(
            activities.accrue_deals, AccrueInput(server_id=SERVER, max_deals=50_000)
        )
        read += result.read
        accrued += result.accrued
        reasons.update(result.reasons)
        samples.append((read, rss_mb()))
        if result.caught_up:
            break
    elapsed = time.perf_counter() - t0
    running = False
    await sampler
    async with sessions() as session:
        rows = await session.scalar(select(func.count()).select_from(IbAccrual))
    await engine.dispose()
    print(
        f"[{backend}] accrued {read:,} deals in {elapsed:.1f} s: {read / elapsed:,.0f} deals/s; "
        f"{accrued:,} accrual rows written ({rows:,} in the table)"
    )
    print(f"[{backend}] deals paying nobody, by reason: {dict(reasons.most_common())}")
    marks = [samples[int(len(samples) * f) - 1] for f in (0.1, 0.5, 1.0) if samples]
    print(
        f"[{backend}] RSS (MB): {start_rss:.0f} before, peak {peak:.0f} during the run; at "
        "10%/50%/100%: " + ", ".join(f"{mb:.0f} ({n:,} deals)" for n, mb in marks)
    )
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"[{backend}] process peak RSS (incl. building the data): {max_rss:.0f} MB")


async def main(args: argparse.Namespace) -> None:
    if not args.no_sqlite:
        work = Path(tempfile.mkdtemp(prefix="fxcrm-ib-accrual-"))
        await run(
            f"sqlite+aiosqlite:///{work / 'fxcrm.db'}",
            args.deals,
            args.ibs,
            args.clients,
            args.batch,
        )
    if args.postgres:
        await reset_postgres(args.postgres)
        await run(args.postgres, args.deals, args.ibs, args.clients, args.batch)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--ibs", type=int, default=5_000)
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=5_000, help="deals per transaction")
    parser.add_argument("--postgres", help="PostgreSQL URL; its schema is reset")
    parser.add_argument("--no-sqlite", action="store_true")
    asyncio.run(main(parser.parse_args()))
