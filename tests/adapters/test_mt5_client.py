"""fxcrm's MT5 Web API client against the simulator over HTTPS."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from fxcrm.adapters.platforms.base import (
    AccessLevel,
    BalanceOpKind,
    NewAccountSpec,
    PlatformError,
)
from fxcrm.adapters.platforms.mt5 import (
    Mt5WebApiClient,
    client_id_cells,
    client_id_from_cells,
    retcode_error,
)
from fxcrm.adapters.simulators.mt5 import Mt5SimulatorThread
from tests.adapters.conftest import TINY_GROUP, make_client, sim_config

Tls = tuple[Path, Path]


def spec(client_id: str | None = None, **changes: Any) -> NewAccountSpec:
    values: dict[str, object] = {
        "group": "real\\retail\\std",
        "leverage": 30,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "country": "CY",
        "phone": "+35799000000",
        "client_id": client_id or uuid.uuid4().hex,
        "main_password": "Trader#2026a",
        "investor_password": "Invest#2026b",
    }
    values.update(changes)
    return NewAccountSpec.model_validate(values)


async def funded_account(client: Mt5WebApiClient, amount: str = "1000") -> int:
    ref = await client.create_account(spec())
    await client.balance_op(ref.login, BalanceOpKind.DEPOSIT, Decimal(amount), "seed")
    return ref.login


# --- session ----------------------------------------------------------------------------------


async def test_one_session_on_one_connection(
    mt5_client: Mt5WebApiClient, mt5_sim: Mt5SimulatorThread
) -> None:
    for _ in range(5):
        await mt5_client.ping()
    # Every call went through the same connection and the same login.
    assert len(mt5_sim.state.sessions.authenticated()) == 1


async def test_wrong_password_is_not_retryable(mt5_sim: Mt5SimulatorThread, mt5_tls: Tls) -> None:
    client = make_client(mt5_sim, mt5_tls[0], password="Wrong#Pass2026")
    with pytest.raises(PlatformError) as caught:
        await client.ping()
    assert (caught.value.code, caught.value.retryable) == ("auth", False)
    await client.close()


async def test_impostor_server_is_refused(mt5_sim: Mt5SimulatorThread, mt5_tls: Tls) -> None:
    """A server that cannot answer cli_rand does not know the password: no commands are sent."""
    mt5_sim.state.config.fake_cli_rand_answer = True
    client = make_client(mt5_sim, mt5_tls[0])
    with pytest.raises(PlatformError) as caught:
        await client.create_account(spec())
    assert (caught.value.code, caught.value.retryable) == ("auth_server", False)
    assert mt5_sim.state.users == {}
    await client.close()


async def test_logs_in_again_when_the_server_forgets_the_session(
    mt5_client: Mt5WebApiClient, mt5_sim: Mt5SimulatorThread
) -> None:
    await mt5_client.ping()
    mt5_sim.state.sessions.drop_all()
    await mt5_client.ping()
    assert len(mt5_sim.state.sessions.authenticated()) == 1


async def test_logs_in_again_after_the_connection_drops(mt5_tls: Tls) -> None:
    certfile, keyfile = mt5_tls
    sim = Mt5SimulatorThread(sim_config(), certfile=certfile, keyfile=keyfile).start()
    client = make_client(sim, certfile)
    try:
        login = await funded_account(client)
        # Restart on the same port with the same accounts: the kept-alive connection is gone.
        # (Stopped from a thread, so this loop can answer the TLS shutdown meanwhile.)
        await asyncio.to_thread(sim.stop)
        sim = Mt5SimulatorThread(
            state=sim.state, port=sim.port, certfile=certfile, keyfile=keyfile
        ).start()
        assert (await client.get_account(login)).balance == Decimal("1000.00")
    finally:
        await client.close()
        sim.stop()


async def test_server_down_is_retryable(mt5_tls: Tls) -> None:
    certfile, keyfile = mt5_tls
    sim = Mt5SimulatorThread(sim_config(), certfile=certfile, keyfile=keyfile).start()
    sim.stop()
    client = make_client(sim, certfile)
    with pytest.raises(PlatformError) as caught:
        await client.ping()
    assert (caught.value.code, caught.value.retryable) == ("network", True)
    await client.close()


async def test_close_quits_the_session(mt5_sim: Mt5SimulatorThread, mt5_tls: Tls) -> None:
    client = make_client(mt5_sim, mt5_tls[0])
    await client.ping()
    await client.close()
    assert mt5_sim.state.sessions.authenticated() == []


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        *[(code, False) for code in (3, 8, 13, 3004, 3006, 4005, 10019)],
        *[(code, True) for code in (7, 9, 10, 12)],
    ],
)
def test_retcodes_map_to_platform_errors(code: int, retryable: bool) -> None:
    error = retcode_error("user/add", code, f"{code} Text")
    assert (error.code, error.retryable) == (str(code), retryable)


# --- accounts ---------------------------------------------------------------------------------


async def test_create_account_and_find_it_by_client(
    mt5_client: Mt5WebApiClient, mt5_sim: Mt5SimulatorThread
) -> None:
    trader_id = uuid.uuid4().hex
    ref = await mt5_client.create_account(spec(trader_id))
    assert (ref.login, ref.group, ref.leverage) == (500000, "real\\retail\\std", 30)
    user = mt5_sim.state.users[ref.login]
    assert user.profile["ID"] == trader_id
    assert client_id_from_cells(user.api_data) == str(uuid.UUID(trader_id))
    assert user.passwords == {"main": "Trader#2026a", "investor": "Invest#2026b"}
    await mt5_client.create_account(spec())  # someone else

    assert await mt5_client.find_accounts_by_client(trader_id) == [ref]
    assert await mt5_client.find_accounts_by_client(uuid.uuid4().hex) == []
    account = await mt5_client.get_account(ref.login)
    assert account.client_id == trader_id
    assert (account.currency, account.access, account.margin_level) == (
        "USD",
        AccessLevel.FULL,
        None,
    )


async def test_client_found_by_api_data_alone(
    mt5_client: Mt5WebApiClient, mt5_sim: Mt5SimulatorThread
) -> None:
    """If someone blanks the ID field in the MT5 admin, the ApiData cells still tell."""
    trader_id = uuid.uuid4().hex
    ref = await mt5_client.create_account(spec(trader_id))
    mt5_sim.state.users[ref.login].profile["ID"] = ""
    assert await mt5_client.find_accounts_by_client(trader_id) == [ref]


def test_client_id_cells_round_trip() -> None:
    assert client_id_from_cells(client_id_cells("12345")) == "12345"
    some = uuid.uuid4()
    assert client_id_from_cells(client_id_cells(some.hex)) == str(some)
    assert client_id_cells("not-a-number-nor-uuid") == []
    assert client_id_from_cells([{"AppID": "1", "ID": "0", "ValueInt": "5"}]) is None


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"main_password": "weakpass"}, "3006"),
        ({"investor_password": "NoSpecial2026"}, "3006"),
        ({"group": "real\\retail\\eu", "leverage": 100}, "3"),  # EU retail: 1..30
        ({"group": "no\\such\\group"}, "3"),
    ],
)
async def test_create_account_refusals(
    mt5_client: Mt5WebApiClient, changes: dict[str, Any], code: str
) -> None:
    with pytest.raises(PlatformError) as caught:
        await mt5_client.create_account(spec(**changes))
    assert (caught.value.code, caught.value.retryable) == (code, False)


async def test_create_account_when_the_login_range_is_used_up(
    mt5_client: Mt5WebApiClient,
) -> None:
    for _ in range(2):
        await mt5_client.create_account(spec(group=TINY_GROUP))
    with pytest.raises(PlatformError) as caught:
        await mt5_client.create_account(spec(group=TINY_GROUP))
    assert caught.value.code == "3002"


async def test_group_and_leverage_changes(
    mt5_client: Mt5WebApiClient, mt5_sim: Mt5SimulatorThread
) -> None:
    login = (await mt5_client.create_account(spec(leverage=100))).login
    await mt5_client.set_group(login, "real\\pro\\std")
    await mt5_client.set_leverage(login, 500)
    assert (mt5_sim.state.users[login].group, mt5_sim.state.users[login].leverage) == (
        "real\\pro\\std",
        500,
    )
    with pytest.raises(PlatformError) as caught:
        await mt5_client.set_leverage(login, 501)
    assert caught.value.code == "3"
    with pytest.raises(PlatformError) as caught:
        await mt5_client.set_group(login, "real\\retail\\eu")  # 500 is above EU retail's 30
    assert caught.value.code == "3"


async def test_access_levels_are_rights_bits(
    mt5_client: Mt5WebApiClient, mt5_sim: Mt5SimulatorThread
) -> None:
    login = (await mt5_client.create_account(spec())).login
    rights = lambda: mt5_sim.state.users[login].rights  # noqa: E731

    await mt5_client.set_access(login, AccessLevel.NO_TRADING)
    assert rights() & 0x1 and rights() & 0x4
    assert (await mt5_client.get_account(login)).access is AccessLevel.NO_TRADING
    await mt5_client.set_access(login, AccessLevel.DISABLED)
    assert not rights() & 0x1
    assert (await mt5_client.get_account(login)).access is AccessLevel.DISABLED
    await mt5_client.set_access(login, AccessLevel.FULL)
    assert rights() == 0x163  # back to the defaults: enabled, trading allowed, other bits kept
    await mt5_client.set_access(login, AccessLevel.READ_ONLY)
    assert rights() & 0x4


async def test_list_groups(mt5_client: Mt5WebApiClient) -> None:
    groups = await mt5_client.list_groups()
    assert "real\\retail\\std" in groups
    assert groups == [g.name for g in sim_config().groups]


# --- money ------------------------------------------------------------------------------------


async def test_balance_operations(mt5_client: Mt5WebApiClient, mt5_sim: Mt5SimulatorThread) -> None:
    login = (await mt5_client.create_account(spec())).login
    deposit = await mt5_client.balance_op(login, BalanceOpKind.DEPOSIT, Decimal("500.25"), "d-1")
    assert (deposit.amount, deposit.comment) == (Decimal("500.25"), "d-1")
    assert abs(deposit.time - datetime.now(UTC)) < timedelta(seconds=5)  # back in UTC
    await mt5_client.balance_op(login, BalanceOpKind.WITHDRAW, Decimal("100"), "w-1")
    await mt5_client.balance_op(login, BalanceOpKind.CREDIT_IN, Decimal("50"), "c-1")
    await mt5_client.balance_op(login, BalanceOpKind.CREDIT_OUT, Decimal("20"), "c-2")
    await mt5_client.balance_op(login, BalanceOpKind.BONUS, Decimal("10"), "b-1")
    actions = [(d.action, d.profit) for d in mt5_sim.state.deals.values()]
    assert actions == [
        (2, Decimal("500.25")),
        (2, Decimal("-100.00")),
        (3, Decimal("50.00")),
        (3, Decimal("-20.00")),
        (6, Decimal("10.00")),
    ]
    account = await mt5_client.get_account(login)
    assert (account.balance, account.credit, account.equity) == (
        Decimal("410.25"),
        Decimal("30.00"),
        Decimal("440.25"),
    )
    with pytest.raises(PlatformError) as caught:
        await mt5_client.balance_op(login, BalanceOpKind.WITHDRAW, Decimal("1000"), "w-2")
    assert (caught.value.code, caught.value.retryable) == ("10019", False)
    with pytest.raises(PlatformError) as caught:
        await mt5_client.balance_op(login, BalanceOpKind.DEPOSIT, Decimal("2e9"), "big")
    assert caught.value.code == "4005"


async def test_balance_op_argument_checks(mt5_client: Mt5WebApiClient) -> None:
    with pytest.raises(ValueError, match="positive"):
        await mt5_client.balance_op(1, BalanceOpKind.DEPOSIT, Decimal("-1"), "ref")
    with pytest.raises(ValueError, match="31"):
        await mt5_client.balance_op(1, BalanceOpKind.DEPOSIT, Decimal("1"), "r" * 32)


async def test_balance_op_needs_the_accountant_right(
    mt5_client: Mt5WebApiClient, mt5_sim: Mt5SimulatorThread, mt5_tls: Tls
) -> None:
    login = (await mt5_client.create_account(spec())).login
    viewer = make_client(mt5_sim, mt5_tls[0], login=1001, password="Viewer#2026")
    with pytest.raises(PlatformError) as caught:
        await viewer.balance_op(login, BalanceOpKind.DEPOSIT, Decimal("1"), "x")
    assert (caught.value.code, caught.value.retryable) == ("8", False)
    await viewer.close()


async def test_find_balance_op_makes_deposits_retry_safe(mt5_client: Mt5WebApiClient) -> None:
    """The activity's pattern: look for the ref first, post only if it is not there."""
    login = (await mt5_client.create_account(spec())).login
    since = datetime.now(UTC) - timedelta(minutes=5)
    ref = "dep-7f3a9c21e4b0"

    async def deposit_once() -> str:
        found = await mt5_client.find_balance_op(login, ref, since)
        if found is not None:
            return found.ticket
        return (await mt5_client.balance_op(login, BalanceOpKind.DEPOSIT, Decimal(250), ref)).ticket

    first, second = await deposit_once(), await deposit_once()
    assert first == second
    assert (await mt5_client.get_account(login)).balance == Decimal("250.00")
    found = await mt5_client.find_balance_op(login, ref, since)
    assert found is not None and found.amount == Decimal("250.00")
    assert await mt5_client.find_balance_op(login, "other-ref", since) is None
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert await mt5_client.find_balance_op(login, ref, later) is None


# --- deals ------------------------------------------------------------------------------------

T0 = datetime(2026, 3, 10, 22, 30, tzinfo=UTC)  # 01:30 on the 11th in server time (UTC+3)


async def _trading_history(sim: Mt5SimulatorThread, client: Mt5WebApiClient) -> tuple[int, int]:
    first = (await client.create_account(spec())).login
    second = (await client.create_account(spec(group="real\\pro\\std", leverage=100))).login
    state = sim.state
    state.add_trade_deal(first, "EURUSD", "buy", 0, "1", "1.1", time=T0)  # opening: not closed
    state.add_trade_deal(
        first,
        "EURUSD",
        "sell",
        1,
        "1",
        "1.1025",
        profit="250",
        commission="-7",
        storage="-1.5",
        position_id=42,
        time=T0 + timedelta(hours=1),
    )
    state.add_trade_deal(first, "XAUUSD", "buy", 2, "0.25", "2000.5", time=T0 + timedelta(hours=2))
    state.add_trade_deal(first, "EURUSD", 13, 1, "1", "1.1", time=T0 + timedelta(hours=3))
    state.add_trade_deal(first, "EURUSD", 21, 1, "1", "1.1", time=T0 + timedelta(hours=4))
    state.add_trade_deal(second, "GBPUSD", "sell", 3, "0.015", "1.3", time=T0 + timedelta(hours=5))
    state.add_trade_deal(first, "EURUSD", "sell", 1, "1", "1.1", time=T0 + timedelta(days=3))
    await client.balance_op(first, BalanceOpKind.DEPOSIT, Decimal(100), "not-a-trade")
    return first, second


async def test_closed_deals_by_login_in_utc(
    mt5_client: Mt5WebApiClient, mt5_sim: Mt5SimulatorThread
) -> None:
    first, second = await _trading_history(mt5_sim, mt5_client)
    deals = [
        deal
        async for deal in mt5_client.iter_closed_deals(
            [first, second], None, T0, T0 + timedelta(days=1)
        )
    ]
    assert [(d.login, d.symbol, d.side, d.entry) for d in deals] == [
        (first, "EURUSD", "sell", "out"),
        (first, "XAUUSD", "buy", "inout"),
        (second, "GBPUSD", "sell", "out_by"),
    ]
    closing = deals[0]
    assert closing.time == T0 + timedelta(hours=1)  # server time converted back to UTC
    assert closing.time.tzinfo is not None
    assert (closing.volume_lots, closing.price, closing.position_id) == (
        Decimal(1),
        Decimal("1.1025"),
        "42",
    )
    assert (closing.profit, closing.commission, closing.swap) == (
        Decimal("250.00"),
        Decimal("-7.00"),
        Decimal("-1.50"),
    )
    assert deals[1].volume_lots == Decimal("0.25")
    assert deals[2].volume_lots == Decimal("0.015")  # from VolumeExt: finer than 1/10000 lot
    assert closing.raw["Action"] == "1"


async def test_closed_deals_window_edges_are_in_utc(
    mt5_client: Mt5WebApiClient, mt5_sim: Mt5SimulatorThread
) -> None:
    first, _ = await _trading_history(mt5_sim, mt5_client)
    edge = T0 + timedelta(hours=1)
    inside = [d async for d in mt5_client.iter_closed_deals([first], None, edge, edge)]
    assert [d.time for d in inside] == [edge]
    before = [
        d
        async for d in mt5_client.iter_closed_deals([first], None, T0, edge - timedelta(seconds=1))
    ]
    assert before == []


async def test_closed_deals_paged(mt5_sim: Mt5SimulatorThread, mt5_tls: Tls) -> None:
    client = make_client(mt5_sim, mt5_tls[0], deal_page_size=2)
    login = (await client.create_account(spec())).login
    for minute in range(7):
        mt5_sim.state.add_trade_deal(
            login, "EURUSD", "buy", 1, "0.1", "1.1", time=T0 + timedelta(minutes=minute)
        )
    deals = [d async for d in client.iter_closed_deals([login], None, T0, T0 + timedelta(hours=1))]
    assert len({d.deal_id for d in deals}) == 7
    await client.close()


async def test_closed_deals_by_group_mask_over_windows(
    mt5_client: Mt5WebApiClient, mt5_sim: Mt5SimulatorThread
) -> None:
    first, second = await _trading_history(mt5_sim, mt5_client)
    until = T0 + timedelta(days=4)  # several one-day windows
    retail = [d async for d in mt5_client.iter_closed_deals(None, "real\\retail\\*", T0, until)]
    assert [d.login for d in retail] == [first] * 3
    everyone = [d async for d in mt5_client.iter_closed_deals(None, "real\\*", T0, until)]
    assert len({d.deal_id for d in everyone}) == len(everyone) == 4
    pro_only = [
        d async for d in mt5_client.iter_closed_deals(None, "*,!real\\retail\\*", T0, until)
    ]
    assert [d.login for d in pro_only] == [second]


async def test_closed_deals_carry_the_opening_read_in_the_same_call(
    mt5_client: Mt5WebApiClient, mt5_sim: Mt5SimulatorThread
) -> None:
    login = (await mt5_client.create_account(spec())).login
    state = mt5_sim.state

    def trade(action: str, entry: int, position: int, at: datetime) -> None:
        state.add_trade_deal(
            login, "EURUSD", action, entry, "1", "1.1", position_id=position, time=at
        )

    trade("buy", 0, 7, T0 + timedelta(minutes=1))
    trade("buy", 0, 7, T0 + timedelta(minutes=5))  # netting: added to, opened at the first
    trade("sell", 1, 7, T0 + timedelta(days=2))  # a later window of the group read
    trade("buy", 0, 8, T0 - timedelta(minutes=1))  # before the read: unknown
    trade("sell", 1, 8, T0 + timedelta(minutes=2))
    trade("sell", 1, 9, T0 + timedelta(minutes=3))  # never opened in sight

    until = T0 + timedelta(days=3)
    by_group = [d async for d in mt5_client.iter_closed_deals(None, "*", T0, until)]
    by_login = [d async for d in mt5_client.iter_closed_deals([login], None, T0, until)]
    for deals in (by_group, by_login):
        assert {d.position_id: d.opened_at for d in deals} == {
            "7": T0 + timedelta(minutes=1),  # in UTC, like the close
            "8": None,
            "9": None,
        }
        assert {d.entry for d in deals} == {"out"}  # the openings themselves are not yielded


async def test_closed_deals_need_one_scope(mt5_client: Mt5WebApiClient) -> None:
    with pytest.raises(ValueError, match="either"):
        async for _ in mt5_client.iter_closed_deals([1], "*", T0, T0):
            pass
    with pytest.raises(ValueError, match="naive"):
        async for _ in mt5_client.iter_closed_deals([1], None, datetime(2026, 1, 1), T0):
            pass


async def test_opening_deals_when_asked_and_every_money_operation(
    mt5_client: Mt5WebApiClient, mt5_sim: Mt5SimulatorThread
) -> None:
    first, _ = await _trading_history(mt5_sim, mt5_client)
    mt5_sim.state.add_trade_deal(
        first,
        "EURUSD",
        "buy",
        0,
        "1",
        "1.1",
        commission="-3.5",
        position_id=43,
        time=T0 + timedelta(minutes=30),
    )
    span = (T0, T0 + timedelta(days=1))
    closing = [d async for d in mt5_client.iter_closed_deals([first], None, *span)]
    assert all(d.entry != "in" for d in closing)
    every = [d async for d in mt5_client.iter_closed_deals([first], None, *span, openings=True)]
    openings = [(d.entry, d.side, d.position_id, d.commission) for d in every if d.entry == "in"]
    assert len(openings) == 2 and ("in", "buy", "43", Decimal("-3.50")) in openings
    assert [d for d in every if d.entry != "in"] == closing

    await mt5_client.balance_op(first, BalanceOpKind.CREDIT_IN, Decimal(50), "dealer credit")
    await mt5_client.balance_op(first, BalanceOpKind.BONUS, Decimal(20), "dealer bonus")
    await mt5_client.balance_op(first, BalanceOpKind.WITHDRAW, Decimal(30), "dealer fee")
    now = datetime.now(UTC)
    ops = [
        op
        async for op in mt5_client.iter_balance_ops(
            [first], None, now - timedelta(hours=1), now + timedelta(hours=1)
        )
    ]
    assert sorted((op.kind, op.amount, op.comment) for op in ops) == [
        ("balance", Decimal(-30), "dealer fee"),
        ("balance", Decimal(20), "dealer bonus"),
        ("balance", Decimal(100), "not-a-trade"),
        ("credit", Decimal(50), "dealer credit"),
    ]
    assert len({op.ticket for op in ops}) == 4
    assert all(op.login == first and abs(op.time - now) < timedelta(minutes=1) for op in ops)
    by_group = [
        op
        async for op in mt5_client.iter_balance_ops(
            None, "real\\*", now - timedelta(hours=1), now + timedelta(hours=1)
        )
    ]
    assert {op.ticket for op in by_group} == {op.ticket for op in ops}
    with pytest.raises(ValueError):
        [op async for op in mt5_client.iter_balance_ops(None, None, T0, T0)]


async def test_money_operations_of_the_window_just_read_cost_no_second_request(
    mt5_client: Mt5WebApiClient, mt5_sim: Mt5SimulatorThread
) -> None:
    first, _ = await _trading_history(mt5_sim, mt5_client)
    await mt5_client.balance_op(first, BalanceOpKind.WITHDRAW, Decimal(30), "dealer fee")
    now = datetime.now(UTC)
    since, until = now - timedelta(hours=1), now + timedelta(hours=1)
    asked = [op async for op in mt5_client.iter_balance_ops(None, "*", since, until)]
    requests: list[str] = []

    async def log(request: httpx.Request) -> None:
        requests.append(request.url.path)

    mt5_client._http.event_hooks["request"].append(log)
    _ = [d async for d in mt5_client.iter_closed_deals(None, "*", since, until, openings=True)]
    reads = len(requests)
    assert reads > 0
    again = [op async for op in mt5_client.iter_balance_ops(None, "*", since, until)]
    assert len(requests) == reads  # served from the deals just read
    assert [op.ticket for op in again] == [op.ticket for op in asked]
    # Another window is asked for.
    other = [op async for op in mt5_client.iter_balance_ops(None, "*", since, now)]
    assert len(requests) > reads and [op.ticket for op in other] == [op.ticket for op in asked]
