"""Sirix (Leverate) REST simulator: POST-only JSON, a Bearer token, the server clock in Jerusalem.

`SirixSimState` is the server (users, money, open and closed positions; in memory, optionally saved
to JSON) and a `SimulatedPlatform` for the market engine; `create_sirix_simulator` puts the REST
API in front of it as an ASGI app. Errors are non-2xx answers with
`{"ErrorCode": "<Name>", "Message": "..."}` (see `protocol`).

Run it: `python -m fxcrm.adapters.simulators.sirix` (HTTPS on 127.0.0.1:7104, cert in var/certs,
token `DEV_SIRIX_TOKEN`).
"""

from fxcrm.adapters.simulators.sirix.app import create_sirix_simulator
from fxcrm.adapters.simulators.sirix.config import (
    DEV_SIRIX_TOKEN,
    SERVER_TIMEZONE,
    SirixSimConfig,
    SirixSimGroup,
    SirixSimSymbol,
)
from fxcrm.adapters.simulators.sirix.protocol import SirixError
from fxcrm.adapters.simulators.sirix.records import (
    SimClosedPosition,
    SimOpenPosition,
    SimTransaction,
    SimUser,
)
from fxcrm.adapters.simulators.sirix.serve import (
    DEFAULT_PORT,
    SirixSimulatorThread,
    main,
    run_sirix_simulator,
    serve_sirix_simulator,
)
from fxcrm.adapters.simulators.sirix.state import SirixSimState

__all__ = [
    "DEFAULT_PORT",
    "DEV_SIRIX_TOKEN",
    "SERVER_TIMEZONE",
    "SimClosedPosition",
    "SimOpenPosition",
    "SimTransaction",
    "SimUser",
    "SirixError",
    "SirixSimConfig",
    "SirixSimGroup",
    "SirixSimState",
    "SirixSimSymbol",
    "SirixSimulatorThread",
    "create_sirix_simulator",
    "main",
    "run_sirix_simulator",
    "serve_sirix_simulator",
]
