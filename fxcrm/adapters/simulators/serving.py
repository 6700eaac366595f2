"""Running a simulator's ASGI app under uvicorn: the one config, and a background-thread server."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any, Self

import uvicorn


def uvicorn_config(
    app: Any,
    host: str,
    port: int,
    certfile: Path | str | None = None,
    keyfile: Path | str | None = None,
    graceful_shutdown: float = 2.0,
    *,
    keep_alive: int = 5,
) -> uvicorn.Config:
    """HTTPS when a certificate is given; quiet logs; no lifespan (simulators keep state in memory)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
        timeout_keep_alive=keep_alive,
        timeout_graceful_shutdown=graceful_shutdown,  # type: ignore[arg-type]
        lifespan="off",
        log_level="warning",
    )


class SimulatorThread:
    """A simulator under uvicorn in a background thread (tests, scripts); port 0: a free one.

    Subclasses set `app`, `host`, `port`, `_certfile`, `_keyfile` (and may set
    `_graceful_shutdown`) in `__init__`, and name themselves with `name`.
    """

    name = "simulator"
    keep_alive_seconds = 5
    app: Any
    host: str
    port: int
    _certfile: Path | str | None
    _keyfile: Path | str | None
    _graceful_shutdown: float = 1.0
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _socket: socket.socket | None = None

    @property
    def base_url(self) -> str:
        scheme = "https" if self._certfile else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> Self:
        # Bind here, so the port is known (and ours) before the server starts.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._socket = sock
        config = uvicorn_config(
            self.app,
            self.host,
            self.port,
            self._certfile,
            self._keyfile,
            self._graceful_shutdown,
            keep_alive=self.keep_alive_seconds,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=self.name, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
