"""All five trading-platform simulators in one process, with the market engine trading on them.

`make dev` runs this, so the demo has live deals, balances and margin to sync. Each simulator keeps
its own port and wire protocol (MT5 and Sirix over HTTPS with a self-signed certificate) and its
state file in var/, so accounts survive a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog
import uvicorn

from fxcrm.adapters.simulators.market import run_realtime
from fxcrm.adapters.simulators.serving import uvicorn_config
from fxcrm.adapters.simulators.tls import ensure_self_signed_cert

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PlatformSimulator:
    name: str
    port: int
    tls: bool
    build: Callable[[Path | None], tuple[Any, Any]]  # state file -> (state, ASGI app)


def _mt5(state_file: Path | None) -> tuple[Any, Any]:
    from fxcrm.adapters.simulators.mt5 import Mt5SimConfig, Mt5SimState, create_mt5_simulator

    state = Mt5SimState(Mt5SimConfig(state_file=state_file))
    return state, create_mt5_simulator(state=state)


def _ctrader(state_file: Path | None) -> tuple[Any, Any]:
    from fxcrm.adapters.simulators.ctrader import CTraderSimConfig, create_ctrader_simulator
    from fxcrm.adapters.simulators.ctrader.state import CTraderSimState

    state = CTraderSimState(CTraderSimConfig(state_file=state_file))
    return state, create_ctrader_simulator(state=state)


def _matchtrader(state_file: Path | None) -> tuple[Any, Any]:
    from fxcrm.adapters.simulators.matchtrader import (
        MatchTraderSimConfig,
        MatchTraderSimState,
        create_matchtrader_simulator,
    )

    state = MatchTraderSimState(MatchTraderSimConfig(state_file=state_file))
    return state, create_matchtrader_simulator(state=state)


def _sirix(state_file: Path | None) -> tuple[Any, Any]:
    from fxcrm.adapters.simulators.sirix import SirixSimConfig, create_sirix_simulator
    from fxcrm.adapters.simulators.sirix.state import SirixSimState

    state = SirixSimState(SirixSimConfig(state_file=state_file))
    return state, create_sirix_simulator(state=state)


def _mt4(state_file: Path | None) -> tuple[Any, Any]:
    from fxcrm.adapters.simulators.mt4 import Mt4SimConfig, create_mt4_simulator
    from fxcrm.adapters.simulators.mt4.state import Mt4SimState

    state = Mt4SimState(Mt4SimConfig(state_file=state_file))
    return state, create_mt4_simulator(state=state)


SIMULATORS = (
    PlatformSimulator("mt5", 7101, True, _mt5),
    PlatformSimulator("ctrader", 7102, False, _ctrader),
    PlatformSimulator("matchtrader", 7103, False, _matchtrader),
    PlatformSimulator("sirix", 7104, True, _sirix),
    PlatformSimulator("mt4", 7105, False, _mt4),
)


class _EmbeddedServer(uvicorn.Server):
    """Several servers share this process: signals are handled once, below."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


# Simulator-only passwords of the demo accounts (fxcrm adopts the accounts: fxcrm.demo_book).
DEMO_MAIN_PASSWORD = "Demo#Pass2026"  # noqa: S105
DEMO_INVESTOR_PASSWORD = "Demo#View2026"  # noqa: S105


async def seed_demo_book(accounts_per_platform: int | None = None) -> None:
    """Funded accounts on every simulator that has none: the demo's traders, created the way a
    broker's other systems would, through each platform's own API. fxcrm syncs them, and `make
    dev` adopts them as clients of the demo IBs (fxcrm.demo_book, by their client ids)."""
    from decimal import Decimal

    from fxcrm.adapters.platforms.base import BalanceOpKind, NewAccountSpec
    from fxcrm.adapters.platforms.factory import build_gateway
    from fxcrm.core.config import Settings
    from fxcrm.demo_book import DEMO_BOOK_SIZE, demo_book_client_id, demo_book_email
    from fxcrm.seed import MT5_CONFIG, OTHER_SERVERS

    accounts_per_platform = accounts_per_platform or DEMO_BOOK_SIZE

    settings = Settings(env="dev")
    servers = {"mt5": ("https://127.0.0.1:7101", dict(MT5_CONFIG))}
    servers |= {
        platform: (url, dict(config)) for platform, _, url, config in OTHER_SERVERS.values()
    }
    for platform, (url, config) in servers.items():
        gateway = build_gateway(platform, url, config, settings)
        try:
            if await gateway.list_accounts(None):
                continue
            for n in range(accounts_per_platform):
                ref = await gateway.create_account(
                    NewAccountSpec(
                        group="real\\pro\\std" if n % 4 == 0 else "real\\retail\\std",
                        leverage=100,
                        first_name="Demo",
                        last_name=f"Trader {n:02d}",
                        email=demo_book_email(platform, n),
                        country="CY",
                        client_id=demo_book_client_id(platform, n),
                        main_password=DEMO_MAIN_PASSWORD,
                        investor_password=DEMO_INVESTOR_PASSWORD,
                    )
                )
                amount = Decimal(1000 * (1 + (n * 7) % 25))
                await gateway.balance_op(ref.login, BalanceOpKind.DEPOSIT, amount, f"demo-{n:02d}")
            log.info("demo book created", platform=platform, accounts=accounts_per_platform)
        except Exception:  # one platform's trouble must not stop the others' demo
            log.exception("demo book not created", platform=platform)
        finally:
            await gateway.close()


async def run_platform_simulators(
    var: Path,
    deals_per_second: float = 2.0,
    stop: asyncio.Event | None = None,
    *,
    pace: Literal["deals", "closed"] = "deals",
    state_files: bool = True,
) -> None:
    """Serves until SIGINT/SIGTERM, or until `stop` is set when the caller gives one.

    `pace="closed"` counts only closing deals towards `deals_per_second` (what fxcrm ingests);
    `state_files=False` keeps the simulators in memory (benchmarks: nothing to write or restore)."""
    certfile, keyfile = ensure_self_signed_cert(var / "certs")
    servers: list[uvicorn.Server] = []
    states: list[Any] = []
    for sim in SIMULATORS:
        state, app = sim.build(var / f"{sim.name}-simulator.json" if state_files else None)
        states.append(state)
        config = uvicorn_config(
            app,
            "127.0.0.1",
            sim.port,
            certfile if sim.tls else None,
            keyfile if sim.tls else None,
            keep_alive=120,  # MT5 sessions live on the connection
        )
        servers.append(_EmbeddedServer(config))
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

    async def stop_servers() -> None:
        assert stop is not None
        await stop.wait()
        for server in servers:
            server.should_exit = True

    async def seed_when_listening() -> None:
        # uvicorn exposes only a `started` flag to wait on.
        while not all(server.started for server in servers):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        await seed_demo_book()

    log.info(
        "platform simulators",
        ports={s.name: s.port for s in SIMULATORS},
        deals_per_second=deals_per_second,
    )
    try:
        await asyncio.gather(
            *(server.serve() for server in servers),
            run_realtime(states, deals_per_second, stop, pace=pace),
            seed_when_listening(),
            stop_servers(),
        )
    finally:
        for state in states:  # fills are saved only now and then (persistence.py)
            state.save()
