"""Running the simulator: under uvicorn with TLS, in a background thread, or from a shell."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from fxcrm.adapters.simulators.mt5.app import create_mt5_simulator
from fxcrm.adapters.simulators.mt5.config import Mt5SimConfig
from fxcrm.adapters.simulators.mt5.state import Mt5SimState
from fxcrm.adapters.simulators.serving import SimulatorThread, uvicorn_config
from fxcrm.adapters.simulators.tls import ensure_self_signed_cert

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7101
# Keep idle connections long: the session dies with the connection.
KEEPALIVE_SECONDS = 120


async def serve_mt5_simulator(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    config: Mt5SimConfig | None = None,
    certfile: Path | str | None = None,
    keyfile: Path | str | None = None,
) -> None:
    """Serve until cancelled; HTTPS when a certificate is given."""
    app = create_mt5_simulator(config)
    await uvicorn.Server(
        uvicorn_config(app, host, port, certfile, keyfile, keep_alive=KEEPALIVE_SECONDS)
    ).serve()


class Mt5SimulatorThread(SimulatorThread):
    """The simulator under uvicorn in a background thread (tests, scripts); port 0: a free one."""

    name = "mt5-simulator"
    keep_alive_seconds = KEEPALIVE_SECONDS  # the session dies with the connection

    def __init__(
        self,
        config: Mt5SimConfig | None = None,
        *,
        state: Mt5SimState | None = None,
        host: str = DEFAULT_HOST,
        port: int = 0,
        certfile: Path | str | None = None,
        keyfile: Path | str | None = None,
        graceful_shutdown: int = 1,
    ) -> None:
        self.state = state or Mt5SimState(config)
        self.app = create_mt5_simulator(state=self.state)
        self.host = host
        self.port = port
        self._certfile, self._keyfile = certfile, keyfile
        # Idle TLS connections wait for the peer's close_notify; tests should not wait long.
        self._graceful_shutdown = graceful_shutdown

    def reset(self, config: Mt5SimConfig | None = None) -> Mt5SimState:
        """Swap in a fresh state, forgetting every session too: one server, many clean tests."""
        self.state = Mt5SimState(config)
        self.app.state.mt5_api.state = self.state
        self.app.state.mt5 = self.state
        return self.state


def run_mt5_simulator(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    cert_dir: Path | str | None = "var/certs",
    state_file: Path | str | None = "var/mt5-simulator.json",
    utc_offset_hours: float | None = None,
) -> None:
    """Serve in the foreground until interrupted (`make dev`): HTTPS with a self-signed cert made
    in `cert_dir` on first start (plain HTTP when it is None), accounts kept in `state_file`."""
    config = Mt5SimConfig()
    if state_file:
        config.state_file = Path(state_file)
    if utc_offset_hours is not None:
        config.server_utc_offset_hours = utc_offset_hours
    certfile = keyfile = None
    if cert_dir is not None:
        certfile, keyfile = ensure_self_signed_cert(cert_dir)
    app = create_mt5_simulator(config)
    uvicorn.Server(
        uvicorn_config(app, host, port, certfile, keyfile, keep_alive=KEEPALIVE_SECONDS)
    ).run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="MT5 Manager Web API simulator (HTTPS)")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--cert-dir", default="var/certs", help="self-signed certificate made here")
    parser.add_argument(
        "--state-file",
        default="var/mt5-simulator.json",
        help="JSON file that keeps accounts across restarts ('' for memory only)",
    )
    parser.add_argument("--utc-offset", type=float, default=None, help="trade-server UTC offset, h")
    parser.add_argument("--plain-http", action="store_true", help="no TLS (debugging only)")
    args = parser.parse_args(argv)
    run_mt5_simulator(
        args.host,
        args.port,
        cert_dir=None if args.plain_http else args.cert_dir,
        state_file=args.state_file or None,
        utc_offset_hours=args.utc_offset,
    )
