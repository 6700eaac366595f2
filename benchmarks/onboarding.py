"""Onboardings completed per second end to end, against the engine's ceiling in the same run.

Embedded default: the Temporal dev server (file-backed SQLite, WAL), SQLite for fxcrm, the MT5 and
KYC simulators, one worker, the API over real loopback HTTP. Each onboarding is the whole process:
register → upload two documents → KYC applicant, upload, review webhook → sanctions screening against
the full OFAC list → risk → MT5 account. The ceiling is a trivial one-activity workflow on the same
server and worker settings.

    .venv/bin/python benchmarks/onboarding.py [--traders 100] [--trivial 300] [--concurrency 10]

Everything but the Temporal server shares this one process (API, worker, simulators), so the
figure is a floor for `make dev`, where they are separate processes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from benchmarks.trivial_workflow import TrivialWorkflow, trivial_activity  # noqa: E402
from fxcrm.adapters.simulators.mt5 import Mt5SimulatorThread  # noqa: E402
from fxcrm.adapters.simulators.tls import ensure_self_signed_cert  # noqa: E402
from fxcrm.core.migrate import upgrade  # noqa: E402
from fxcrm.core.temporal import BRAND, STAGE, TRADER_ID  # noqa: E402
from tests.e2e import stack as e2e_stack  # noqa: E402
from tests.e2e.portal import onboarding, register, upload_both  # noqa: E402

OFAC = ROOT.parent / "shared" / "data" / "sanctions" / "ofac-sdn-2022-01"


async def trivial_rate(env: WorkflowEnvironment, count: int) -> float:
    queue = f"trivial-{uuid.uuid4().hex[:6]}"
    async with Worker(
        env.client, task_queue=queue, workflows=[TrivialWorkflow], activities=[trivial_activity]
    ):
        start = time.perf_counter()
        handles = await asyncio.gather(
            *(
                env.client.start_workflow(
                    TrivialWorkflow.run, i, id=f"trivial-{queue}-{i}", task_queue=queue
                )
                for i in range(count)
            )
        )
        await asyncio.gather(*(h.result() for h in handles))
        return count / (time.perf_counter() - start)


async def one_onboarding(stack: e2e_stack.Stack) -> float:
    start = time.perf_counter()
    _, token = await register(stack.http)
    await upload_both(stack.http, token)
    # A trader's portal polls, as a browser would.
    while (await onboarding(stack.http, token))["stage"] != "active":  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    return time.perf_counter() - start


async def main(traders: int, trivial: int, concurrency: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="fxcrm-bench-"))
    db_url = f"sqlite+aiosqlite:///{work / 'fxcrm.db'}"
    await asyncio.to_thread(upgrade, db_url)
    certfile, keyfile = ensure_self_signed_cert(work / "certs")
    if OFAC.exists():
        e2e_stack.SANCTIONS_LIST = OFAC
    async with await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(ROOT / ".venv" / "bin" / "temporal"),
        dev_server_database_filename=str(work / "temporal.db"),
        search_attributes=[TRADER_ID, BRAND, STAGE],
        dev_server_extra_args=[
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
        ],
    ) as env:
        mt5 = Mt5SimulatorThread(certfile=certfile, keyfile=keyfile).start()
        ceiling = await trivial_rate(env, trivial)
        async with e2e_stack.running_stack(db_url, env.client, mt5, certfile) as stack:
            await one_onboarding(stack)  # warm-up: lists loaded, sessions open
            start = time.perf_counter()
            gate = asyncio.Semaphore(concurrency)

            async def gated() -> float:
                async with gate:
                    return await one_onboarding(stack)

            latencies = await asyncio.gather(*(gated() for _ in range(traders)))
            elapsed = time.perf_counter() - start
        ceiling_after = await trivial_rate(env, trivial)
        mt5.stop()
    print(f"sanctions list: {e2e_stack.SANCTIONS_LIST}")
    print(
        f"trivial one-activity workflows: {ceiling:.1f}/s before, {ceiling_after:.1f}/s after ({trivial} each)"
    )
    print(
        f"onboardings completed end to end: {traders / elapsed:.2f}/s "
        f"({traders} in {elapsed:.1f} s, {concurrency} in flight)"
    )
    quantiles = statistics.quantiles(latencies, n=20)
    print(
        f"onboarding latency: p50 {statistics.median(latencies):.2f} s, p95 {quantiles[18]:.2f} s "
        "(includes the KYC simulator's review delay)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--traders", type=int, default=100)
    parser.add_argument("--trivial", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=10, help="onboardings in flight at once")
    args = parser.parse_args()
    asyncio.run(main(args.traders, args.trivial, args.concurrency))
