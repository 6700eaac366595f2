"""Match-Trader Broker API v1 simulator: offers, accounts and trading accounts, manual deposits and
withdrawals with their status lifecycle, credit, ledgers and trading data, over REST.

`MatchTraderSimState` is the trading system (also a `SimulatedPlatform` the market engine trades
on) and `create_matchtrader_simulator` puts the Broker API in front of it as an ASGI app: the API
key in `Authorization` (bare or `Bearer`), 429 above the request limit, RFC 3339 UTC times.

Run it: `python -m fxcrm.adapters.simulators.matchtrader` (HTTP on 127.0.0.1:7103).
"""

from fxcrm.adapters.simulators.matchtrader.app import BrokerApi, create_matchtrader_simulator
from fxcrm.adapters.simulators.matchtrader.config import (
    DEV_MATCHTRADER_API_KEY,
    SIM_SYSTEM_UUID,
    MatchTraderSimConfig,
    MtrSimGateway,
    MtrSimOffer,
    MtrSimSymbol,
)
from fxcrm.adapters.simulators.matchtrader.records import MtrError
from fxcrm.adapters.simulators.matchtrader.serve import (
    DEFAULT_PORT,
    MatchTraderSimulatorThread,
    main,
    run_matchtrader_simulator,
    serve_matchtrader_simulator,
)
from fxcrm.adapters.simulators.matchtrader.state import MatchTraderSimState

__all__ = [
    "DEFAULT_PORT",
    "DEV_MATCHTRADER_API_KEY",
    "SIM_SYSTEM_UUID",
    "BrokerApi",
    "MatchTraderSimConfig",
    "MatchTraderSimState",
    "MatchTraderSimulatorThread",
    "MtrError",
    "MtrSimGateway",
    "MtrSimOffer",
    "MtrSimSymbol",
    "create_matchtrader_simulator",
    "main",
    "run_matchtrader_simulator",
    "serve_matchtrader_simulator",
]
