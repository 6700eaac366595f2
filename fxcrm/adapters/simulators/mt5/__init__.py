"""MT5 Manager Web API simulator: REST paths, auth, rights, retcodes and units of an access server.

`Mt5SimState` is the trade server (users, deals, positions; in memory, optionally saved to JSON)
and `create_mt5_simulator` puts the Web API in front of it as an ASGI app. As on a real server, a
manager session is bound to the TCP connection (the ASGI client address) and to a cookie, every
number on the wire is a JSON string, and times are unix seconds in trade-server time, not UTC.

Run it: `python -m fxcrm.adapters.simulators.mt5` (HTTPS on 127.0.0.1:7101, cert in var/certs).
"""

from fxcrm.adapters.simulators.mt5.app import SESSION_COOKIE, create_mt5_simulator
from fxcrm.adapters.simulators.mt5.config import (
    Mt5SimConfig,
    Mt5SimGroup,
    Mt5SimManager,
    Mt5SimSymbol,
)
from fxcrm.adapters.simulators.mt5.protocol import Mt5Error
from fxcrm.adapters.simulators.mt5.records import SimDeal, SimPosition, SimUser
from fxcrm.adapters.simulators.mt5.serve import (
    DEFAULT_PORT,
    Mt5SimulatorThread,
    main,
    run_mt5_simulator,
    serve_mt5_simulator,
)
from fxcrm.adapters.simulators.mt5.state import Mt5SimState, group_matches, strong_password

__all__ = [
    "DEFAULT_PORT",
    "SESSION_COOKIE",
    "Mt5Error",
    "Mt5SimConfig",
    "Mt5SimGroup",
    "Mt5SimManager",
    "Mt5SimState",
    "Mt5SimSymbol",
    "Mt5SimulatorThread",
    "SimDeal",
    "SimPosition",
    "SimUser",
    "create_mt5_simulator",
    "group_matches",
    "main",
    "run_mt5_simulator",
    "serve_mt5_simulator",
    "strong_password",
]
