"""Sync lag: time from a deal closing on a simulator to its row in fxcrm's database.

The five platform simulators trade at a steady rate (200 closed deals/s across all of them by
default: the market engine paces on the deals that close a position, which is what the platforms
report and fxcrm ingests), one worker runs the five `platform-sync-{server}` workflows against a
Temporal dev server, and the lag of every deal closed during the measurement is its
`ingested_at - closed_at`. The achieved rate is counted in the database, and checked against what
the platforms themselves report for the window (deals missing from the database are printed).
Everything but the Temporal server shares this process (2 cores), so the figures include that
contention. The simulators keep their state in memory (no JSON state files).

    .venv/bin/python benchmarks/sync_lag.py [--rate 200] [--seconds 60] [--interval 1]
        [--database postgresql+asyncpg://...]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from fxcrm.activities.screening import ScreeningService  # noqa: E402
from fxcrm.adapters.platforms.base import ALL_GROUPS  # noqa: E402
from fxcrm.adapters.platforms.registry import PlatformRegistry  # noqa: E402
from fxcrm.adapters.simulators.host import run_platform_simulators  # noqa: E402
from fxcrm.core.config import Settings  # noqa: E402
from fxcrm.core.db import create_engine, session_factory  # noqa: E402
from fxcrm.core.migrate import upgrade  # noqa: E402
from fxcrm.core.temporal import BRAND, STAGE, TRADER_ID  # noqa: E402
from fxcrm.models import IngestedDeal, PlatformServer  # noqa: E402
from fxcrm.seed import seed_demo  # noqa: E402
from fxcrm.sync_control import start_platform_syncs  # noqa: E402
from fxcrm.worker import build_kyc, build_worker, platform_factory  # noqa: E402


async def main(rate: float, seconds: float, interval: float, database: str | None) -> None:
    work = Path(tempfile.mkdtemp(prefix="fxcrm-lag-"))
    db_url = database or f"sqlite+aiosqlite:///{work / 'fxcrm.db'}"
    if database:
        from benchmarks.ingestion import reset_postgres

        await reset_postgres(database)
    await asyncio.to_thread(upgrade, db_url)
    engine = create_engine(db_url)
    sessions = session_factory(engine)
    await seed_demo(sessions)
    settings = Settings(env="dev", database_url=db_url, task_queue="sync-lag")
    stop = asyncio.Event()
    simulators = asyncio.create_task(
        run_platform_simulators(work, rate, stop, pace="closed", state_files=False)
    )
    async with await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(ROOT / ".venv" / "bin" / "temporal"),
        search_attributes=[TRADER_ID, BRAND, STAGE],
    ) as env:
        platforms = PlatformRegistry(platform_factory(sessions, settings))
        kyc = build_kyc(settings)
        screening = ScreeningService(lambda: None)  # type: ignore[arg-type,return-value]
        worker = build_worker(env.client, settings, sessions, kyc, platforms, screening)
        async with worker:
            await asyncio.sleep(8)  # simulators up, demo books made, first trades
            await start_platform_syncs(env.client, sessions, settings.task_queue, interval)
            await asyncio.sleep(20)  # first catch-up done
            began = datetime.now(UTC)
            await asyncio.sleep(seconds)
            ended = datetime.now(UTC)
            await asyncio.sleep(max(10.0, 5 * interval))  # let the last deals arrive
            async with sessions() as session:
                rows = (
                    await session.execute(
                        select(
                            IngestedDeal.server_id,
                            IngestedDeal.closed_at,
                            IngestedDeal.ingested_at,
                            IngestedDeal.deal_id,
                        ).where(IngestedDeal.closed_at >= began, IngestedDeal.closed_at < ended)
                    )
                ).all()
                report(rows, began, ended, interval)
                servers = (await session.scalars(select(PlatformServer.id))).all()
            await check_complete(platforms, servers, rows, began, ended)
        stop.set()
        await asyncio.wait_for(simulators, timeout=30)
        await platforms.close()
        await kyc.close()
    await engine.dispose()


def report(rows: list, began: datetime, ended: datetime, interval: float) -> None:  # type: ignore[type-arg]
    lags = sorted((ingested - closed).total_seconds() for _, closed, ingested, _ in rows)
    per_server: dict[str, int] = {}
    for server_id, _, _, _ in rows:
        per_server[server_id] = per_server.get(server_id, 0) + 1
    span = (ended - began).total_seconds()
    print(
        f"deals closed in the {span:.0f} s window and ingested: {len(lags)} "
        f"(achieved {len(lags) / span:.1f} deals/s); per server {per_server}",
        flush=True,
    )
    if lags:
        p95 = lags[int(len(lags) * 0.95) - 1]
        print(
            f"sync lag: median {statistics.median(lags):.2f} s, p95 {p95:.2f} s, "
            f"max {lags[-1]:.2f} s (sync pause {interval} s)",
            flush=True,
        )


async def check_complete(
    platforms: PlatformRegistry,
    servers: Sequence[str],
    rows: list,  # type: ignore[type-arg]
    began: datetime,
    ended: datetime,
) -> None:
    """What each platform reports as closed in the window, against what the database holds."""
    stored: dict[str, set[str]] = {}
    for server_id, _, _, deal_id in rows:
        stored.setdefault(server_id, set()).add(deal_id)
    reported = missing = 0
    for server_id in sorted(servers):
        gateway = await platforms.get(server_id, "sync")
        on_platform = {
            deal.deal_id
            async for deal in gateway.iter_closed_deals(None, ALL_GROUPS, began, ended)
            if began <= deal.time < ended
        }
        reported += len(on_platform)
        missing += len(on_platform - stored.get(server_id, set()))
    print(f"closed on the platforms in the window: {reported}; missing in the database: {missing}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200.0, help="deals per second, all servers")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=1.0, help="pause between sync rounds")
    parser.add_argument("--database", help="a PostgreSQL URL (its schema is reset); default SQLite")
    args = parser.parse_args()
    started = time.perf_counter()
    asyncio.run(main(args.rate, args.seconds, args.interval, args.database))
    print(f"(run took {time.perf_counter() - started:.0f} s)")
