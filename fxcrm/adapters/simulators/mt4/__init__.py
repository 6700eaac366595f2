"""MT4 bridge simulator: fxcrm's bridge contract (docs/mt4-bridge.md) over a simulated MT4 server.

`Mt4SimState` is the MT4 server (users, TradeRecords, money, manager sessions; in memory,
optionally saved to JSON) and `create_mt4_simulator` puts the signed REST contract in front of it
as an ASGI app. Times on the wire are unix seconds in server time (UTC+2 by default).

Run it: `python -m fxcrm.adapters.simulators.mt4` (HTTP on 127.0.0.1:7105, dev key in config).
"""

from fxcrm.adapters.simulators.mt4.app import create_mt4_simulator
from fxcrm.adapters.simulators.mt4.config import (
    DEV_MT4_KEY_ID,
    DEV_MT4_READONLY_KEY_ID,
    DEV_MT4_READONLY_SECRET,
    DEV_MT4_SECRET,
    Mt4SimConfig,
    Mt4SimGroup,
    Mt4SimKey,
    Mt4SimSymbol,
)
from fxcrm.adapters.simulators.mt4.protocol import BridgeError
from fxcrm.adapters.simulators.mt4.records import TradeRec, UserRec
from fxcrm.adapters.simulators.mt4.serve import (
    DEFAULT_PORT,
    Mt4SimulatorThread,
    main,
    serve_mt4_simulator,
)
from fxcrm.adapters.simulators.mt4.state import Mt4SimState, group_matches, valid_password

__all__ = [
    "DEFAULT_PORT",
    "DEV_MT4_KEY_ID",
    "DEV_MT4_READONLY_KEY_ID",
    "DEV_MT4_READONLY_SECRET",
    "DEV_MT4_SECRET",
    "BridgeError",
    "Mt4SimConfig",
    "Mt4SimGroup",
    "Mt4SimKey",
    "Mt4SimState",
    "Mt4SimSymbol",
    "Mt4SimulatorThread",
    "TradeRec",
    "UserRec",
    "create_mt4_simulator",
    "group_matches",
    "main",
    "serve_mt4_simulator",
    "valid_password",
]
