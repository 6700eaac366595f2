"""Running the simulator: under uvicorn, in a background thread, or from a shell."""

from __future__ import annotations

import argparse
import socket
import threading
import time
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from fxcrm.adapters.simulators.sirix.app import create_sirix_simulator
from fxcrm.adapters.simulators.sirix.config import SirixSimConfig
from fxcrm.adapters.simulators.sirix.state import SirixSimState
from fxcrm.adapters.simulators.tls import ensure_self_signed_cert

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7104


def _uvicorn_config(
    app: Starlette,
    host: str,
    port: int,
    certfile: Path | str | None,
    keyfile: Path | str | None,
    graceful_shutdown: int = 2,
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
        timeout_graceful_shutdown=graceful_shutdown,
        lifespan="off",
        log_level="warning",
    )


async def serve_sirix_simulator(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    config: SirixSimConfig | None = None,
    certfile: Path | str | None = None,
    keyfile: Path | str | None = None,
) -> None:
    """Serve until cancelled; HTTPS when a certificate is given."""
    app = create_sirix_simulator(config)
    await uvicorn.Server(_uvicorn_config(app, host, port, certfile, keyfile)).serve()


class SirixSimulatorThread:
    """The simulator under uvicorn in a background thread (tests, scripts); port 0: a free one."""

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
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def base_url(self) -> str:
        scheme = "https" if self._certfile else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> SirixSimulatorThread:
        # Bind here, so the port is known (and ours) before the server starts.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._socket = sock
        config = _uvicorn_config(
            self.app, self.host, self.port, self._certfile, self._keyfile, self._graceful_shutdown
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="sirix-simulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("Sirix simulator did not start")
            time.sleep(0.01)
        return self

    def reset(
        self, config: SirixSimConfig | None = None, *, state: SirixSimState | None = None
    ) -> SirixSimState:
        """Swap in a fresh state: one server, many clean tests."""
        self.state = state or SirixSimState(config)
        self.app.state.sirix_api.state = self.state
        self.app.state.sirix = self.state
        return self.state

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> SirixSimulatorThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


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
    uvicorn.Server(_uvicorn_config(app, host, port, certfile, keyfile)).run()


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
