"""Running the simulator: under uvicorn, in a background thread, or from a shell."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import uvicorn

from fxcrm.adapters.simulators.mt4.app import create_mt4_simulator
from fxcrm.adapters.simulators.mt4.config import Mt4SimConfig
from fxcrm.adapters.simulators.mt4.state import Mt4SimState
from fxcrm.adapters.simulators.serving import SimulatorThread, uvicorn_config
from fxcrm.adapters.simulators.tls import ensure_self_signed_cert

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7105


class Mt4SimulatorThread(SimulatorThread):
    """The simulator under uvicorn in a background thread (tests, scripts); port 0: a free one."""

    name = "mt4-simulator"

    def __init__(
        self,
        config: Mt4SimConfig | None = None,
        *,
        state: Mt4SimState | None = None,
        host: str = DEFAULT_HOST,
        port: int = 0,
        certfile: Path | str | None = None,
        keyfile: Path | str | None = None,
    ) -> None:
        self.state = state or Mt4SimState(config)
        self.app = create_mt4_simulator(state=self.state)
        self.host = host
        self.port = port
        self._certfile, self._keyfile = certfile, keyfile

    def reset(
        self, config: Mt4SimConfig | None = None, *, clock: Callable[[], float] | None = None
    ) -> Mt4SimState:
        """Swap in a fresh state (sessions included): one server, many clean tests."""
        self.state = Mt4SimState(config) if clock is None else Mt4SimState(config, clock=clock)
        self.app.state.mt4_api.state = self.state
        self.app.state.mt4 = self.state
        return self.state


async def serve_mt4_simulator(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    config: Mt4SimConfig | None = None,
    certfile: Path | str | None = None,
    keyfile: Path | str | None = None,
) -> None:
    """Serve until cancelled; HTTPS when a certificate is given."""
    app = create_mt4_simulator(config)
    await uvicorn.Server(uvicorn_config(app, host, port, certfile, keyfile)).serve()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="MT4 bridge simulator (fxcrm contract v1)")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--state-file",
        default="",
        help="JSON file that keeps accounts across restarts (default: memory only)",
    )
    parser.add_argument("--utc-offset", type=float, default=None, help="server UTC offset, h")
    parser.add_argument(
        "--cert-dir", default="", help="serve HTTPS with a self-signed cert made here"
    )
    args = parser.parse_args(argv)
    config = Mt4SimConfig()
    if args.state_file:
        config.state_file = Path(args.state_file)
    if args.utc_offset is not None:
        config.server_utc_offset_hours = args.utc_offset
    certfile = keyfile = None
    if args.cert_dir:
        certfile, keyfile = ensure_self_signed_cert(args.cert_dir)
    app = create_mt4_simulator(config)
    uvicorn.Server(uvicorn_config(app, args.host, args.port, certfile, keyfile)).run()
