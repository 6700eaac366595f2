"""MT5 as a market-engine platform (sim_apply_fill, marks), the client's new reads and its kinds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from fxcrm.adapters.platforms.base import PlatformError, PlatformErrorKind
from fxcrm.adapters.platforms.mt5 import Mt5WebApiClient, retcode_error
from fxcrm.adapters.simulators.market import MarketEngine, SimFill, generate
from fxcrm.adapters.simulators.mt5 import Mt5SimConfig, Mt5SimState, Mt5SimulatorThread
from fxcrm.adapters.simulators.mt5.records import deal_record
from tests.adapters.conftest import TINY_GROUP
from tests.adapters.test_mt5_client import spec

Tls = tuple[Path, Path]
D = Decimal
WHEN = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)


def add_user(
    state: Mt5SimState, group: str = "real\\retail\\std", leverage: int = 100, **kw: int
) -> int:
    user = state.add_user(
        group=group,
        leverage=leverage,
        password_main="Trader#2026a",
        password_investor="Invest#2026b",
        **kw,  # type: ignore[arg-type]
    )
    return user.login


def funded_state(balance: str = "10000", *, netting: bool = False) -> tuple[Mt5SimState, int]:
    config = Mt5SimConfig()
    if netting:
        config.groups[0].hedging = False
    state = Mt5SimState(config)
    login = add_user(state)
    state.balance_op(login, 2, D(balance), "deposit")
    return state, login


def fill(login: int, entry: str, side: str, lots: str, **money: Any) -> SimFill:
    return SimFill(
        login=login,
        position_id=777,
        symbol="EURUSD",
        side=side,  # type: ignore[arg-type]
        entry=entry,  # type: ignore[arg-type]
        lots=D(lots),
        price=D(str(money.pop("price", "1.08500"))),
        time=WHEN,
        contract_size=D(100_000),
        **money,
    )


# --- the simulator as a SimulatedPlatform --------------------------------------------------------


def test_sim_accounts_are_the_users_that_may_trade() -> None:
    state, login = funded_state()
    other = add_user(state, "real\\retail\\eu", 30)
    blocked = add_user(state, rights=0x1 | 0x4)
    infos = {a.login: a for a in state.sim_accounts()}
    assert set(infos) == {login, other}
    assert (infos[login].currency, infos[login].balance, infos[login].hedging) == (
        "USD",
        D("10000.00"),
        True,
    )
    assert infos[other].currency == "EUR"
    assert blocked not in infos


def test_sim_apply_fill_records_deals_positions_and_balance() -> None:
    state, login = funded_state()
    ticket = state.sim_apply_fill(fill(login, "in", "buy", "1.5", commission=D("-5.25")))
    deal = state.deals[int(ticket)]
    assert (deal.action, deal.entry, deal.volume, deal.volume_ext, deal.position_id) == (
        0,
        0,
        15_000,
        150_000_000,
        777,
    )
    assert state.positions[777].volume == 15_000
    state.sim_mark_prices({"EURUSD": D("1.08600")})
    account = state.account(login)
    assert account["Profit"] == D("150.00")
    assert account["Margin"] == D("1627.50")  # 1.5 x 100,000 x 1.085 / 100
    assert account["Equity"] == D("10000") - D("5.25") + D("150.00")

    state.sim_apply_fill(
        fill(login, "out", "sell", "0.5", price="1.08600", profit=D("50"), commission=D("-1.75"))
    )
    assert state.positions[777].volume == 10_000
    last = state.sim_apply_fill(
        fill(
            login,
            "out",
            "sell",
            "1",
            price="1.08100",
            profit=D("-40"),
            commission=D("-3.5"),
            swap=D("-7.2"),
            reason="stop_out",
        )
    )
    assert 777 not in state.positions
    record = deal_record(state.deals[int(last)])
    assert (record["Entry"], record["Reason"], record["Storage"]) == (1, 5, D("-7.20"))
    assert state.users[login].balance == D("10000") - D("5.25") + 50 - D("1.75") - 40 - D(
        "3.5"
    ) - D("7.2")


def test_sim_apply_fill_reversal_flips_the_netting_position() -> None:
    state, login = funded_state(netting=True)
    assert state.sim_accounts()[0].hedging is False
    state.sim_apply_fill(fill(login, "in", "buy", "1"))
    state.sim_apply_fill(fill(login, "inout", "sell", "1.3", price="1.08400", profit=D("-10")))
    position = state.positions[777]
    assert (position.action, position.volume, position.price_open) == (1, 3000, D("1.08400"))
    assert state.deals[max(state.deals)].entry == 2


@pytest.mark.parametrize(("reason", "code"), [("client", 0), ("sl", 3), ("tp", 4), ("stop_out", 5)])
def test_deal_reasons_follow_the_server_enum(reason: str, code: int) -> None:
    state, login = funded_state()
    state.sim_apply_fill(fill(login, "in", "buy", "1"))
    ticket = state.sim_apply_fill(fill(login, "out", "sell", "1", reason=reason))
    assert deal_record(state.deals[int(ticket)])["Reason"] == code


def test_generate_on_the_mt5_state_keeps_balances_consistent() -> None:
    state = Mt5SimState(Mt5SimConfig())
    for _ in range(10):
        login = add_user(state, leverage=200)
        state.balance_op(login, 2, D(5000), "deposit")
    start = datetime(2025, 3, 3, tzinfo=UTC)
    stats = generate([state], start, start + timedelta(days=3), 2000, seed=9)
    assert stats.deals == 2000
    trades = [d for d in state.deals.values() if d.action in (0, 1)]
    assert len(trades) == 2000
    for user in state.users.values():
        moved = sum(
            (
                d.profit + d.commission + d.storage
                for d in state.deals.values()
                if d.login == user.login
            ),
            D(0),
        )
        assert user.balance == moved
    open_ids = {p.position for p in state.positions.values()}
    assert len(open_ids) == stats.open_positions
    assert state.marks  # prices were marked


def test_engine_drives_two_simulators_at_once() -> None:
    first, a = funded_state()
    second, b = funded_state("3000", netting=True)
    engine = MarketEngine([first, second], seed=1, start=WHEN, open_rate_per_second=0.2)
    engine.advance_to(WHEN + timedelta(hours=6))
    assert engine.stats.deals > 0
    assert any(d.login == a and d.action in (0, 1) for d in first.deals.values())
    assert any(d.login == b and d.action in (0, 1) for d in second.deals.values())


# --- client: kinds -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text", "kind"),
    [
        (13, "13 Not found", PlatformErrorKind.NOT_FOUND),
        (3003, "3003 Wrong server", PlatformErrorKind.UNKNOWN_GROUP),
        (3, "3 Invalid parameters: unknown group x", PlatformErrorKind.UNKNOWN_GROUP),
        (3, "3 Invalid parameters: invalid leverage 501", PlatformErrorKind.INVALID_LEVERAGE),
        (3, "3 Invalid parameters", PlatformErrorKind.INVALID_REQUEST),
        (4, "4 Invalid data", PlatformErrorKind.INVALID_REQUEST),
        (3006, "3006 Invalid password", PlatformErrorKind.INVALID_REQUEST),
        (4005, "4005 Money limit", PlatformErrorKind.INVALID_REQUEST),
        (10019, "10019 Not enough money", PlatformErrorKind.INSUFFICIENT_FUNDS),
        (3004, "3004 Login exists", PlatformErrorKind.CONFLICT),
        (8, "8 Not enough permissions", PlatformErrorKind.PERMISSION),
        (12, "12 Too frequent", PlatformErrorKind.RATE_LIMITED),
        (7, "7 Network", PlatformErrorKind.UNAVAILABLE),
        (9, "9 Timeout", PlatformErrorKind.UNAVAILABLE),
        (10, "10 No connection", PlatformErrorKind.UNAVAILABLE),
    ],
)
def test_retcodes_have_kinds(code: int, text: str, kind: PlatformErrorKind) -> None:
    error = retcode_error("cmd", code, text)
    assert error.kind is kind
    assert error.retryable == (
        kind in (PlatformErrorKind.UNAVAILABLE, PlatformErrorKind.RATE_LIMITED)
    )


async def test_account_refusals_have_kinds(mt5_client: Mt5WebApiClient) -> None:
    cases: list[tuple[dict[str, Any], PlatformErrorKind]] = [
        ({"group": "no\\such\\group"}, PlatformErrorKind.UNKNOWN_GROUP),
        ({"group": "real\\retail\\eu", "leverage": 100}, PlatformErrorKind.INVALID_LEVERAGE),
        ({"main_password": "weakpass"}, PlatformErrorKind.INVALID_REQUEST),
    ]
    for changes, kind in cases:
        with pytest.raises(PlatformError) as caught:
            await mt5_client.create_account(spec(**changes))
        assert caught.value.kind is kind, caught.value
    login = (await mt5_client.create_account(spec(leverage=100))).login
    with pytest.raises(PlatformError) as caught:
        await mt5_client.set_leverage(login, 501)
    assert caught.value.kind is PlatformErrorKind.INVALID_LEVERAGE
    with pytest.raises(PlatformError) as caught:
        await mt5_client.set_group(login, "no\\such\\group")
    assert caught.value.kind is PlatformErrorKind.UNKNOWN_GROUP
    with pytest.raises(PlatformError) as caught:
        await mt5_client.get_account(999_999)
    assert caught.value.kind is PlatformErrorKind.NOT_FOUND
    for _ in range(2):
        await mt5_client.create_account(spec(group=TINY_GROUP))


async def test_transport_failures_are_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = Mt5WebApiClient(
        "https://mt5.invalid", 1000, "x", transport=httpx.MockTransport(refuse)
    )
    with pytest.raises(PlatformError) as caught:
        await client.ping()
    assert (caught.value.kind, caught.value.retryable) == (PlatformErrorKind.UNAVAILABLE, True)
    await client.close()


# --- client: positions and accounts --------------------------------------------------------------


async def test_list_open_positions_and_accounts(
    mt5_client: Mt5WebApiClient, mt5_sim: Mt5SimulatorThread
) -> None:
    state = mt5_sim.state
    first = (await mt5_client.create_account(spec(leverage=100))).login
    second = (await mt5_client.create_account(spec(group="real\\pro\\std", leverage=200))).login
    for login in (first, second):
        state.balance_op(login, 2, D(10_000), "deposit")
    state.sim_apply_fill(fill(first, "in", "buy", "1", commission=D("-3.5")))
    state.sim_mark_prices({"EURUSD": D("1.08700")})

    positions = await mt5_client.list_open_positions([first, second], None)
    assert len(positions) == 1
    position = positions[0]
    assert (position.position_id, position.login, position.side, position.volume_lots) == (
        "777",
        first,
        "buy",
        D("1"),
    )
    assert (position.open_price, position.current_price, position.profit) == (
        D("1.08500"),
        D("1.08700"),
        D("200.00"),
    )
    assert position.opened_at == WHEN
    assert await mt5_client.list_open_positions(None, "real\\pro\\*") == []
    assert len(await mt5_client.list_open_positions(None, "real\\*")) == 1
    with pytest.raises(ValueError):
        await mt5_client.list_open_positions(None, None)

    accounts = {a.login: a for a in await mt5_client.list_accounts("real\\*")}
    assert set(accounts) == {first, second}
    assert accounts[first].equity == D("10196.50")
    assert accounts[first].margin == D("1085.00")
    assert accounts[second].leverage == 200
    assert [a.login for a in await mt5_client.list_accounts("real\\pro\\*")] == [second]
    assert {a.login for a in await mt5_client.list_accounts(None)} == {first, second}
