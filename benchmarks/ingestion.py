"""Closed-deal ingestion: deals per second from a simulator to the database, and worker memory.

A separate process serves an MT5 simulator holding the backlog (benchmarks/deal_backlog_server.py);
this process runs the ingestion activity exactly as the worker does (PlatformSyncActivities
.ingest_deals, batches of upserts, cursor in the database) until it has caught up, on SQLite and,
when TEST_DATABASE_URL points at one, on PostgreSQL. Resident memory is sampled as it goes.

    .venv/bin/python benchmarks/ingestion.py [--deals 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, text  # noqa: E402
from temporalio.testing import ActivityEnvironment  # noqa: E402

from fxcrm.activities.platform_sync import PlatformSyncActivities  # noqa: E402
from fxcrm.adapters.platforms.factory import build_gateway  # noqa: E402
from fxcrm.adapters.platforms.registry import PlatformRegistry  # noqa: E402
from fxcrm.core.config import Settings  # noqa: E402
from fxcrm.core.db import create_engine, session_factory  # noqa: E402
from fxcrm.core.migrate import upgrade  # noqa: E402
from fxcrm.models import IngestedDeal, PlatformServer, SyncCursor  # noqa: E402
from fxcrm.seed import DEMO_SERVER, seed_demo  # noqa: E402
from fxcrm.workflows.platform_sync_types import IngestInput  # noqa: E402

PORT = 7191


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


async def ingest(url: str, days: int, expected: int) -> None:
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    await seed_demo(sessions, mt5_url=f"http://127.0.0.1:{PORT}")
    async with sessions() as session, session.begin():
        server = await session.get(PlatformServer, DEMO_SERVER)
        assert server is not None
        server.base_url = f"http://127.0.0.1:{PORT}"
        session.add(
            SyncCursor(
                server_id=DEMO_SERVER,
                deals_until=datetime.now(UTC) - timedelta(days=days + 1),
                deals_ingested=0,
                updated_at=datetime.now(UTC),
            )
        )
    settings = Settings(env="dev", database_url=url)

    async def factory(server_id: str):  # type: ignore[no-untyped-def]
        async with sessions() as session:
            row = await session.get(PlatformServer, server_id)
        assert row is not None
        return build_gateway(row.platform, row.base_url, row.config, settings)

    registry = PlatformRegistry(factory)
    activities = PlatformSyncActivities(sessions, registry)
    env = ActivityEnvironment()
    samples: list[tuple[int, float]] = []
    began = time.perf_counter()
    total_read = total_inserted = 0
    while True:
        result = await env.run(
            activities.ingest_deals,
            IngestInput(server_id=DEMO_SERVER, overlap_seconds=300, max_deals=100_000),
        )
        total_read += result.read
        total_inserted += result.inserted
        samples.append((total_inserted, rss_mb()))
        if result.caught_up:
            break
    elapsed = time.perf_counter() - began
    async with sessions() as session:
        rows = await session.scalar(select(func.count()).select_from(IngestedDeal))
    await registry.close()
    await engine.dispose()
    backend = url.split(":", 1)[0]
    print(
        f"[{backend}] ingested {rows:,} closing deals (read {total_read:,}) in {elapsed:.1f} s: "
        f"{(rows or 0) / elapsed:,.0f} deals/s; expected {expected:,}"
    )
    marks = [samples[int(len(samples) * f) - 1] for f in (0.1, 0.5, 1.0) if samples]
    print(
        f"[{backend}] worker RSS (MB) at 10%/50%/100% of the backlog: "
        + ", ".join(f"{mb:.0f} ({n:,} rows)" for n, mb in marks)
    )


async def main(deals: int, days: int, postgres: str | None, sqlite: bool) -> None:
    # The backlog server is started and read before anything else runs: blocking is fine here.
    server = subprocess.Popen(  # noqa: ASYNC220
        [
            sys.executable,
            str(ROOT / "benchmarks" / "deal_backlog_server.py"),
            "--deals",
            str(deals),
            "--days",
            str(days),
            "--port",
            str(PORT),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        while line and not line.startswith("READY"):
            line = server.stdout.readline()
        print(f"simulator: {line.strip()}")
        expected = int(line.split("closing=")[1].split()[0])
        await asyncio.sleep(1)
        work = Path(tempfile.mkdtemp(prefix="fxcrm-ingest-"))
        if sqlite:
            await ingest(f"sqlite+aiosqlite:///{work / 'fxcrm.db'}", days, expected)
        pg = postgres or os.environ.get("TEST_DATABASE_URL")
        if pg:
            await reset_postgres(pg)
            await ingest(pg, days, expected)
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, default=1_000_000, help="closing deals in the backlog")
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument(
        "--postgres", help="PostgreSQL URL (default: TEST_DATABASE_URL); its schema is reset"
    )
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.deals, args.days, args.postgres, not args.no_sqlite))
