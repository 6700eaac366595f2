"""The market engine: determinism, profit math, partial closes, netting, swaps, stop-outs, speed."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from conftest import FakePlatform, accounts

from fxcrm.adapters.simulators.market import (
    INSTRUMENTS,
    MarketEngine,
    SimFill,
    generate,
    position_profit,
    run_realtime,
)

MONDAY = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)  # a Monday, markets open
D = Decimal


def quiet_engine(platform: FakePlatform, **options: object) -> MarketEngine:
    """An engine whose traders never decide on their own: the test drives it."""
    return MarketEngine([platform], seed=7, start=MONDAY, open_rate_per_second=0.0, **options)  # type: ignore[arg-type]


def fills_by_position(fills: list[SimFill]) -> dict[tuple[int, int], list[SimFill]]:
    grouped: dict[tuple[int, int], list[SimFill]] = defaultdict(list)
    for fill in fills:
        grouped[(fill.login, fill.position_id)].append(fill)
    return grouped


# --- determinism ---------------------------------------------------------------------------------


def test_same_seed_same_deals() -> None:
    runs = []
    for _ in range(2):
        fake = FakePlatform(accounts(10))
        generate([fake], MONDAY, MONDAY + timedelta(days=3), 2000, seed=42)
        runs.append(fake.fills)
    assert len(runs[0]) == 2000
    assert runs[0] == runs[1]
    other = FakePlatform(accounts(10))
    generate([other], MONDAY, MONDAY + timedelta(days=3), 2000, seed=43)
    assert other.fills != runs[0]


# --- profit math ---------------------------------------------------------------------------------

MIDS = {"EURUSD": D("1.10000"), "USDJPY": D("150.100"), "GBPUSD": D("1.25000")}


@pytest.mark.parametrize(
    ("symbol", "side", "lots", "open_price", "close_price", "currency", "expected"),
    [
        ("EURUSD", "buy", "1", "1.10000", "1.10100", "USD", "100.00"),
        ("EURUSD", "sell", "0.5", "1.10000", "1.10100", "USD", "-50.00"),
        # 100,000 x 0.100 = 10,000 JPY, at 150.100 yen a dollar.
        ("USDJPY", "buy", "1", "150.000", "150.100", "USD", "66.62"),
        ("XAUUSD", "buy", "1", "2000.00", "2001.00", "USD", "100.00"),
        ("XAUUSD", "sell", "0.1", "2000.00", "1990.00", "USD", "100.00"),
        ("US500", "buy", "1", "5000.00", "5010.00", "USD", "10.00"),
        # A EUR account: 100 USD at 1.10000 dollars a euro.
        ("EURUSD", "buy", "1", "1.10000", "1.10100", "EUR", "90.91"),
        # GBP account, yen profit: through USD.
        ("USDJPY", "buy", "1", "150.000", "150.100", "GBP", "53.30"),
    ],
)
def test_profit_in_account_currency(
    symbol: str,
    side: str,
    lots: str,
    open_price: str,
    close_price: str,
    currency: str,
    expected: str,
) -> None:
    profit = position_profit(
        INSTRUMENTS[symbol], side, D(lots), D(open_price), D(close_price), currency, MIDS
    )
    assert profit == D(expected)


def test_engine_fills_carry_the_profit_commission_and_prices() -> None:
    fake = FakePlatform(accounts(1))
    engine = quiet_engine(fake)
    account = engine.account(fake, 1000)
    engine.set_price("USDJPY", D("150.000"))
    position = engine.open(account, "USDJPY", "buy", D(1), hold_seconds=1e9)
    assert position is not None
    entry = fake.fills[-1]
    bid, ask = engine.quote("USDJPY")
    assert (entry.entry, entry.side, entry.price, entry.lots) == ("in", "buy", ask, D(1))
    assert entry.commission == D("-3.50")
    assert entry.contract_size == D(100_000)
    engine.set_price("USDJPY", D("151.000"))
    engine.close(position)
    exit_ = fake.fills[-1]
    bid, _ = engine.quote("USDJPY")
    expected = ((bid - entry.price) * 100_000 / D("151.000")).quantize(D("0.01"))
    assert (exit_.entry, exit_.side, exit_.price, exit_.profit) == ("out", "sell", bid, expected)
    assert fake.balances[1000] == D(10000) + expected - D("7.00")
    assert account.balance == fake.balances[1000]


# --- partial closes, netting ------------------------------------------------------------------------


def test_partial_close_gives_two_exits_summing_to_the_entry() -> None:
    fake = FakePlatform(accounts(30))
    stats = generate([fake], MONDAY, MONDAY + timedelta(days=10), 6000, seed=3)
    assert stats.partial_closes > 0
    checked = 0
    for fills in fills_by_position(fake.fills).values():
        entries = [f for f in fills if f.entry == "in"]
        exits = [f for f in fills if f.entry == "out"]
        if len(entries) == 1 and len(exits) == 2:
            assert exits[0].lots + exits[1].lots == entries[0].lots
            assert all(f.side != entries[0].side for f in exits)
            checked += 1
    assert checked > 0


def test_manual_partial_close_splits_swap_and_volume() -> None:
    fake = FakePlatform(accounts(1))
    engine = quiet_engine(fake)
    account = engine.account(fake, 1000)
    position = engine.open(account, "EURUSD", "buy", D("1.00"), hold_seconds=1e9)
    assert position is not None
    engine.close(position, D("0.40"))
    engine.close(position)
    exits = [f for f in fake.fills if f.entry == "out"]
    assert [f.lots for f in exits] == [D("0.40"), D("0.60")]
    assert not position.alive


def test_netting_reversal_is_an_inout() -> None:
    fake = FakePlatform(accounts(1, hedging=False))
    engine = quiet_engine(fake)
    account = engine.account(fake, 1000)
    position = engine.open(account, "EURUSD", "buy", D("1.00"), hold_seconds=1e9)
    assert position is not None
    # Same side: adds to the one position.
    assert engine.open(account, "EURUSD", "buy", D("0.50")) is position
    assert position.lots == D("1.50")
    engine.trade(account, "EURUSD", "sell", D("0.50"))  # reduce
    assert position.lots == D("1.00")
    engine.trade(account, "EURUSD", "sell", D("1.30"))  # reverse
    inout = fake.fills[-1]
    assert (inout.entry, inout.side, inout.lots, inout.position_id) == (
        "inout",
        "sell",
        D("1.30"),
        position.id,
    )
    assert (position.side, position.lots, position.alive) == ("sell", D("0.30"), True)
    assert [f.entry for f in fake.fills] == ["in", "in", "out", "inout"]


def test_generated_netting_accounts_hold_one_position_per_symbol() -> None:
    fake = FakePlatform(accounts(20, hedging=False))
    stats = generate([fake], MONDAY, MONDAY + timedelta(days=5), 4000, seed=5)
    assert stats.reversals > 0
    assert any(f.entry == "inout" for f in fake.fills)
    # Replaying the deals: the net volume of each position never changes sign without an inout.
    net: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    for fill in fake.fills:
        signed = fill.lots if fill.side == "buy" else -fill.lots
        key = (fill.login, fill.position_id)
        before = net[key]
        net[key] = before + signed
        if fill.entry == "out":
            assert abs(net[key]) < abs(before) or net[key] == 0
        if fill.entry == "inout":
            assert before != 0 and (net[key] > 0) != (before > 0)


# --- swaps ---------------------------------------------------------------------------------------


def test_swaps_accrue_per_night_with_a_triple_wednesday() -> None:
    fake = FakePlatform(accounts(1))
    engine = quiet_engine(fake)
    account = engine.account(fake, 1000)
    eurusd = INSTRUMENTS["EURUSD"]
    position = engine.open(account, "EURUSD", "buy", D(2), hold_seconds=1e9)
    assert position is not None
    engine.advance_to(MONDAY + timedelta(hours=12))  # Monday 22:00: no rollover yet
    assert position.swap == 0
    engine.advance_to(MONDAY + timedelta(days=2, hours=1))  # Wed 11:00: Mon and Tue nights
    assert position.swap == eurusd.swap_long * 2 * 2
    engine.advance_to(MONDAY + timedelta(days=3, hours=1))  # Thu 11:00: Wednesday counts 3
    assert position.swap == eurusd.swap_long * 2 * 5
    engine.advance_to(MONDAY + timedelta(days=7))  # next Monday: Thu, Fri; no weekend nights
    assert position.swap == eurusd.swap_long * 2 * 7
    engine.close(position)
    assert fake.fills[-1].swap == eurusd.swap_long * 2 * 7


# --- stop-out ------------------------------------------------------------------------------------


def test_overleveraged_gambler_is_stopped_out() -> None:
    fake = FakePlatform(accounts(1, balance="1000", leverage=500))
    engine = quiet_engine(fake)
    account = engine.account(fake, 1000)
    engine.set_price("EURUSD", D("1.08500"))
    big = engine.open(account, "EURUSD", "buy", D(4), hold_seconds=1e9)
    small = engine.open(account, "XAUUSD", "sell", D("0.01"), hold_seconds=1e9)
    assert big is not None and small is not None
    equity, margin = engine.equity_and_margin(account)
    assert equity / margin * 100 > 50
    engine.set_price("EURUSD", D("1.08250"))  # 25 pips x 4 lots = -1000 USD
    assert engine.check_stop_out(account) >= 1
    stop = next(f for f in fake.fills if f.reason == "stop_out")
    assert stop.position_id == big.id  # the biggest loser goes first
    assert stop.profit < D(-900)


def test_generated_gamblers_get_stopped_out() -> None:
    fake = FakePlatform(accounts(20, balance="500", leverage=500))
    stats = generate(
        [fake],
        MONDAY,
        MONDAY + timedelta(days=5),
        3000,
        seed=11,
        profile_for=lambda info: "gambler",
    )
    assert stats.stop_outs > 0
    assert any(f.reason == "stop_out" for f in fake.fills)


def test_sl_and_tp_hits_close_at_the_market() -> None:
    fake = FakePlatform(accounts(1))
    engine = quiet_engine(fake)
    account = engine.account(fake, 1000)
    engine.set_price("EURUSD", D("1.10000"))
    buy = engine.open(account, "EURUSD", "buy", D(1), sl=D("1.09500"), hold_seconds=1e9)
    sell = engine.open(account, "EURUSD", "sell", D(1), tp=D("1.09000"), hold_seconds=1e9)
    assert buy is not None and sell is not None
    engine.set_price("EURUSD", D("1.09400"))
    assert fake.fills[-1].reason == "sl" and not buy.alive and sell.alive
    engine.set_price("EURUSD", D("1.08900"))
    assert fake.fills[-1].reason == "tp" and not sell.alive


# --- speed and memory ----------------------------------------------------------------------------


def test_generating_100k_deals_is_fast_and_flat() -> None:
    fake = FakePlatform(accounts(300, balance="20000"), keep=False)
    tracemalloc.start()
    began = time.perf_counter()
    stats = generate([fake], MONDAY, MONDAY + timedelta(days=30), 100_000, seed=1)
    elapsed = time.perf_counter() - began
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert stats.deals == fake.count == 100_000
    assert fake.marks > 0
    assert elapsed < 30  # a few seconds without tracemalloc's overhead
    assert peak < 40 * 1024 * 1024


# --- realtime ------------------------------------------------------------------------------------


async def test_realtime_trades_until_stopped() -> None:
    fake = FakePlatform(accounts(5))
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_realtime(
            [fake],
            40.0,
            stop,
            seed=1,
            tick_seconds=0.05,
            refresh_seconds=0.2,
            price_step_seconds=0.05,
        )
    )
    await asyncio.sleep(1.0)
    fake.accounts[2000] = accounts(1, first=2000)[0]  # a new account joins
    fake.balances[2000] = Decimal(10000)
    await asyncio.sleep(0.3)
    stop.set()
    stats = await asyncio.wait_for(task, 5)
    assert stats.deals == len(fake.fills) > 5
    assert stats.accounts == 6
    assert fake.marks > 0
