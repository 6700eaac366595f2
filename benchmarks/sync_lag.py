"""Sync lag: time from a deal closing on a simulator to its row in fxcrm's database.

The five platform simulators trade at a steady rate (200 deals/s across all of them by default),
one worker runs the five `platform-sync-{server}` workflows against a Temporal dev server, and the
lag of every deal closed during the measurement is its `ingested_at - closed_at`. Everything but
the Temporal server shares this process (2 cores), so the figures include that contention.

    .venv/bin/python benchmarks/sync_lag.py [--rate 200] [--seconds 60] [--interval 1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from fxcrm.activities.screening import ScreeningService  # noqa: E402
from fxcrm.adapters.platforms.registry import PlatformRegistry  # noqa: E402
from fxcrm.adapters.simulators.host import run_platform_simulators  # noqa: E402
from fxcrm.core.config import Settings  # noqa: E402
from fxcrm.core.db import create_engine, session_factory  # noqa: E402
from fxcrm.core.migrate import upgrade  # noqa: E402
from fxcrm.core.temporal import BRAND, STAGE, TRADER_ID  # noqa: E402
from fxcrm.models import IngestedDeal  # noqa: E402
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
    simulators = asyncio.create_task(run_platform_simulators(work, rate, stop))
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
                            IngestedDeal.server_id, IngestedDeal.closed_at, IngestedDeal.ingested_at
                        ).where(IngestedDeal.closed_at >= began, IngestedDeal.closed_at < ended)
                    )
                ).all()
                report(rows, began, ended, interval)
        stop.set()
        await asyncio.wait_for(simulators, timeout=30)
        await platforms.close()
        await kyc.close()
    await engine.dispose()


def report(rows: list, began: datetime, ended: datetime, interval: float) -> None:  # type: ignore[type-arg]
    lags = sorted((ingested - closed).total_seconds() for _, closed, ingested in rows)
    per_server: dict[str, int] = {}
    for server_id, _, _ in rows:
        per_server[server_id] = per_server.get(server_id, 0) + 1
    span = (ended - began).total_seconds()
    print(
        f"deals closed and ingested in {span:.0f} s: {len(lags)} ({len(lags) / span:.0f}/s); "
        f"per server {per_server}",
        flush=True,
    )
    if lags:
        p95 = lags[int(len(lags) * 0.95) - 1]
        print(
            f"sync lag: median {statistics.median(lags):.2f} s, p95 {p95:.2f} s, "
            f"max {lags[-1]:.2f} s (sync pause {interval} s)",
            flush=True,
        )


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
