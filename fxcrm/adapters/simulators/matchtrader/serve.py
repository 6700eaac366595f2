"""Running the simulator: under uvicorn, in a background thread, or from a shell."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from fxcrm.adapters.simulators.matchtrader.app import create_matchtrader_simulator
from fxcrm.adapters.simulators.matchtrader.config import MatchTraderSimConfig
from fxcrm.adapters.simulators.matchtrader.state import MatchTraderSimState
from fxcrm.adapters.simulators.serving import SimulatorThread, uvicorn_config
from fxcrm.adapters.simulators.tls import ensure_self_signed_cert

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7103


async def serve_matchtrader_simulator(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    config: MatchTraderSimConfig | None = None,
    certfile: Path | str | None = None,
    keyfile: Path | str | None = None,
) -> None:
    """Serve until cancelled; HTTPS when a certificate is given."""
    app = create_matchtrader_simulator(config)
    await uvicorn.Server(uvicorn_config(app, host, port, certfile, keyfile)).serve()


class MatchTraderSimulatorThread(SimulatorThread):
    """The simulator under uvicorn in a background thread (tests, scripts); port 0: a free one."""

    name = "matchtrader-simulator"

    def __init__(
        self,
        config: MatchTraderSimConfig | None = None,
        *,
        state: MatchTraderSimState | None = None,
        host: str = DEFAULT_HOST,
        port: int = 0,
        certfile: Path | str | None = None,
        keyfile: Path | str | None = None,
        graceful_shutdown: int = 1,
    ) -> None:
        self.state = state or MatchTraderSimState(config)
        self.app = create_matchtrader_simulator(state=self.state)
        self.host = host
        self.port = port
        self._certfile, self._keyfile = certfile, keyfile
        self._graceful_shutdown = graceful_shutdown

    def reset(self, config: MatchTraderSimConfig | None = None) -> MatchTraderSimState:
        """Swap in a fresh state and rate limiter: one server, many clean tests."""
        self.state = MatchTraderSimState(config)
        self.app.state.matchtrader_api.reset(self.state)
        self.app.state.matchtrader = self.state
        return self.state


def run_matchtrader_simulator(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    cert_dir: Path | str | None = None,
    state_file: Path | str | None = "var/matchtrader-simulator.json",
    settle_seconds: float | None = None,
) -> None:
    """Serve in the foreground until interrupted: plain HTTP unless `cert_dir` is given (then a
    self-signed certificate is made there), trading accounts kept in `state_file`."""
    config = MatchTraderSimConfig()
    if state_file:
        config.state_file = Path(state_file)
    if settle_seconds is not None:
        config.settle_seconds = settle_seconds
    certfile = keyfile = None
    if cert_dir is not None:
        certfile, keyfile = ensure_self_signed_cert(cert_dir)
    app = create_matchtrader_simulator(config)
    uvicorn.Server(uvicorn_config(app, host, port, certfile, keyfile)).run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Match-Trader Broker API v1 simulator")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--cert-dir", default=None, help="serve HTTPS with a self-signed cert here")
    parser.add_argument(
        "--state-file",
        default="var/matchtrader-simulator.json",
        help="JSON file that keeps accounts across restarts ('' for memory only)",
    )
    parser.add_argument(
        "--settle-seconds", type=float, default=None, help="manual deposit/withdrawal delay"
    )
    args = parser.parse_args(argv)
    run_matchtrader_simulator(
        args.host,
        args.port,
        cert_dir=args.cert_dir,
        state_file=args.state_file or None,
        settle_seconds=args.settle_seconds,
    )
