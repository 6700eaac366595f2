"""Running the simulator: under uvicorn, in a background thread, or from a shell."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from fxcrm.adapters.simulators.serving import SimulatorThread, uvicorn_config
from fxcrm.adapters.simulators.sirix.app import create_sirix_simulator
from fxcrm.adapters.simulators.sirix.config import SirixSimConfig
from fxcrm.adapters.simulators.sirix.state import SirixSimState
from fxcrm.adapters.simulators.tls import ensure_self_signed_cert

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7104


async def serve_sirix_simulator(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    config: SirixSimConfig | None = None,
    certfile: Path | str | None = None,
    keyfile: Path | str | None = None,
) -> None:
    """Serve until cancelled; HTTPS when a certificate is given."""
    app = create_sirix_simulator(config)
    await uvicorn.Server(uvicorn_config(app, host, port, certfile, keyfile)).serve()


class SirixSimulatorThread(SimulatorThread):
    """The simulator under uvicorn in a background thread (tests, scripts); port 0: a free one."""

    name = "sirix-simulator"

    def __init__(
        self,
        config: SirixSimConfig | None = None,
        *,
        state: SirixSimState | None = None,
        host: str = DEFAULT_HOST,
        port: int = 0,
        certfile: Path | str | None = None,
        keyfile: Path | str | None = None,
        graceful_shutdown: int = 1,
    ) -> None:
        self.state = state or SirixSimState(config)
        self.app = create_sirix_simulator(state=self.state)
        self.host = host
        self.port = port
        self._certfile, self._keyfile = certfile, keyfile
        self._graceful_shutdown = graceful_shutdown

    def reset(
        self, config: SirixSimConfig | None = None, *, state: SirixSimState | None = None
    ) -> SirixSimState:
        """Swap in a fresh state: one server, many clean tests."""
        self.state = state or SirixSimState(config)
        self.app.state.sirix_api.state = self.state
        self.app.state.sirix = self.state
        return self.state


def run_sirix_simulator(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    cert_dir: Path | str | None = "var/certs",
    state_file: Path | str | None = "var/sirix-simulator.json",
    token: str | None = None,
) -> None:
    """Serve in the foreground until interrupted (`make dev`): HTTPS with a self-signed cert made
    in `cert_dir` on first start (plain HTTP when it is None), accounts kept in `state_file`."""
    config = SirixSimConfig()
    if state_file:
        config.state_file = Path(state_file)
    if token:
        config.tokens = [token]
    certfile = keyfile = None
    if cert_dir is not None:
        certfile, keyfile = ensure_self_signed_cert(cert_dir)
    app = create_sirix_simulator(config)
    uvicorn.Server(uvicorn_config(app, host, port, certfile, keyfile)).run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Sirix (Leverate) REST API simulator (HTTPS)")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--cert-dir", default="var/certs", help="self-signed certificate made here")
    parser.add_argument(
        "--state-file",
        default="var/sirix-simulator.json",
        help="JSON file that keeps accounts across restarts ('' for memory only)",
    )
    parser.add_argument("--token", default=None, help="API token to accept (default: the dev one)")
    parser.add_argument("--plain-http", action="store_true", help="no TLS (debugging only)")
    args = parser.parse_args(argv)
    run_sirix_simulator(
        args.host,
        args.port,
        cert_dir=None if args.plain_http else args.cert_dir,
        state_file=args.state_file or None,
        token=args.token,
    )
