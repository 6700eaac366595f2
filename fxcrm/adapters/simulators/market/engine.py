"""The market engine: simulated traders trading on any `SimulatedPlatform`.

Prices follow a seeded geometric random walk per instrument (bid/ask from the typical spread).
Each account gets a trader profile (scalper, day trader, swing, hedger, gambler) that decides how
often it trades, how big, how long it holds, whether it closes in parts, hedges or sets SL/TP.
The engine keeps only open positions; every deal goes straight to the platform as a `SimFill`.

Two clocks share one event loop (`MarketEngine.advance_to`):
- `generate(platforms, start, end, deals_target)`: simulated time, as fast as possible;
- `run_realtime(platforms, rate_per_second, stop_event)`: paced by the wall clock, for `make dev`.

Money is Decimal and rounded to cents at the fill; the random walk and the risk checks (stop-out
distance, sizing) run on floats, which only decide *when* something happens, never an amount.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from typing import Literal

from fxcrm.adapters.simulators.market.contract import SimAccountInfo, SimFill, SimulatedPlatform
from fxcrm.adapters.simulators.market.instruments import (
    INSTRUMENTS,
    Instrument,
    Rates,
    money,
    position_profit,
)

log = logging.getLogger(__name__)

Side = Literal["buy", "sell"]
Reason = Literal["client", "stop_out", "sl", "tp"]
Entry = Literal["in", "out", "inout", "out_by"]

LOT_STEP = Decimal("0.01")
MIN_LOTS = Decimal("0.01")
MAX_LOTS = Decimal(5)
DAY = 86_400.0
WEEK = 7 * DAY
# Seconds since Monday 00:00 UTC: FX, metals and indices close Friday 21:00 to Sunday 21:00.
_WEEKEND_START = 4 * DAY + 21 * 3600
_WEEKEND_END = 6 * DAY + 21 * 3600
_MONDAY_OFFSET = 3 * DAY  # 1970-01-01 was a Thursday
DEALS_PER_OPEN = 2.3  # one entry, one exit, sometimes a partial exit

_OPEN, _EXIT, _RISK, _ROLLOVER, _CALIBRATE = range(5)


@dataclass(frozen=True)
class TraderProfile:
    name: str
    activity: float  # relative number of decisions per unit of time
    max_open: int  # at this many open positions the trader closes before opening again
    margin_use: tuple[float, float]  # share of equity put up as margin per new position
    hold_seconds: tuple[float, float]  # holding time, log-uniform between the two
    partial_prob: float  # closes 30-70% first, the rest later
    sl_tp_prob: float
    hedge_prob: float = 0.0  # hedging accounts: opens the opposite side of an open position
    reverse_prob: float = 0.25  # netting accounts: trades against the open position
    kinds: tuple[tuple[str, float], ...] = (
        ("fx", 0.65),
        ("metal", 0.15),
        ("index", 0.12),
        ("crypto", 0.08),
    )


PROFILES: dict[str, TraderProfile] = {
    p.name: p
    for p in (
        TraderProfile("scalper", 10.0, 2, (0.02, 0.15), (30, 900), 0.10, 0.6),
        TraderProfile("day_trader", 3.0, 3, (0.03, 0.20), (900, 8 * 3600), 0.35, 0.5),
        TraderProfile(
            "swing", 0.6, 5, (0.02, 0.10), (8 * 3600, 10 * DAY), 0.40, 0.7, reverse_prob=0.1
        ),
        TraderProfile("hedger", 2.0, 6, (0.03, 0.15), (3600, 3 * DAY), 0.30, 0.3, hedge_prob=0.5),
        TraderProfile(
            "gambler",
            2.0,
            3,
            (0.4, 0.9),
            (300, 2 * DAY),
            0.15,
            0.1,
            reverse_prob=0.4,
            kinds=(("fx", 0.4), ("metal", 0.3), ("index", 0.1), ("crypto", 0.2)),
        ),
    )
}
DEFAULT_PROFILE_MIX: tuple[tuple[str, float], ...] = (
    ("scalper", 0.15),
    ("day_trader", 0.35),
    ("swing", 0.25),
    ("hedger", 0.10),
    ("gambler", 0.15),
)


@dataclass
class GenerationStats:
    deals: int = 0
    closed: int = 0  # deals that close (part of) a position: what fxcrm ingests as closed deals
    opened: int = 0
    partial_closes: int = 0
    reversals: int = 0
    stop_outs: int = 0
    sl_hits: int = 0
    tp_hits: int = 0
    open_positions: int = 0
    accounts: int = 0
    simulated_until: datetime | None = None
    elapsed_seconds: float = 0.0

    @property
    def deals_per_second(self) -> float:
        return self.deals / self.elapsed_seconds if self.elapsed_seconds else 0.0


@dataclass(eq=False)
class _Account:
    platform: SimulatedPlatform
    login: int
    currency: str
    leverage: int
    hedging: bool
    balance: Decimal
    profile: TraderProfile
    rng: random.Random
    positions: dict[int, _Position] = field(default_factory=dict)
    by_symbol: dict[str, _Position] = field(default_factory=dict)  # netting accounts
    active: bool = True
    risk_pending: bool = False


@dataclass(eq=False)
class _Position:
    id: int
    account: _Account
    inst: Instrument
    side: Side
    lots: Decimal
    open_price: Decimal
    opened: float
    margin: float  # account currency, float: for risk checks only
    swap: Decimal = Decimal(0)
    sl: float | None = None
    tp: float | None = None
    exit_token: int = 0
    partial_done: bool = False
    partial_planned: bool = False
    alive: bool = True

    @property
    def direction(self) -> int:
        return 1 if self.side == "buy" else -1


def _week_position(ts: float) -> float:
    return (ts + _MONDAY_OFFSET) % WEEK


def market_open(inst: Instrument, ts: float) -> bool:
    if inst.trades_on_weekends:
        return True
    return not _WEEKEND_START <= _week_position(ts) < _WEEKEND_END


class _Market:
    """Mid prices as floats (the walk), quotes as Decimals (the fills), cached per step."""

    def __init__(self, instruments: Sequence[Instrument], rng: random.Random) -> None:
        self.instruments = list(instruments)
        self.index = {inst.symbol: n for n, inst in enumerate(self.instruments)}
        self.mid = [float(inst.start_price) for inst in self.instruments]
        self.half_spread = [float(inst.spread_points * inst.point) / 2 for inst in self.instruments]
        self.vol = [inst.daily_volatility for inst in self.instruments]
        self._all = list(range(len(self.instruments)))
        self._always_open = [
            n for n, inst in enumerate(self.instruments) if inst.trades_on_weekends
        ]
        self.rng = rng
        self._quotes: dict[str, tuple[Decimal, Decimal]] = {}
        self._mids: dict[str, Decimal] | None = None
        self._usd: dict[str, float] | None = None

    def step(self, seconds: float, now: float) -> list[int]:
        """Moves every open market; returns the indexes that moved."""
        weekday_open = not _WEEKEND_START <= _week_position(now) < _WEEKEND_END
        moved = self._all if weekday_open else self._always_open
        if not moved:
            return moved
        scale = math.sqrt(seconds / DAY)
        gauss = self.rng.gauss
        mid, vol = self.mid, self.vol
        for n in moved:
            sigma = vol[n] * scale
            mid[n] *= math.exp(gauss(0.0, sigma) - sigma * sigma / 2)
        self._quotes.clear()
        self._mids = None
        self._usd = None
        return moved

    def set_mid(self, symbol: str, price: Decimal | float) -> None:
        self.mid[self.index[symbol]] = float(price)
        self._quotes.clear()
        self._mids = None
        self._usd = None

    def bid_ask_f(self, n: int) -> tuple[float, float]:
        half = self.half_spread[n]
        return self.mid[n] - half, self.mid[n] + half

    def quote(self, symbol: str) -> tuple[Decimal, Decimal]:
        cached = self._quotes.get(symbol)
        if cached is None:
            n = self.index[symbol]
            inst = self.instruments[n]
            spread = inst.spread_points * inst.point
            bid = Decimal(format(self.mid[n] - self.half_spread[n], f".{inst.digits}f"))
            cached = (bid, bid + spread)
            self._quotes[symbol] = cached
        return cached

    def mids(self) -> dict[str, Decimal]:
        if self._mids is None:
            self._mids = {
                inst.symbol: Decimal(format(self.mid[n], f".{inst.digits}f"))
                for n, inst in enumerate(self.instruments)
            }
        return self._mids

    def usd_value(self, currency: str) -> float:
        """What one unit of `currency` is worth in USD (floats, for risk checks)."""
        if self._usd is None:
            usd = {"USD": 1.0}
            for n, inst in enumerate(self.instruments):
                if inst.kind != "fx":
                    continue
                if inst.quote == "USD":
                    usd[inst.base] = self.mid[n]
                elif inst.base == "USD":
                    usd[inst.quote] = 1 / self.mid[n]
            self._usd = usd
        return self._usd.get(currency, 1.0)


class MarketEngine:
    """Traders on one or more simulated platforms, driven by `advance_to(moment)`."""

    def __init__(
        self,
        platforms: Iterable[SimulatedPlatform] = (),
        *,
        seed: int = 0,
        start: datetime | None = None,
        instruments: Iterable[Instrument] | None = None,
        profiles: Mapping[str, TraderProfile] | None = None,
        profile_mix: Sequence[tuple[str, float]] = DEFAULT_PROFILE_MIX,
        profile_for: Callable[[SimAccountInfo], str | None] | None = None,
        stop_out_level: Decimal = Decimal(50),
        open_rate_per_second: float = 0.5,
        price_step_seconds: float = 60.0,
        mark_every_seconds: float = 60.0,
        rollover_hour_utc: int = 0,
        first_position_id: int = 10_000_000,
        min_balance: Decimal = Decimal(10),
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.market = _Market(list(instruments or INSTRUMENTS.values()), random.Random(seed + 1))
        self.instruments = {inst.symbol: inst for inst in self.market.instruments}
        self.rates = Rates(self.instruments)
        self._by_kind: dict[str, list[Instrument]] = {}
        for inst in self.market.instruments:
            self._by_kind.setdefault(inst.kind, []).append(inst)
        self.profiles = dict(profiles or PROFILES)
        self.profile_mix = list(profile_mix)
        self.profile_for = profile_for
        self.stop_out_level = float(stop_out_level)
        self.open_rate = open_rate_per_second
        self.price_step = price_step_seconds
        self.mark_every = mark_every_seconds
        self.rollover_hour = rollover_hour_utc
        self.min_balance = min_balance
        self.stats = GenerationStats()
        self.platforms: list[SimulatedPlatform] = []
        self.accounts: dict[tuple[int, int], _Account] = {}
        self.positions: dict[int, _Position] = {}
        self._next_position = first_position_id
        self._activity_total = 0.0
        self._rate_factor = 1.0
        self._events: list[tuple[float, int, int, object]] = []
        self._seq = 0
        self._stops: dict[str, list[list[tuple[float, int, float]]]] = {
            symbol: [[], [], [], []] for symbol in self.instruments
        }
        self.now = (start or datetime.now(UTC)).timestamp()
        self._next_price = self.now + self.price_step
        self._next_mark = self.now
        self._schedule(self._next_rollover(self.now), _ROLLOVER, None)
        for platform in platforms:
            self.add_platform(platform)

    # --- setup -------------------------------------------------------------------------------

    def add_platform(self, platform: SimulatedPlatform) -> None:
        self.platforms.append(platform)
        self.refresh_accounts()

    def refresh_accounts(self) -> None:
        """Picks up new accounts and external balance changes; stops trading disabled ones."""
        seen: set[tuple[int, int]] = set()
        for index, platform in enumerate(self.platforms):
            for info in platform.sim_accounts():
                key = (index, info.login)
                seen.add(key)
                account = self.accounts.get(key)
                if account is None:
                    self._add_account(platform, key, info)
                else:
                    account.balance = info.balance
                    account.leverage = info.leverage or account.leverage
                    if not account.active:
                        account.active = True
                        self._activity_total += account.profile.activity
                        self._schedule_open(account)
        for key, account in self.accounts.items():
            if key not in seen and account.active:
                account.active = False
                self._activity_total -= account.profile.activity
        self.stats.accounts = sum(1 for a in self.accounts.values() if a.active)

    def _add_account(
        self, platform: SimulatedPlatform, key: tuple[int, int], info: SimAccountInfo
    ) -> None:
        rng = random.Random(f"{self.seed}:{platform.platform}:{key[0]}:{info.login}")
        name = self.profile_for(info) if self.profile_for else None
        if name is None:
            names, weights = zip(*self.profile_mix, strict=True)
            name = rng.choices(names, weights)[0]
        account = _Account(
            platform=platform,
            login=info.login,
            currency=info.currency,
            leverage=max(1, info.leverage),
            hedging=info.hedging,
            balance=info.balance,
            profile=self.profiles[name],
            rng=rng,
        )
        self.accounts[key] = account
        self._activity_total += account.profile.activity
        self._schedule_open(account)

    def account(self, platform: SimulatedPlatform, login: int) -> _Account:
        index = next(n for n, p in enumerate(self.platforms) if p is platform)
        return self.accounts[(index, login)]

    # --- clock -------------------------------------------------------------------------------

    @property
    def moment(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    def advance_to(self, moment: datetime | float, *, max_deals: int | None = None) -> None:
        """Moves prices and runs every decision, exit, swap and stop-out due until `moment`."""
        until = moment.timestamp() if isinstance(moment, datetime) else moment
        events = self._events
        while True:
            if max_deals is not None and self.stats.deals >= max_deals:
                return
            next_event = events[0][0] if events else math.inf
            if self._next_price <= next_event:
                if self._next_price > until:
                    break
                self.now = self._next_price
                self._next_price += self.price_step
                self._price_step()
            else:
                if next_event > until:
                    break
                when, _, kind, payload = heapq.heappop(events)
                self.now = when
                self._handle(kind, payload)
        self.now = max(self.now, until)

    def _schedule(self, when: float, kind: int, payload: object) -> None:
        self._seq += 1
        heapq.heappush(self._events, (when, self._seq, kind, payload))

    def _schedule_open(self, account: _Account) -> None:
        if not account.active or self._activity_total <= 0:
            return
        rate = self.open_rate * self._rate_factor * account.profile.activity / self._activity_total
        self._schedule(self.now + account.rng.expovariate(max(rate, 1e-9)), _OPEN, account)

    def _next_rollover(self, after: float) -> float:
        day_start = after - after % DAY
        candidate = day_start + self.rollover_hour * 3600
        return candidate if candidate > after else candidate + DAY

    def _handle(self, kind: int, payload: object) -> None:
        if kind == _OPEN:
            assert isinstance(payload, _Account)
            if payload.active:
                self._schedule_open(payload)
                self._decide(payload)
        elif kind == _EXIT:
            assert isinstance(payload, tuple)
            position, token = payload
            if position.alive and position.exit_token == token:
                self._scheduled_exit(position)
        elif kind == _RISK:
            assert isinstance(payload, _Account)
            self._risk_check(payload)
        elif kind == _ROLLOVER:
            self._rollover()
            self._schedule(self.now + DAY, _ROLLOVER, None)
        elif kind == _CALIBRATE:
            assert isinstance(payload, tuple)
            self._calibrate(*payload)

    # --- prices ------------------------------------------------------------------------------

    def _price_step(self) -> None:
        moved = self.market.step(self.price_step, self.now)
        for n in moved:
            self._trigger_stops(n)
        if self.now >= self._next_mark:
            self._next_mark = self.now + self.mark_every
            self.mark_prices()

    def mark_prices(self) -> None:
        mids = self.market.mids()
        for platform in self.platforms:
            platform.sim_mark_prices(mids)

    def set_price(self, symbol: str, mid: Decimal | float) -> None:
        """Moves one market by hand (tests, demos); SL/TP are checked at once."""
        self.market.set_mid(symbol, mid)
        self._trigger_stops(self.market.index[symbol])

    def quote(self, symbol: str) -> tuple[Decimal, Decimal]:
        return self.market.quote(symbol)

    def _trigger_stops(self, n: int) -> None:
        inst = self.market.instruments[n]
        heaps = self._stops[inst.symbol]
        if not any(heaps):
            return
        bid, ask = self.market.bid_ask_f(n)
        buy_sl, buy_tp, sell_sl, sell_tp = heaps
        # key order: buy SL highest first, buy TP lowest, sell SL lowest, sell TP highest.
        while buy_sl and -buy_sl[0][0] >= bid:
            self._stop_hit(heapq.heappop(buy_sl), "buy", "sl")
        while buy_tp and buy_tp[0][0] <= bid:
            self._stop_hit(heapq.heappop(buy_tp), "buy", "tp")
        while sell_sl and sell_sl[0][0] <= ask:
            self._stop_hit(heapq.heappop(sell_sl), "sell", "sl")
        while sell_tp and -sell_tp[0][0] >= ask:
            self._stop_hit(heapq.heappop(sell_tp), "sell", "tp")

    def _stop_hit(self, entry: tuple[float, int, float], side: str, which: Reason) -> None:
        _, position_id, level = entry
        position = self.positions.get(position_id)
        if position is None or position.side != side:
            return
        if (position.sl if which == "sl" else position.tp) != level:
            return
        if which == "sl":
            self.stats.sl_hits += 1
        else:
            self.stats.tp_hits += 1
        self.close(position, reason=which)

    def _register_stops(self, position: _Position) -> None:
        heaps = self._stops[position.inst.symbol]
        if position.sl is not None:
            key = -position.sl if position.side == "buy" else position.sl
            heapq.heappush(
                heaps[0 if position.side == "buy" else 2], (key, position.id, position.sl)
            )
        if position.tp is not None:
            key = position.tp if position.side == "buy" else -position.tp
            heapq.heappush(
                heaps[1 if position.side == "buy" else 3], (key, position.id, position.tp)
            )

    def _compact_stops(self) -> None:
        """Drops heap entries of closed positions (they are skipped lazily otherwise)."""
        self._stops = {symbol: [[], [], [], []] for symbol in self.instruments}
        for position in self.positions.values():
            self._register_stops(position)

    # --- swaps -------------------------------------------------------------------------------

    def _rollover(self) -> None:
        rolled = datetime.fromtimestamp(self.now - 1, UTC).weekday()  # the trading day that ends
        mids = self.market.mids()
        for position in self.positions.values():
            inst = position.inst
            if inst.trades_on_weekends:
                nights = 1
            elif rolled >= 5:
                continue
            else:
                nights = 3 if rolled == 2 else 1
            per_lot = inst.swap_long if position.side == "buy" else inst.swap_short
            charge = self.rates.convert(
                per_lot * position.lots * nights, "USD", position.account.currency, mids
            )
            position.swap += money(charge)
        self._compact_stops()

    # --- traders -----------------------------------------------------------------------------

    def _decide(self, account: _Account) -> None:
        rng, profile = account.rng, account.profile
        if account.balance < self.min_balance and not account.positions:
            return
        if len(account.positions) >= profile.max_open:
            position = rng.choice(list(account.positions.values()))
            if market_open(position.inst, self.now):
                self._exit_some(position)
            return
        if account.hedging and account.positions and rng.random() < profile.hedge_prob:
            base = rng.choice(list(account.positions.values()))
            if market_open(base.inst, self.now):
                side: Side = "sell" if base.side == "buy" else "buy"
                self.open(account, base.inst.symbol, side, base.lots, hedge=True)
            return
        inst = self._pick_instrument(account)
        if inst is None:
            return
        existing = account.by_symbol.get(inst.symbol) if not account.hedging else None
        if existing is not None and rng.random() < profile.reverse_prob:
            opposite: Side = "sell" if existing.side == "buy" else "buy"
            factor = Decimal(str(round(rng.uniform(0.3, 2.2), 2)))
            lots = _lots(existing.lots * factor)
            if lots > 0:
                self.trade(account, inst.symbol, opposite, lots)
            return
        side = "buy" if rng.random() < 0.52 else "sell"
        self.open(account, inst.symbol, side)

    def _pick_instrument(self, account: _Account) -> Instrument | None:
        rng = account.rng
        kinds, weights = zip(*account.profile.kinds, strict=True)
        for _ in range(3):
            kind = rng.choices(kinds, weights)[0]
            choices = self._by_kind.get(kind)
            if not choices:
                continue
            inst = rng.choice(choices)
            if market_open(inst, self.now):
                return inst
        crypto = [i for i in self.market.instruments if market_open(i, self.now)]
        return rng.choice(crypto) if crypto else None

    def _margin_per_lot(self, account: _Account, inst: Instrument) -> float:
        n = self.market.index[inst.symbol]
        rate = max(float(inst.margin_rate), 1 / account.leverage)
        conversion = self.market.usd_value(inst.quote) / self.market.usd_value(account.currency)
        return float(inst.contract_size) * self.market.mid[n] * rate * conversion

    def _size(self, account: _Account, inst: Instrument) -> Decimal:
        equity, margin = self.equity_and_margin(account)
        per_lot = self._margin_per_lot(account, inst)
        wanted = equity * account.rng.uniform(*account.profile.margin_use) / per_lot
        affordable = (equity - margin) / per_lot
        return _lots(Decimal(str(round(min(wanted, affordable), 4))))

    def _scheduled_exit(self, position: _Position) -> None:
        if not market_open(position.inst, self.now):
            week = _week_position(self.now)
            delay = _WEEKEND_END - week + position.account.rng.uniform(60, 3600)
            self._schedule_exit(position, delay)
            return
        self._exit_some(position)

    def _exit_some(self, position: _Position) -> None:
        rng = position.account.rng
        if position.partial_planned and not position.partial_done:
            part = _lots(position.lots * Decimal(str(round(rng.uniform(0.3, 0.7), 2))))
            if 0 < part < position.lots:
                position.partial_done = True
                self.stats.partial_closes += 1
                self.close(position, part)
                remaining = position.account.profile.hold_seconds[0]
                self._schedule_exit(position, rng.uniform(remaining, remaining * 4))
                return
        self.close(position)

    def _schedule_exit(self, position: _Position, delay: float) -> None:
        position.exit_token += 1
        self._schedule(self.now + delay, _EXIT, (position, position.exit_token))

    # --- trading primitives --------------------------------------------------------------------

    def open(
        self,
        account: _Account,
        symbol: str,
        side: Side,
        lots: Decimal | None = None,
        *,
        sl: Decimal | None = None,
        tp: Decimal | None = None,
        hold_seconds: float | None = None,
        hedge: bool = False,
    ) -> _Position | None:
        """A new position (hedging) or a trade on the symbol's position (netting)."""
        inst = self.instruments[symbol]
        if lots is None:
            lots = self._size(account, inst)
        elif hedge:
            equity, margin = self.equity_and_margin(account)
            affordable = _lots(
                Decimal(str(round((equity - margin) / self._margin_per_lot(account, inst), 4)))
            )
            lots = min(lots, affordable)
        if lots < MIN_LOTS:
            return None
        if not account.hedging and symbol in account.by_symbol:
            return self.trade(account, symbol, side, lots)
        bid, ask = self.market.quote(symbol)
        price = ask if side == "buy" else bid
        position = _Position(
            id=self._next_position,
            account=account,
            inst=inst,
            side=side,
            lots=lots,
            open_price=price,
            opened=self.now,
            margin=self._margin_per_lot(account, inst) * float(lots),
        )
        self._next_position += 1
        self._fill(
            account,
            position.id,
            inst,
            side,
            "in",
            lots,
            price,
            commission=self._fee(account, inst, lots),
        )
        self._track(position)
        profile, rng = account.profile, account.rng
        hold = hold_seconds
        if hold is None:
            low, high = profile.hold_seconds
            hold = math.exp(rng.uniform(math.log(low), math.log(high)))
            position.partial_planned = rng.random() < profile.partial_prob
            if rng.random() < profile.sl_tp_prob and sl is None and tp is None:
                distance = float(price) * inst.daily_volatility * math.sqrt(hold / DAY)
                sl_f = float(price) - position.direction * distance * rng.uniform(1.0, 2.5)
                tp_f = float(price) + position.direction * distance * rng.uniform(0.8, 2.5)
                position.sl, position.tp = sl_f, tp_f
        if sl is not None:
            position.sl = float(sl)
        if tp is not None:
            position.tp = float(tp)
        self._register_stops(position)
        self._schedule_exit(position, hold)
        self.stats.opened += 1
        return position

    def trade(self, account: _Account, symbol: str, side: Side, lots: Decimal) -> _Position | None:
        """Netting: add to, reduce, close or reverse the symbol's one position."""
        position = account.by_symbol.get(symbol)
        if account.hedging or position is None:
            return self.open(account, symbol, side, lots)
        inst = position.inst
        bid, ask = self.market.quote(symbol)
        price = ask if side == "buy" else bid
        if side == position.side:
            fee = self._fee(account, inst, lots)
            self._fill(account, position.id, inst, side, "in", lots, price, commission=fee)
            total = position.lots + lots
            average = (position.open_price * position.lots + price * lots) / total
            position.open_price = average.quantize(inst.point / 100)
            position.margin *= float(total / position.lots)
            position.lots = total
            return position
        if lots <= position.lots:
            self.close(position, lots)
            return position if position.alive else None
        # Reversal: one "inout" deal closes the position and opens the rest the other way.
        self.stats.reversals += 1
        closed = position.lots
        profit = position_profit(
            inst,
            position.side,
            closed,
            position.open_price,
            price,
            account.currency,
            self.market.mids(),
            self.rates,
        )
        swap = money(position.swap)
        self._fill(
            account,
            position.id,
            inst,
            side,
            "inout",
            lots,
            price,
            profit=profit,
            commission=self._fee(account, inst, lots),
            swap=swap,
        )
        position.side = side
        position.lots = lots - closed
        position.open_price = price
        position.opened = self.now
        position.swap = Decimal(0)
        position.sl = position.tp = None
        position.partial_done = False
        position.margin = self._margin_per_lot(account, inst) * float(position.lots)
        low, high = account.profile.hold_seconds
        self._schedule_exit(position, math.exp(account.rng.uniform(math.log(low), math.log(high))))
        return position

    def close(
        self, position: _Position, lots: Decimal | None = None, *, reason: Reason = "client"
    ) -> None:
        """Closes `lots` (all by default) at the market: bid for a buy, ask for a sell."""
        if not position.alive:
            return
        account, inst = position.account, position.inst
        lots = position.lots if lots is None or lots >= position.lots else lots
        bid, ask = self.market.quote(inst.symbol)
        price = bid if position.side == "buy" else ask
        profit = position_profit(
            inst,
            position.side,
            lots,
            position.open_price,
            price,
            account.currency,
            self.market.mids(),
            self.rates,
        )
        if lots == position.lots:
            swap = money(position.swap)
        else:
            swap = money(position.swap * lots / position.lots)
        exit_side: Side = "sell" if position.side == "buy" else "buy"
        self._fill(
            account,
            position.id,
            inst,
            exit_side,
            "out",
            lots,
            price,
            profit=profit,
            commission=self._fee(account, inst, lots),
            swap=swap,
            reason=reason,
        )
        position.swap -= swap
        if lots == position.lots:
            self._untrack(position)
        else:
            position.margin *= float((position.lots - lots) / position.lots)
            position.lots -= lots

    def _fee(self, account: _Account, inst: Instrument, lots: Decimal) -> Decimal:
        if not inst.commission_per_lot:
            return Decimal(0)
        usd = inst.commission_per_lot * lots
        return -money(self.rates.convert(usd, "USD", account.currency, self.market.mids()))

    def _fill(
        self,
        account: _Account,
        position_id: int,
        inst: Instrument,
        side: Side,
        entry: Entry,
        lots: Decimal,
        price: Decimal,
        *,
        profit: Decimal = Decimal(0),
        commission: Decimal = Decimal(0),
        swap: Decimal = Decimal(0),
        reason: Reason = "client",
    ) -> None:
        fill = SimFill(
            login=account.login,
            position_id=position_id,
            symbol=inst.symbol,
            side=side,
            entry=entry,
            lots=lots,
            price=price,
            time=datetime.fromtimestamp(self.now, UTC),
            contract_size=inst.contract_size,
            profit=profit,
            commission=commission,
            swap=swap,
            reason=reason,
        )
        account.platform.sim_apply_fill(fill)
        account.balance += profit + commission + swap
        self.stats.deals += 1
        if entry != "in":
            self.stats.closed += 1

    def _track(self, position: _Position) -> None:
        account = position.account
        account.positions[position.id] = position
        if not account.hedging:
            account.by_symbol[position.inst.symbol] = position
        self.positions[position.id] = position
        self.stats.open_positions = len(self.positions)
        if not account.risk_pending:
            account.risk_pending = True
            self._schedule(self.now + self.price_step, _RISK, account)

    def _untrack(self, position: _Position) -> None:
        position.alive = False
        account = position.account
        account.positions.pop(position.id, None)
        if account.by_symbol.get(position.inst.symbol) is position:
            del account.by_symbol[position.inst.symbol]
        self.positions.pop(position.id, None)
        self.stats.open_positions = len(self.positions)

    # --- risk --------------------------------------------------------------------------------

    def floating(self, position: _Position) -> float:
        """Floating profit plus swap, account currency, float."""
        market = self.market
        bid, ask = market.bid_ask_f(market.index[position.inst.symbol])
        price = bid if position.side == "buy" else ask
        conversion = market.usd_value(position.inst.quote) / market.usd_value(
            position.account.currency
        )
        raw = (price - float(position.open_price)) * float(position.lots) * position.direction
        return raw * float(position.inst.contract_size) * conversion + float(position.swap)

    def equity_and_margin(self, account: _Account) -> tuple[float, float]:
        equity, margin, _ = self._exposure(account)
        return equity, margin

    def _exposure(self, account: _Account) -> tuple[float, float, float]:
        """(equity, margin, one day's standard deviation of the equity), floats."""
        market = self.market
        usd = market.usd_value
        account_usd = usd(account.currency)
        equity = float(account.balance)
        margin = risk = 0.0
        for position in account.positions.values():
            inst = position.inst
            n = market.index[inst.symbol]
            bid, ask = market.bid_ask_f(n)
            price = bid if position.side == "buy" else ask
            size = float(position.lots) * float(inst.contract_size) * usd(inst.quote) / account_usd
            equity += (price - float(position.open_price)) * size * position.direction
            equity += float(position.swap)
            margin += position.margin
            risk += price * size * inst.daily_volatility
        return equity, margin, risk

    def check_stop_out(self, account: _Account) -> int:
        """Closes the biggest loser while the margin level is under the stop-out level."""
        closed = 0
        while account.positions:
            equity, margin = self.equity_and_margin(account)
            if margin <= 0 or equity / margin * 100 >= self.stop_out_level:
                break
            worst = min(account.positions.values(), key=self.floating)
            if not market_open(worst.inst, self.now):
                break
            self.stats.stop_outs += 1
            self.close(worst, reason="stop_out")
            closed += 1
        return closed

    def _risk_check(self, account: _Account) -> None:
        account.risk_pending = False
        if not account.positions:
            return
        self.check_stop_out(account)
        if not account.positions:
            return
        equity, margin, risk = self._exposure(account)
        # Next look when a five-sigma move could reach the stop-out level (at most a day away).
        distance = equity - margin * self.stop_out_level / 100
        days = (distance / (5 * risk)) ** 2 if risk > 0 and distance > 0 else 0.0
        delay = min(DAY, max(self.price_step, days * DAY))
        account.risk_pending = True
        self._schedule(self.now + delay, _RISK, account)

    # --- rate control ------------------------------------------------------------------------

    def _calibrate(self, start: float, end: float, target: int) -> None:
        """Nudges the decision rate so the deal count tracks the target over the period."""
        elapsed = self.now - start
        expected = target * elapsed / (end - start)
        self.nudge_rate(expected, self.stats.deals, 200)
        self._schedule(self.now + 3600, _CALIBRATE, (start, end, target))

    def nudge_rate(self, expected: float, made: int, slack: float, gain: float = 1.0) -> None:
        """Scales the decision rate by how far `made` deals are behind or ahead of `expected`,
        to the power `gain` (by at most x1.5 or x0.67 a call); `slack` damps small counts."""
        ratio = ((expected + slack) / (made + slack)) ** gain
        self._rate_factor = min(50.0, max(0.05, self._rate_factor * min(1.5, max(0.67, ratio))))


def _lots(value: Decimal) -> Decimal:
    lots = min(MAX_LOTS, value.quantize(LOT_STEP, ROUND_DOWN))
    return lots if lots >= MIN_LOTS else Decimal(0)


def generate(
    platforms: Iterable[SimulatedPlatform],
    start: datetime,
    end: datetime,
    deals_target: int,
    *,
    seed: int = 0,
    **options: object,
) -> GenerationStats:
    """Trades on `platforms` from `start` to `end` in simulated time, as fast as possible, until
    `deals_target` deals are made or `end` is reached. Memory stays flat: the engine keeps only
    open positions (the platforms keep the deals)."""
    if end <= start:
        raise ValueError("end must be after start")
    began = time.perf_counter()
    span = (end - start).total_seconds()
    engine = MarketEngine(
        platforms,
        seed=seed,
        start=start,
        open_rate_per_second=deals_target / span / DEALS_PER_OPEN,
        **options,  # type: ignore[arg-type]
    )
    engine._schedule(engine.now + 3600, _CALIBRATE, (engine.now, end.timestamp(), deals_target))
    engine.advance_to(end, max_deals=deals_target)
    engine.mark_prices()
    engine.stats.simulated_until = engine.moment
    engine.stats.elapsed_seconds = time.perf_counter() - began
    return engine.stats


async def run_realtime(
    platforms: Iterable[SimulatedPlatform],
    rate_per_second: float,
    stop_event: asyncio.Event,
    *,
    seed: int | None = None,
    tick_seconds: float = 0.25,
    refresh_seconds: float = 5.0,
    pace: Literal["deals", "closed"] = "deals",
    calibrate_seconds: float = 1.0,
    **options: object,
) -> GenerationStats:
    """Trades on the wall clock, about `rate_per_second` deals a second across all accounts,
    until `stop_event` is set. New accounts (and deposits) are picked up every `refresh_seconds`.

    The decision rate is recalibrated every `calibrate_seconds` so that the count named by `pace`
    keeps up with the wall clock: every deal (`deals`), or only the deals that close (part of) a
    position (`closed`: what the platforms report as closed deals and fxcrm ingests). Without it
    the rate drifts with the book: traders at their position limit close on every decision,
    traders with no money left make none."""
    now = datetime.now(UTC)
    options.setdefault("price_step_seconds", 1.0)
    options.setdefault("mark_every_seconds", 1.0)
    options.setdefault("first_position_id", int(now.timestamp() * 10) % 2_000_000_000)
    engine = MarketEngine(
        platforms,
        seed=seed if seed is not None else int(now.timestamp()),
        start=now,
        # About one exit per entry, and some positions are closed in parts (DEALS_PER_OPEN).
        open_rate_per_second=rate_per_second
        / (DEALS_PER_OPEN if pace == "deals" else DEALS_PER_OPEN - 1),
        **options,  # type: ignore[arg-type]
    )
    began = time.perf_counter()
    last_refresh = time.monotonic()
    # (when, count) every `calibrate_seconds`: the rate is judged over the last two intervals, not
    # since the start, so a slow start (no position to close yet) is not paid back by a burst, and
    # corrected gently (gain 0.3): a new rate reaches each trader only at its next decision, and a
    # stronger correction made the rate swing between 100 and 350 a second around a 200 target.
    samples: collections.deque[tuple[float, int]] = collections.deque(maxlen=3)

    def paced_count() -> int:
        return engine.stats.closed if pace == "closed" else engine.stats.deals

    while not stop_event.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop_event.wait(), timeout=tick_seconds)
        try:
            if time.monotonic() - last_refresh >= refresh_seconds:
                last_refresh = time.monotonic()
                engine.refresh_accounts()
            clock = time.monotonic()
            if not engine.accounts:
                samples.clear()
            elif not samples:
                samples.append((clock, paced_count()))
            elif clock - samples[-1][0] >= calibrate_seconds:
                since, count = samples[0]
                engine.nudge_rate(
                    rate_per_second * (clock - since),
                    paced_count() - count,
                    max(5.0, rate_per_second * calibrate_seconds / 2),
                    gain=0.3,
                )
                samples.append((clock, paced_count()))
            engine.advance_to(datetime.now(UTC))
        except Exception:  # a platform refusing one fill must not stop the dev market
            log.exception("market engine step failed")
    engine.stats.simulated_until = engine.moment
    engine.stats.elapsed_seconds = time.perf_counter() - began
    return engine.stats


__all__ = [
    "DEFAULT_PROFILE_MIX",
    "PROFILES",
    "GenerationStats",
    "MarketEngine",
    "TraderProfile",
    "generate",
    "market_open",
    "run_realtime",
]
