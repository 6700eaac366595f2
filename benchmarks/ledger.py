"""Ledger throughput: single transfers per second, sequential and concurrent, with latency.

Each transfer is one transaction through `LedgerService.transfer` (idempotency lookup, account
locks, balance updates, insert). Two workloads:
- deposits: PSP clearing -> one of many wallets. The clearing account is in every transfer, so
  this is the hot-account worst case: on PostgreSQL its row lock serializes the writers;
- wallet pairs: each coroutine moves money between its own two wallets, so nothing is shared.
Runs on a fresh SQLite file, and on PostgreSQL when TEST_DATABASE_URL is set (in a scratch
database `<name>_bench_ledger` beside it, dropped afterwards, so tests there are not disturbed).

    .venv/bin/python benchmarks/ledger.py [--transfers 2000] [--concurrency 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from fxcrm.core.db import create_engine, session_factory, transaction  # noqa: E402
from fxcrm.core.migrate import upgrade  # noqa: E402
from fxcrm.domain.ledger import AccountKind, TransferKind  # noqa: E402
from fxcrm.domain.money import Money  # noqa: E402
from fxcrm.ledger import AccountSpec, LedgerService, TransferRequest  # noqa: E402
from fxcrm.models import Brand  # noqa: E402


async def _admin(url: str, sql: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(sql))
    await engine.dispose()


async def _scratch_postgres(test_url: str) -> tuple[str, Callable[[], Awaitable[None]]]:
    url = make_url(test_url)
    name = f"{url.database}_bench_ledger"
    admin = url.set(database="postgres").render_as_string(hide_password=False)
    await _admin(admin, f'DROP DATABASE IF EXISTS "{name}"')
    await _admin(admin, f'CREATE DATABASE "{name}"')

    async def drop() -> None:
        await _admin(admin, f'DROP DATABASE IF EXISTS "{name}"')

    return url.set(database=name).render_as_string(hide_password=False), drop


class Bench:
    def __init__(self, ledger: LedgerService, brand_id: str) -> None:
        self.ledger, self.brand_id = ledger, brand_id

    async def account(self, kind: AccountKind, code: str) -> str:
        spec = AccountSpec(brand_id=self.brand_id, code=code, kind=kind, currency="USD")
        return (await self.ledger.open_account(spec)).id

    async def timed(self, debit: str, credit: str, latencies: list[float]) -> None:
        request = TransferRequest(
            idempotency_key=uuid.uuid4().hex,
            debit_account_id=debit,
            credit_account_id=credit,
            amount=Money.of("1.00", "USD"),
            kind=TransferKind.TRANSFER,
        )
        start = time.perf_counter()
        await self.ledger.transfer(request)
        latencies.append(time.perf_counter() - start)


def _report(label: str, count: int, elapsed: float, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    print(
        f"  {label:<34} {count / elapsed:8.0f} transfers/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms"
    )


async def _run(
    name: str, bench: Bench, pairs: list[tuple[str, str]], count: int, concurrency: int
) -> None:
    latencies: list[float] = []
    per_worker = count // concurrency

    async def worker(n: int) -> None:
        debit, credit = pairs[n % len(pairs)]
        for i in range(per_worker):
            # Wallet pairs swap direction each time so neither wallet runs dry.
            a, b = (debit, credit) if i % 2 == 0 else (credit, debit)
            await bench.timed(a, b, latencies)

    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    _report(name, per_worker * concurrency, time.perf_counter() - start, latencies)


async def bench_database(label: str, url: str, count: int, concurrency: int) -> None:
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url, pool_size=concurrency + 5) if "postgresql" in url else None
    engine = engine or create_engine(url)
    sessions = session_factory(engine)
    async with transaction(sessions) as session:
        brand = Brand(code=f"bench-{uuid.uuid4().hex[:8]}", name="Bench", legal_entity="Bench")
        session.add(brand)
    bench = Bench(LedgerService(sessions), brand.id)
    psp = await bench.account(AccountKind.PSP_CLEARING, "psp:bench:clearing:USD")
    wallets = [
        await bench.account(AccountKind.CLIENT_WALLET, f"client:t{n}:wallet:USD")
        for n in range(2 * concurrency)
    ]
    deposits = [(psp, wallet) for wallet in wallets]
    for wallet in wallets:  # a start balance, so wallet pairs can move money both ways
        await bench.timed(psp, wallet, [])
    pairs = [(wallets[2 * n], wallets[2 * n + 1]) for n in range(concurrency)]
    print(f"{label}:")
    await _run("deposits, sequential", bench, deposits, count, 1)
    await _run(f"deposits, {concurrency} concurrent (hot PSP)", bench, deposits, count, concurrency)
    await _run(f"wallet pairs, {concurrency} concurrent", bench, pairs, count, concurrency)
    report = await bench.ledger.check_invariants()
    print(f"  invariants ok: {report.ok} ({report.accounts_checked} accounts)")
    await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transfers", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'ledger-bench.db'}"
        await bench_database("SQLite (WAL, BEGIN IMMEDIATE)", url, args.transfers, args.concurrency)
    test_url = os.environ.get("TEST_DATABASE_URL")
    if test_url:
        url, drop = await _scratch_postgres(test_url)
        try:
            await bench_database("PostgreSQL", url, args.transfers, args.concurrency)
        finally:
            await drop()


if __name__ == "__main__":
    asyncio.run(main())
