"""cTrader Web Services simulator: the broker REST API (token, traders, changebalance, reports).

`CTraderSimState` is the server (traders, balance history, positions, closed deals; in memory,
optionally saved to JSON) and implements `SimulatedPlatform` so the market engine can trade on
it; `create_ctrader_simulator` puts the REST API in front of it as an ASGI app. As on a real
server, money is ints x 10^moneyDigits, leverage is leverageInCents, times are
`yyyy-MM-ddTHH:mm:ss.SSS` UTC and position reports are CSV with windows of two days at most.

Run it: `python -m fxcrm.adapters.simulators.ctrader` (HTTP on 127.0.0.1:7102, manager 30017).
"""

from fxcrm.adapters.simulators.ctrader.app import create_ctrader_simulator
from fxcrm.adapters.simulators.ctrader.config import (
    DEV_CTRADER_BROKER_NAME,
    DEV_CTRADER_MANAGER_LOGIN,
    DEV_CTRADER_PASSWORD,
    CTraderSimConfig,
    CTraderSimGroup,
    CTraderSimManager,
    CTraderSimSymbol,
)
from fxcrm.adapters.simulators.ctrader.records import (
    CTraderError,
    SimBalanceChange,
    SimClosedRow,
    SimOpenPosition,
    SimTrader,
)
from fxcrm.adapters.simulators.ctrader.serve import (
    DEFAULT_PORT,
    CTraderSimulatorThread,
    main,
    run_ctrader_simulator,
    serve_ctrader_simulator,
)
from fxcrm.adapters.simulators.ctrader.state import CTraderSimState

__all__ = [
    "DEFAULT_PORT",
    "DEV_CTRADER_BROKER_NAME",
    "DEV_CTRADER_MANAGER_LOGIN",
    "DEV_CTRADER_PASSWORD",
    "CTraderError",
    "CTraderSimConfig",
    "CTraderSimGroup",
    "CTraderSimManager",
    "CTraderSimState",
    "CTraderSimSymbol",
    "CTraderSimulatorThread",
    "SimBalanceChange",
    "SimClosedRow",
    "SimOpenPosition",
    "SimTrader",
    "create_ctrader_simulator",
    "main",
    "run_ctrader_simulator",
    "serve_ctrader_simulator",
]
