"""`fxcrm api` with several worker processes on SQLite: every process reads what another process
has just committed (WAL), while many reads run at once."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from benchmarks.read_path import seed
from fxcrm.core.db import create_engine, session_factory, transaction
from fxcrm.domain.ledger import TransferKind, client_wallet_code, psp_clearing_code
from fxcrm.domain.money import Money
from fxcrm.ledger import TransferRequest, account_by_code, transfer
from tests.db import fresh_database

WORKERS = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _workers(pid: int) -> list[int]:
    """uvicorn's worker processes (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        int(child)
        for child in children
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


@pytest.fixture
def api_processes(tmp_path: Path) -> Iterator[tuple[str, str]]:
    database_url = asyncio.run(fresh_database("sqlite", tmp_path))
    port = _free_port()
    env = {
        **os.environ,
        "FXCRM_ENV": "test",
        "DATABASE_URL": database_url,
        "FXCRM_API_PORT": str(port),
        "FXCRM_API_WORKERS": str(WORKERS),
        "FXCRM_LOG_JSON": "true",
    }
    log = (tmp_path / "api.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fxcrm.cli", "api"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the API did not start"
            time.sleep(0.2)
        if Path("/proc").exists():
            deadline = time.monotonic() + 30
            while len(_workers(proc.pid)) < WORKERS and time.monotonic() < deadline:
                time.sleep(0.2)
            assert len(_workers(proc.pid)) == WORKERS
        yield base, database_url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


async def _deposit(database_url: str, claims: dict[str, Any], number: int) -> None:
    """One USD committed to the trader's wallet, by this process (not the API's)."""
    trader_id, brand_id = claims["sub"], claims["brands"][0]
    engine = create_engine(database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            wallet = await account_by_code(session, brand_id, client_wallet_code(trader_id, "USD"))
            psp = await account_by_code(session, brand_id, psp_clearing_code("sim", "USD"))
            await transfer(
                session,
                TransferRequest(
                    idempotency_key=f"test-deposit:{trader_id}:{number}",
                    debit_account_id=psp.id,
                    credit_account_id=wallet.id,
                    amount=Money.of("1.00", "USD"),
                    kind=TransferKind.DEPOSIT,
                ),
            )
    finally:
        await engine.dispose()


def _usd_wallet(balances: list[dict[str, str]]) -> Decimal:
    return next(Decimal(b["balance"]) for b in balances if b["code"].endswith(":wallet:USD"))


def test_every_worker_reads_a_deposit_as_soon_as_it_is_committed(
    api_processes: tuple[str, str],
) -> None:
    base, database_url = api_processes
    [token] = asyncio.run(seed(database_url, traders=1, history=3))
    claims = jwt.decode(token, options={"verify_signature": False})

    async def scenario() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        limits = httpx.Limits(max_connections=40, max_keepalive_connections=40)
        async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as http:

            async def balance() -> Decimal:
                answer = await http.get("/portal/me/balances")
                assert answer.status_code == 200, answer.text
                return _usd_wallet(answer.json())

            start = await balance()
            stop = asyncio.Event()
            seen: list[Decimal] = []

            async def reader() -> None:
                while not stop.is_set():
                    seen.append(await balance())

            readers = [asyncio.create_task(reader()) for _ in range(20)]
            for number in range(1, 11):
                await _deposit(database_url, claims, number)
                # Forty reads at once land on both processes: each must show the deposit.
                after = await asyncio.gather(*(balance() for _ in range(40)))
                assert set(after) == {start + number}
            stop.set()
            await asyncio.gather(*readers)
            assert seen and all(start <= value <= start + 10 for value in seen)

    asyncio.run(scenario())
