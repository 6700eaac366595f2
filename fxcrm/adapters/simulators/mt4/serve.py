"""Running the simulator: under uvicorn, in a background thread, or from a shell."""

from __future__ import annotations

import argparse
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from fxcrm.adapters.simulators.mt4.app import create_mt4_simulator
from fxcrm.adapters.simulators.mt4.config import Mt4SimConfig
from fxcrm.adapters.simulators.mt4.state import Mt4SimState
from fxcrm.adapters.simulators.tls import ensure_self_signed_cert

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7105


def _uvicorn_config(
    app: Starlette,
    host: str,
    port: int,
    certfile: Path | str | None = None,
    keyfile: Path | str | None = None,
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
        timeout_graceful_shutdown=1,
        lifespan="off",
        log_level="warning",
    )


class Mt4SimulatorThread:
    """The simulator under uvicorn in a background thread (tests, scripts); port 0: a free one."""

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
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def base_url(self) -> str:
        scheme = "https" if self._certfile else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> Mt4SimulatorThread:
        # Bind here, so the port is known (and ours) before the server starts.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._socket = sock
        config = _uvicorn_config(self.app, self.host, self.port, self._certfile, self._keyfile)
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="mt4-simulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("MT4 bridge simulator did not start")
            time.sleep(0.01)
        return self

    def reset(
        self, config: Mt4SimConfig | None = None, *, clock: Callable[[], float] | None = None
    ) -> Mt4SimState:
        """Swap in a fresh state (sessions included): one server, many clean tests."""
        self.state = Mt4SimState(config) if clock is None else Mt4SimState(config, clock=clock)
        self.app.state.mt4_api.state = self.state
        self.app.state.mt4 = self.state
        return self.state

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> Mt4SimulatorThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


async def serve_mt4_simulator(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    config: Mt4SimConfig | None = None,
    certfile: Path | str | None = None,
    keyfile: Path | str | None = None,
) -> None:
    """Serve until cancelled; HTTPS when a certificate is given."""
    app = create_mt4_simulator(config)
    await uvicorn.Server(_uvicorn_config(app, host, port, certfile, keyfile)).serve()


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
    uvicorn.Server(_uvicorn_config(app, args.host, args.port, certfile, keyfile)).run()
