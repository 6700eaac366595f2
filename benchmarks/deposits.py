"""Deposits completed per second end to end, and the portal's read latency under 100 clients.

Embedded default: the Temporal dev server (file-backed SQLite, WAL), SQLite for fxcrm, the MT5,
KYC and PSP simulators, one worker, the API over real loopback HTTP. Each deposit is the whole
path: POST /portal/me/deposits → DepositWorkflow → PSP simulator (card) → signed webhook → API →
signal → ledger credit → MT5 balance operation → ledger wallet → trading mirror. The ceiling is a
trivial one-activity workflow on the same server, measured in the same run.

Then 100 concurrent portal clients read GET /portal/me/balances and GET /portal/me/history.

    .venv/bin/python benchmarks/deposits.py [--deposits 300] [--concurrency 16] [--clients 100]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from benchmarks.onboarding import trivial_rate  # noqa: E402
from fxcrm.adapters.simulators.mt5 import Mt5SimulatorThread  # noqa: E402
from fxcrm.adapters.simulators.tls import ensure_self_signed_cert  # noqa: E402
from fxcrm.core.migrate import upgrade  # noqa: E402
from fxcrm.core.temporal import BRAND, STAGE, TRADER_ID  # noqa: E402
from tests.e2e import stack as e2e_stack  # noqa: E402
from tests.e2e.money import verified_with_account  # noqa: E402
from tests.e2e.payments import deposit, deposit_body  # noqa: E402
from tests.e2e.portal import bearer  # noqa: E402
from tests.e2e.transfers import second_account  # noqa: E402

FINAL = {"completed", "credit_failed", "failed", "expired"}


async def funded_traders(stack: e2e_stack.Stack, count: int) -> list[tuple[str, str]]:
    """KYC-approved traders, each with a real MT5 account: (token, trading account id)."""
    out = []
    for _ in range(count):
        trader_id, token, _ = await verified_with_account(stack)
        account = await second_account(stack, trader_id)
        out.append((token, account["account_id"]))
    return out


async def one_deposit(stack: e2e_stack.Stack, token: str, account_id: str) -> tuple[float, str]:
    start = time.perf_counter()
    body = deposit_body("25.00", target={"account_id": account_id})
    response = await deposit(stack.http, token, body)
    response.raise_for_status()
    payment_id = response.json()["id"]
    while True:
        view = (
            await stack.http.get(f"/portal/me/payments/{payment_id}", headers=bearer(token))
        ).json()
        if view["status"] in FINAL:
            return time.perf_counter() - start, view["status"]
        await asyncio.sleep(0.05)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def portal_reads(
    stack: e2e_stack.Stack, tokens: list[str], clients: int, each: int
) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"/portal/me/balances": [], "/portal/me/history": []}

    async def client(n: int) -> None:
        token = tokens[n % len(tokens)]
        for i in range(each):
            path = "/portal/me/balances" if i % 2 == 0 else "/portal/me/history"
            start = time.perf_counter()
            response = await stack.http.get(path, headers=bearer(token))
            timings[path].append(time.perf_counter() - start)
            response.raise_for_status()

    await asyncio.gather(*(client(n) for n in range(clients)))
    return timings


async def main(deposits: int, concurrency: int, clients: int, traders: int, trivial: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="fxcrm-deposits-"))
    db_url = f"sqlite+aiosqlite:///{work / 'fxcrm.db'}"
    await asyncio.to_thread(upgrade, db_url)
    certfile, keyfile = ensure_self_signed_cert(work / "certs")
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
            stack.http.timeout.read = 60
            book = await funded_traders(stack, traders)
            await one_deposit(stack, *book[0])  # warm-up: sessions open, code paths loaded
            gate = asyncio.Semaphore(concurrency)

            async def gated(n: int) -> tuple[float, str]:
                async with gate:
                    return await one_deposit(stack, *book[n % len(book)])

            start = time.perf_counter()
            results = await asyncio.gather(*(gated(n) for n in range(deposits)))
            elapsed = time.perf_counter() - start
            reads = await portal_reads(stack, [t for t, _ in book], clients, each=20)
        ceiling_after = await trivial_rate(env, trivial)
        mt5.stop()

    latencies = [seconds for seconds, _ in results]
    outcomes: dict[str, int] = {}
    for _, status in results:
        outcomes[status] = outcomes.get(status, 0) + 1
    print(f"trivial one-activity workflows: {ceiling:.1f}/s before, {ceiling_after:.1f}/s after")
    print(
        f"deposits completed end to end (card → webhook → ledger → MT5): {deposits / elapsed:.2f}/s "
        f"({deposits} in {elapsed:.1f} s, {concurrency} in flight, outcomes {outcomes})"
    )
    print(
        f"deposit latency: p50 {statistics.median(latencies):.2f} s, p95 {pct(latencies, 0.95):.2f} s"
    )
    for path, values in reads.items():
        print(
            f"{path} at {clients} concurrent clients: p50 {1000 * statistics.median(values):.1f} ms, "
            f"p99 {1000 * pct(values, 0.99):.1f} ms ({len(values)} requests)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--deposits", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16, help="deposits in flight at once")
    parser.add_argument("--clients", type=int, default=100, help="concurrent portal readers")
    parser.add_argument("--traders", type=int, default=50)
    parser.add_argument("--trivial", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(main(args.deposits, args.concurrency, args.clients, args.traders, args.trivial))
