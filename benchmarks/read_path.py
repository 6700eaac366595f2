"""The portal's read path under load: `GET /portal/me/balances` and `/portal/me/history` served by
the real fxcrm API, beside a minimal FastAPI + SQLAlchemy app doing the same queries on the same
database in the same run (the ceiling, benchmarks/read_path_ceiling.py).

    .venv/bin/python benchmarks/read_path.py [--traders 500] [--history 60] [--workers 2]
        [--clients 100] [--seconds 10] [--rounds 1] [--database postgresql+asyncpg://...]

Seeds traders with a USD and an EUR wallet, a trading account, ledger history (deposits,
withdrawals held then posted or voided, wallet-to-account transfers) and their payments; SQLite in
a temporary directory by default, or adds a brand of its own to `--database`. Starts `fxcrm api`
as `make dev` does (uvicorn, FXCRM_API_WORKERS worker processes) and the ceiling under uvicorn with
as many workers, then drives each with `clients` keep-alive connections carrying real bearer
tokens (one per trader, rotated), from a separate process: `wrk` when installed (Debian:
`apt-get install -y wrk`), else an asyncio generator in processes of its own. The generator's
own ceiling (a no-database endpoint) and CPU use are printed, to show it is not the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker  # noqa: E402

from benchmarks.load import LoadResult, run_load  # noqa: E402
from fxcrm.core.config import DEV_FIELD_KEY, DEV_SECRET_KEY  # noqa: E402
from fxcrm.core.db import create_engine, session_factory, transaction  # noqa: E402
from fxcrm.core.fields import configure_field_cipher  # noqa: E402
from fxcrm.core.migrate import upgrade  # noqa: E402
from fxcrm.core.security import issue_token  # noqa: E402
from fxcrm.domain.ledger import (  # noqa: E402
    AccountKind,
    TransferKind,
    client_trading_code,
    client_wallet_code,
    psp_clearing_code,
)
from fxcrm.domain.money import Money  # noqa: E402
from fxcrm.ledger import (  # noqa: E402
    AccountSpec,
    TransferRequest,
    open_account,
    post_pending,
    transfer_many,
    void_pending,
)
from fxcrm.models import Payment, Trader, TradingAccount  # noqa: E402
from fxcrm.seed import DEMO_SERVER, seed_demo  # noqa: E402

ENDPOINTS = ("/portal/me/balances", "/portal/me/history")
BATCH = 50  # traders per seeding transaction


# ---------------------------------------------------------------- seeding


async def seed(database_url: str, traders: int, history: int) -> list[str]:
    """Returns one bearer token per seeded trader."""
    configure_field_cipher(DEV_FIELD_KEY)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        brand_id = await seed_demo(sessions)
        tokens = []
        run = random.randrange(16**6)
        for start in range(0, traders, BATCH):
            ids = await _seed_batch(
                sessions, brand_id, run, range(start, min(traders, start + BATCH)), history
            )
            # A new subject's token version is 0 (fxcrm.api.subjects checks it per request).
            claims = {"kind": "trader", "role": "trader", "brands": [brand_id], "ver": 0}
            tokens += [issue_token(DEV_SECRET_KEY, i, claims, 24 * 60) for i in ids]
        return tokens
    finally:
        await engine.dispose()


async def _seed_batch(
    sessions: async_sessionmaker[AsyncSession],
    brand_id: str,
    run: int,
    numbers: range,
    history: int,
) -> list[str]:
    async with transaction(sessions) as session:
        clearing = {
            currency: await open_account(
                session,
                AccountSpec(
                    brand_id=brand_id,
                    code=psp_clearing_code("sim", currency),
                    kind=AccountKind.PSP_CLEARING,
                    currency=currency,
                ),
            )
            for currency in ("USD", "EUR")
        }
        traders = [
            Trader(
                brand_id=brand_id,
                email=f"bench-{run:06x}-{n}@example.com",
                password_hash="not-used",  # noqa: S106  (tokens are issued directly)
                first_name="Bench",
                last_name=f"Trader {n}",
                date_of_birth="1990-01-01",
                phone="+35700000000",
                address='{"line1": "1 Main St", "city": "Limassol", "postal_code": "3000"}',
                country="CY",
                account_type="retail",
                status="active",
                stage="active",
            )
            for n in numbers
        ]
        session.add_all(traders)
        await session.flush()
        requests, holds = [], []
        for n, trader in zip(numbers, traders, strict=True):
            login = run * 1_000_000 + n
            session.add(
                TradingAccount(
                    trader_id=trader.id,
                    brand_id=brand_id,
                    server_id=DEMO_SERVER,
                    platform="mt5",
                    opening_key=f"bench-{trader.id}",
                    status="open",
                    login=login,
                    group="demo\\retail",
                    leverage=100,
                    currency="USD",
                    account_type="retail",
                )
            )
            wallets = {
                currency: await open_account(
                    session,
                    AccountSpec(
                        brand_id=brand_id,
                        code=client_wallet_code(trader.id, currency),
                        kind=AccountKind.CLIENT_WALLET,
                        currency=currency,
                        owner_id=trader.id,
                    ),
                )
                for currency in ("USD", "EUR")
            }
            trading = await open_account(
                session,
                AccountSpec(
                    brand_id=brand_id,
                    code=client_trading_code(trader.id, DEMO_SERVER, login),
                    kind=AccountKind.CLIENT_TRADING,
                    currency="USD",
                    owner_id=trader.id,
                ),
            )
            for k in range(history):
                currency = "EUR" if k % 4 == 3 else "USD"
                wallet, psp = wallets[currency].id, clearing[currency].id
                key = f"bench:{trader.id}:{k}"
                match k % 3:
                    case 0:  # a deposit
                        move = (psp, wallet, TransferKind.DEPOSIT, False)
                        _payment(session, brand_id, trader.id, "deposit", currency, key)
                    case 1:  # a withdrawal hold, posted or voided below
                        move = (wallet, psp, TransferKind.WITHDRAWAL, True)
                        _payment(session, brand_id, trader.id, "withdrawal", currency, key)
                        holds.append(key)
                    case _:  # a transfer to the trading account, or a small deposit in EUR
                        move = (
                            (wallet, trading.id, TransferKind.TRANSFER, False)
                            if currency == "USD"
                            else (psp, wallet, TransferKind.DEPOSIT, False)
                        )
                debit, credit, kind, pending = move
                amount = "100.00" if k % 3 == 0 else "10.00"
                requests.append(
                    TransferRequest(
                        idempotency_key=key,
                        debit_account_id=debit,
                        credit_account_id=credit,
                        amount=Money.of(amount, currency),
                        kind=kind,
                        pending=pending,
                        reference=key,
                    )
                )
        views = {v.idempotency_key: v for v in await transfer_many(session, requests)}
        for i, key in enumerate(holds):
            # Most holds end posted, some voided, a few stay pending (an open withdrawal).
            if i % 5 == 4:
                continue
            resolve = void_pending if i % 5 == 3 else post_pending
            await resolve(session, views[key].id, f"{key}:resolved")
        return [trader.id for trader in traders]


def _payment(
    session: AsyncSession, brand_id: str, trader_id: str, kind: str, currency: str, key: str
) -> None:
    session.add(
        Payment(
            brand_id=brand_id,
            trader_id=trader_id,
            kind=kind,
            status="completed",
            idempotency_key=key,
            request_hash="0" * 64,
            workflow_id=f"{kind}-{key}",
            currency=currency,
            amount=1000,
            source_kind="psp" if kind == "deposit" else "wallet",
            target_kind="wallet" if kind == "deposit" else "psp",
            method="card",
            psp="sim",
        )
    )


# ---------------------------------------------------------------- servers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """CPU time of the server and its worker processes so far (Linux /proc; 0 elsewhere)."""
        total, ticks = 0.0, os.sysconf("SC_CLK_TCK")
        pids = [self.pid]
        for pid in pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            total += (int(stat[11]) + int(stat[12])) / ticks
            pids += [int(child) for child in children]
        return total


@dataclass
class Measured:
    load: LoadResult
    cpu_ms: float  # server CPU per request, less sensitive to other load on the machine


def _measure(
    server: Server, endpoint: str, tokens: list[str], args: argparse.Namespace
) -> Measured:
    before = server.cpu_seconds()
    load = run_load(server.url + endpoint, tokens, args.clients, args.seconds, args.generator)
    return Measured(load, (server.cpu_seconds() - before) * 1000 / max(1, load.requests))


@contextmanager
def _server(
    name: str, args: list[str], env: dict[str, str], port: int, logs: Path
) -> Iterator[Server]:
    log = (logs / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/docs", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{name} did not start; see {logs / name}.log")
            time.sleep(0.2)
        yield Server(name, base, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _same_answers(fxcrm: str, ceiling: str, token: str) -> None:
    """The ceiling must do the same work: same balances, same history entries."""
    headers = {"Authorization": f"Bearer {token}"}
    ours = httpx.get(f"{fxcrm}/portal/me/balances", headers=headers).json()
    theirs = httpx.get(f"{ceiling}/portal/me/balances", headers=headers).json()
    assert ours == theirs, (ours, theirs)
    fields = ("transfer_id", "account_id", "amount", "state")
    ours = httpx.get(f"{fxcrm}/portal/me/history", headers=headers).json()["entries"]
    theirs = httpx.get(f"{ceiling}/portal/me/history", headers=headers).json()["entries"]
    assert [[e[f] for f in fields] for e in ours] == [[e[f] for f in fields] for e in theirs]
    assert ours, "seeded traders have history"


# ---------------------------------------------------------------- report


def _line(label: str, m: Measured) -> str:
    r = m.load
    errors = f", {r.errors} errors" if r.errors else ""
    return (
        f"  {label:8} {r.rate:7.0f} req/s  p50 {r.p50_ms:6.1f} ms  p95 {r.p95_ms:6.1f} ms"
        f"  p99 {r.p99_ms:6.1f} ms  server CPU {m.cpu_ms:.2f} ms/req"
        f"  (generator {r.generator_cpu:.2f} cores{errors})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traders", type=int, default=500)
    parser.add_argument("--history", type=int, default=60, help="ledger transfers per trader")
    parser.add_argument("--workers", type=int, default=2, help="API worker processes (each side)")
    parser.add_argument("--clients", type=int, default=100, help="concurrent connections")
    parser.add_argument("--seconds", type=float, default=10, help="per endpoint and side")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the measurements")
    parser.add_argument("--database", help="default: SQLite in a temporary directory")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--ceiling-subject-check",
        choices=("on", "off"),
        default="on",
        help="the ceiling looks the caller up by primary key, as fxcrm's principal check does",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="fxcrm-read-path-"))
    database_url = args.database or f"sqlite+aiosqlite:///{work / 'fxcrm.db'}"
    upgrade(database_url)
    started = time.perf_counter()
    tokens = asyncio.run(seed(database_url, args.traders, args.history))
    print(
        f"seeded {args.traders} traders x {args.history} ledger transfers in "
        f"{time.perf_counter() - started:.0f} s ({database_url.split(':', 1)[0]})"
    )

    fxcrm_port, ceiling_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "FXCRM_ENV": "dev",
        "FXCRM_SECRET_KEY": DEV_SECRET_KEY,
        "DATABASE_URL": database_url,
        "FXCRM_API_PORT": str(fxcrm_port),
        "FXCRM_API_WORKERS": str(args.workers),
        "FXCRM_LOG_JSON": "true",
        "PYTHONPATH": str(ROOT),
        "CEILING_SUBJECT_CHECK": "1" if args.ceiling_subject_check == "on" else "0",
    }
    fxcrm_cmd = [sys.executable, "-m", "fxcrm.cli", "api"]
    ceiling_cmd = [
        *(sys.executable, "-m", "uvicorn", "benchmarks.read_path_ceiling:app"),
        *("--port", str(ceiling_port), "--workers", str(args.workers)),
        *("--no-access-log", "--log-level", "warning"),
    ]
    with (
        _server("fxcrm", fxcrm_cmd, env, fxcrm_port, work) as fxcrm,
        _server("ceiling", ceiling_cmd, env, ceiling_port, work) as ceiling,
    ):
        _same_answers(fxcrm.url, ceiling.url, tokens[0])
        probe = run_load(f"{ceiling.url}/ping", tokens, args.clients, 3, args.generator)
        print(
            f"generator ceiling (no-database endpoint): {probe.rate:.0f} req/s, "
            f"p99 {probe.p99_ms:.1f} ms; {args.workers} worker processes per side, "
            f"{args.clients} clients"
        )
        for endpoint in ENDPOINTS:  # warm-up: connections pooled, code paths compiled
            for server in (ceiling, fxcrm):
                run_load(server.url + endpoint, tokens, args.clients, 2, args.generator)
        for round_ in range(args.rounds):
            for endpoint in ENDPOINTS:
                # Alternate who goes first: the machine's other load drifts.
                pair = (ceiling, fxcrm) if round_ % 2 == 0 else (fxcrm, ceiling)
                results = {s.name: _measure(s, endpoint, tokens, args) for s in pair}
                top, ours = results["ceiling"], results["fxcrm"]
                title = f"GET {endpoint}" + (f" (round {round_ + 1})" if args.rounds > 1 else "")
                print(
                    f"{title}: fxcrm at {ours.load.rate / top.load.rate:.0%} of the ceiling's "
                    f"rate; CPU per request {top.cpu_ms / ours.cpu_ms:.0%} of the ceiling's"
                )
                print(_line("ceiling", top))
                print(_line("fxcrm", ours))


if __name__ == "__main__":
    main()
