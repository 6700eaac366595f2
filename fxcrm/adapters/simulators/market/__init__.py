"""The simulated market: instruments, prices and traders that trade on any platform simulator.

`generate(platforms, start, end, deals_target)` fills simulators with history as fast as possible;
`run_realtime(platforms, rate_per_second, stop_event)` keeps them trading on the wall clock.
Every simulator state implements `SimulatedPlatform` (contract.py) to receive the deals.
"""

from fxcrm.adapters.simulators.market.contract import SimAccountInfo, SimFill, SimulatedPlatform
from fxcrm.adapters.simulators.market.engine import (
    DEFAULT_PROFILE_MIX,
    PROFILES,
    GenerationStats,
    MarketEngine,
    TraderProfile,
    generate,
    market_open,
    run_realtime,
)
from fxcrm.adapters.simulators.market.instruments import (
    DEFAULT_INSTRUMENTS,
    INSTRUMENTS,
    Instrument,
    Rates,
    money,
    position_profit,
)

__all__ = [
    "DEFAULT_INSTRUMENTS",
    "DEFAULT_PROFILE_MIX",
    "INSTRUMENTS",
    "PROFILES",
    "GenerationStats",
    "Instrument",
    "MarketEngine",
    "Rates",
    "SimAccountInfo",
    "SimFill",
    "SimulatedPlatform",
    "TraderProfile",
    "generate",
    "market_open",
    "money",
    "position_profit",
    "run_realtime",
]
