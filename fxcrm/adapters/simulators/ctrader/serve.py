"""Running the simulator: under uvicorn, in a background thread, or from a shell."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from fxcrm.adapters.simulators.ctrader.app import create_ctrader_simulator
from fxcrm.adapters.simulators.ctrader.config import CTraderSimConfig
from fxcrm.adapters.simulators.ctrader.state import CTraderSimState
from fxcrm.adapters.simulators.serving import SimulatorThread, uvicorn_config
from fxcrm.adapters.simulators.tls import ensure_self_signed_cert

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7102


async def serve_ctrader_simulator(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    config: CTraderSimConfig | None = None,
    certfile: Path | str | None = None,
    keyfile: Path | str | None = None,
) -> None:
    """Serve until cancelled; HTTPS when a certificate is given."""
    app = create_ctrader_simulator(config)
    await uvicorn.Server(uvicorn_config(app, host, port, certfile, keyfile)).serve()


class CTraderSimulatorThread(SimulatorThread):
    """The simulator under uvicorn in a background thread (tests, scripts); port 0: a free one."""

    name = "ctrader-simulator"

    def __init__(
        self,
        config: CTraderSimConfig | None = None,
        *,
        state: CTraderSimState | None = None,
        host: str = DEFAULT_HOST,
        port: int = 0,
        certfile: Path | str | None = None,
        keyfile: Path | str | None = None,
        graceful_shutdown: int = 1,
    ) -> None:
        self.state = state or CTraderSimState(config)
        self.app = create_ctrader_simulator(state=self.state)
        self.host = host
        self.port = port
        self._certfile, self._keyfile = certfile, keyfile
        self._graceful_shutdown = graceful_shutdown

    def reset(self, config: CTraderSimConfig | None = None) -> CTraderSimState:
        """Swap in a fresh state (no traders, no tokens): one server, many clean tests."""
        self.state = CTraderSimState(config)
        self.app.state.ctrader_api.state = self.state
        self.app.state.ctrader = self.state
        return self.state


def run_ctrader_simulator(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    cert_dir: Path | str | None = None,
    state_file: Path | str | None = "var/ctrader-simulator.json",
) -> None:
    """Serve in the foreground until interrupted: plain HTTP unless `cert_dir` is given (then
    HTTPS with a self-signed certificate made there), traders kept in `state_file`."""
    config = CTraderSimConfig()
    if state_file:
        config.state_file = Path(state_file)
    certfile = keyfile = None
    if cert_dir is not None:
        certfile, keyfile = ensure_self_signed_cert(cert_dir)
    app = create_ctrader_simulator(config)
    uvicorn.Server(uvicorn_config(app, host, port, certfile, keyfile)).run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="cTrader Web Services simulator")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--cert-dir", default=None, help="serve HTTPS with a self-signed certificate made here"
    )
    parser.add_argument(
        "--state-file",
        default="var/ctrader-simulator.json",
        help="JSON file that keeps traders across restarts ('' for memory only)",
    )
    args = parser.parse_args(argv)
    run_ctrader_simulator(
        args.host, args.port, cert_dir=args.cert_dir, state_file=args.state_file or None
    )
