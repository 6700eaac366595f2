"""An MT5 simulator holding a backlog of simulated closed deals, for benchmarks/ingestion.py.

Runs in its own process so that the ingesting side's memory is measured alone.

    .venv/bin/python benchmarks/deal_backlog_server.py --deals 1000000 --port 7191
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fxcrm.adapters.simulators.market import generate
from fxcrm.adapters.simulators.mt5 import Mt5SimConfig, Mt5SimState, create_mt5_simulator

# Simulator-only accounts.
TRADER_PASSWORD = "Trader#2026a"  # noqa: S105
INVESTOR_PASSWORD = "Invest#2026b"  # noqa: S105


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--port", type=int, default=7191)
    args = parser.parse_args()
    state = Mt5SimState(Mt5SimConfig())
    for n in range(args.accounts):
        user = state.add_user(
            group="real\\retail\\std",
            leverage=100,
            password_main=TRADER_PASSWORD,
            password_investor=INVESTOR_PASSWORD,
        )
        state.balance_op(user.login, 2, Decimal(2000 + (n * 37) % 20000), f"seed-{n}")
    began = time.perf_counter()
    end = datetime.now(UTC) - timedelta(minutes=1)
    # About half the fills close something: ask for twice the closing deals wanted.
    stats = generate([state], end - timedelta(days=args.days), end, 2 * args.deals, seed=7)
    closing = sum(1 for d in state.deals.values() if d.action in (0, 1) and d.entry in (1, 2, 3))
    print(
        f"READY deals={len(state.deals)} closing={closing} generated_in={time.perf_counter() - began:.1f}s "
        f"fills={stats.deals}",
        flush=True,
    )
    app = create_mt5_simulator(state=state)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", timeout_keep_alive=300)


if __name__ == "__main__":
    main()
