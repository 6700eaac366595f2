"""fxcrm's cTrader Web Services client against the simulator (and a few canned answers)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from fxcrm.adapters.platforms.base import (
    AccessLevel,
    BalanceOpKind,
    NewAccountSpec,
    PlatformError,
    PlatformErrorKind,
)
from fxcrm.adapters.platforms.ctrader import CTraderWebServicesClient, format_time, parse_time
from fxcrm.adapters.simulators.ctrader import CTraderSimulatorThread
from fxcrm.adapters.simulators.market.contract import SimFill
from tests.adapters.ctrader.conftest import BROKER, make_client

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def spec(client_id: str | None = None, **changes: Any) -> NewAccountSpec:
    values: dict[str, object] = {
        "group": "real\\retail\\std",
        "leverage": 30,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "country": "CY",
        "phone": "+35799000000",
        "client_id": client_id or str(uuid.uuid4()),
        "main_password": "Trader#2026a",
        "investor_password": "Invest#2026b",
    }
    values.update(changes)
    return NewAccountSpec.model_validate(values)


async def funded(client: CTraderWebServicesClient, amount: str = "1000") -> int:
    ref = await client.create_account(spec())
    await client.balance_op(ref.login, BalanceOpKind.DEPOSIT, Decimal(amount), f"seed-{ref.login}")
    return ref.login


def sim_fill(
    login: int, position: int, entry: str, lots: str, when: datetime, **kw: Any
) -> SimFill:
    return SimFill(
        login=login,
        position_id=position,
        symbol=kw.pop("symbol", "EURUSD"),
        side="buy" if entry == "in" else "sell",
        entry=entry,  # type: ignore[arg-type]
        lots=Decimal(lots),
        price=Decimal(kw.pop("price", "1.1")),
        time=when,
        contract_size=kw.pop("contract_size", Decimal(100_000)),
        **kw,
    )


# --- session ------------------------------------------------------------------------------------


async def test_logs_in_once_and_again_after_expiry(
    ctrader_client: CTraderWebServicesClient, ctrader_sim: CTraderSimulatorThread
) -> None:
    for _ in range(3):
        await ctrader_client.ping()
    assert len(ctrader_sim.state.tokens) == 1
    ctrader_sim.state.expire_tokens()
    # The refused token is replaced and the call goes through, even a mutating one.
    ref = await ctrader_client.create_account(spec())
    assert ref.login in ctrader_sim.state.traders
    assert len(ctrader_sim.state.tokens) == 1


async def test_wrong_password_is_an_auth_error(ctrader_sim: CTraderSimulatorThread) -> None:
    async with make_client(ctrader_sim, password="wrong") as client:
        with pytest.raises(PlatformError) as caught:
            await client.ping()
    assert (caught.value.kind, caught.value.retryable) == (PlatformErrorKind.AUTH, False)


# --- accounts -----------------------------------------------------------------------------------


async def test_create_and_read_an_account(
    ctrader_client: CTraderWebServicesClient, ctrader_sim: CTraderSimulatorThread
) -> None:
    client_id = str(uuid.uuid4())
    ref = await ctrader_client.create_account(spec(client_id, leverage=30))
    trader = ctrader_sim.state.trader(ref.login)
    assert trader.leverage_in_cents == 3000
    assert trader.contact["documentId"] == client_id
    assert trader.contact["countryId"] == 196  # CY, ISO numeric
    await ctrader_client.balance_op(ref.login, BalanceOpKind.DEPOSIT, Decimal("1234.56"), "d1")
    await ctrader_client.balance_op(ref.login, BalanceOpKind.BONUS, Decimal("50"), "b1")
    account = await ctrader_client.get_account(ref.login)
    assert (account.login, account.group, account.leverage) == (ref.login, "real\\retail\\std", 30)
    assert (account.currency, account.access, account.client_id) == (
        "USD",
        AccessLevel.FULL,
        client_id,
    )
    assert (account.balance, account.credit) == (Decimal("1234.56"), Decimal("50"))
    assert account.equity == account.free_margin == Decimal("1284.56")
    assert (account.margin, account.margin_level) == (Decimal(0), None)


async def test_accounts_are_found_by_client_id(ctrader_client: CTraderWebServicesClient) -> None:
    client_id = str(uuid.uuid4())
    first = await ctrader_client.create_account(spec(client_id))
    # A second create for the same client is a second account, not a conflict: both are found.
    second = await ctrader_client.create_account(spec(client_id, group="real\\pro\\std"))
    await ctrader_client.create_account(spec())
    found = await ctrader_client.find_accounts_by_client(client_id)
    assert sorted(a.login for a in found) == sorted([first.login, second.login])
    assert await ctrader_client.find_accounts_by_client("nobody") == []


async def test_unknown_login_is_not_found(ctrader_client: CTraderWebServicesClient) -> None:
    with pytest.raises(PlatformError) as caught:
        await ctrader_client.get_account(42)
    assert caught.value.kind is PlatformErrorKind.NOT_FOUND


async def test_group_and_leverage_rules(ctrader_client: CTraderWebServicesClient) -> None:
    with pytest.raises(PlatformError) as caught:
        await ctrader_client.create_account(spec(group="real\\nowhere"))
    assert caught.value.kind is PlatformErrorKind.UNKNOWN_GROUP
    with pytest.raises(PlatformError) as caught:
        await ctrader_client.create_account(spec(group="real\\retail\\highrisk", leverage=200))
    assert caught.value.kind is PlatformErrorKind.INVALID_LEVERAGE

    ref = await ctrader_client.create_account(spec(leverage=200))
    with pytest.raises(PlatformError) as caught:
        await ctrader_client.set_leverage(ref.login, 1000)
    assert caught.value.kind is PlatformErrorKind.INVALID_LEVERAGE
    with pytest.raises(PlatformError) as caught:  # 1:200 is above the highrisk maximum
        await ctrader_client.set_group(ref.login, "real\\retail\\highrisk")
    assert caught.value.kind is PlatformErrorKind.INVALID_LEVERAGE
    with pytest.raises(PlatformError) as caught:
        await ctrader_client.set_group(ref.login, "real\\nowhere")
    assert caught.value.kind is PlatformErrorKind.UNKNOWN_GROUP

    await ctrader_client.set_leverage(ref.login, 100)
    await ctrader_client.set_group(ref.login, "real\\retail\\highrisk")
    account = await ctrader_client.get_account(ref.login)
    assert (account.group, account.leverage) == ("real\\retail\\highrisk", 100)
    assert set(await ctrader_client.list_groups()) >= {"real\\retail\\std", "real\\pro\\highrisk"}
    in_group = await ctrader_client.list_accounts("real\\retail\\highrisk")
    assert [a.login for a in in_group] == [ref.login]


@pytest.mark.parametrize("access", list(AccessLevel))
async def test_access_levels_round_trip(
    ctrader_client: CTraderWebServicesClient,
    ctrader_sim: CTraderSimulatorThread,
    access: AccessLevel,
) -> None:
    ref = await ctrader_client.create_account(spec())
    await ctrader_client.set_access(ref.login, access)
    assert (await ctrader_client.get_account(ref.login)).access is access
    expected = {
        AccessLevel.FULL: "FULL_ACCESS",
        AccessLevel.READ_ONLY: "CLOSE_ONLY",
        AccessLevel.NO_TRADING: "NO_TRADING",
        AccessLevel.DISABLED: "NO_LOGIN",
    }[access]
    assert ctrader_sim.state.trader(ref.login).access_rights == expected


# --- money --------------------------------------------------------------------------------------


async def test_balance_op_is_found_by_its_external_id(
    ctrader_client: CTraderWebServicesClient, ctrader_sim: CTraderSimulatorThread
) -> None:
    login = (await ctrader_client.create_account(spec())).login
    since = datetime.now(UTC) - timedelta(minutes=5)
    ref = "wf-3f2a9c"
    assert await ctrader_client.find_balance_op(login, ref, since) is None
    done = await ctrader_client.balance_op(login, BalanceOpKind.DEPOSIT, Decimal("250.75"), ref)
    assert (done.amount, done.comment) == (Decimal("250.75"), ref)
    found = await ctrader_client.find_balance_op(login, ref, since)
    assert found == done
    # Posting again with the same externalId does not move the money twice.
    again = await ctrader_client.balance_op(login, BalanceOpKind.DEPOSIT, Decimal("250.75"), ref)
    assert again.ticket == done.ticket
    assert ctrader_sim.state.trader(login).balance == Decimal("250.75")

    out = await ctrader_client.balance_op(login, BalanceOpKind.WITHDRAW, Decimal("50"), "wf-out")
    assert out.amount == Decimal("-50")
    assert (await ctrader_client.get_account(login)).balance == Decimal("200.75")


@pytest.mark.parametrize("kind", [BalanceOpKind.CREDIT_IN, BalanceOpKind.CREDIT_OUT])
async def test_credit_does_not_exist_on_ctrader(
    ctrader_client: CTraderWebServicesClient, kind: BalanceOpKind
) -> None:
    login = (await ctrader_client.create_account(spec())).login
    with pytest.raises(PlatformError) as caught:
        await ctrader_client.balance_op(login, kind, Decimal(10), "c1")
    assert caught.value.kind is PlatformErrorKind.INVALID_REQUEST
    assert "credit" in str(caught.value)


async def test_withdrawal_beyond_free_margin(
    ctrader_client: CTraderWebServicesClient, ctrader_sim: CTraderSimulatorThread
) -> None:
    login = await funded(ctrader_client, "1000")
    ctrader_sim.state.sim_apply_fill(sim_fill(login, 1, "in", "0.1", T0, price="1.2"))
    with pytest.raises(PlatformError) as caught:
        await ctrader_client.balance_op(login, BalanceOpKind.WITHDRAW, Decimal(700), "w1")
    assert caught.value.kind is PlatformErrorKind.INSUFFICIENT_FUNDS
    assert not caught.value.retryable
    account = await ctrader_client.get_account(login)
    assert (account.margin, account.free_margin) == (Decimal("400.00"), Decimal("600.00"))
    assert account.margin_level == Decimal("250.00")


# --- trades -------------------------------------------------------------------------------------


async def test_closed_deals_over_five_days_in_two_day_windows(
    ctrader_sim: CTraderSimulatorThread,
) -> None:
    requests: list[httpx.Request] = []

    async def log(request: httpx.Request) -> None:
        requests.append(request)

    async with make_client(ctrader_sim) as client:
        client._http.event_hooks["request"].append(log)
        login = await funded(client, "10000")
        other = await funded(client, "10000")
        state = ctrader_sim.state
        state.sim_apply_fill(sim_fill(login, 10, "in", "1", T0))
        # Partial closes on day 1 and day 4; one close exactly on a window edge (T0 + 2 days).
        closes = [
            (T0 + timedelta(hours=5), "0.3", Decimal(30)),
            (T0 + timedelta(days=2), "0.3", Decimal(-12)),
            (T0 + timedelta(days=4), "0.4", Decimal(55)),
        ]
        for when, lots, profit in closes:
            state.sim_apply_fill(
                sim_fill(login, 10, "out", lots, when, profit=profit, commission=Decimal("-2"))
            )
        state.sim_apply_fill(
            sim_fill(
                other,
                11,
                "in",
                "0.01",
                T0,
                symbol="XAUUSD",
                contract_size=Decimal(100),
                price="2000",
            )
        )
        state.sim_apply_fill(
            sim_fill(
                other,
                11,
                "out",
                "0.01",
                T0 + timedelta(days=1),
                symbol="XAUUSD",
                contract_size=Decimal(100),
                price="2010",
                profit=Decimal(10),
            )
        )
        requests.clear()

        # Windows start at T0: the closes at T0 + 2 and + 4 days sit on two windows each.
        since, until = T0, T0 + timedelta(days=5)
        deals = [d async for d in client.iter_closed_deals([login], None, since, until)]
        windows = [r for r in requests if r.url.path.endswith("/closedPositions")]
        assert len(windows) == 3
        for request in windows:
            span = parse_time(request.url.params["to"]) - parse_time(request.url.params["from"])
            assert span <= timedelta(days=2)

        assert [d.position_id for d in deals] == ["10", "10", "10"]
        assert len({d.deal_id for d in deals}) == 3  # the edge deal came once
        assert [d.volume_lots for d in deals] == [Decimal("0.3"), Decimal("0.3"), Decimal("0.4")]
        assert [d.profit for d in deals] == [Decimal(30), Decimal(-12), Decimal(55)]
        assert [d.time for d in deals] == [c[0] for c in closes]
        assert [d.opened_at for d in deals] == [T0] * 3  # partial closes: the position's opening
        assert all(d.time.tzinfo is UTC for d in deals)
        assert {(d.side, d.entry, d.symbol, d.commission) for d in deals} == {
            ("sell", "out", "EURUSD", Decimal("-2.00"))
        }

        by_group = [
            d async for d in client.iter_closed_deals(None, "real\\retail\\std", since, until)
        ]
        assert {d.login for d in by_group} == {login, other}
        gold = next(d for d in by_group if d.login == other)
        assert (gold.volume_lots, gold.price) == (Decimal("0.01"), Decimal("2010"))
        assert [
            d async for d in client.iter_closed_deals(None, "real\\pro\\std", since, until)
        ] == []


async def test_open_positions(
    ctrader_client: CTraderWebServicesClient, ctrader_sim: CTraderSimulatorThread
) -> None:
    login = await funded(ctrader_client, "5000")
    other = await funded(ctrader_client, "5000")
    state = ctrader_sim.state
    state.sim_apply_fill(sim_fill(login, 21, "in", "0.5", T0, price="1.08"))
    state.sim_apply_fill(
        sim_fill(
            other, 22, "in", "0.02", T0, symbol="US500", contract_size=Decimal(1), price="5000"
        )
    )
    mine = await ctrader_client.list_open_positions([login], None)
    assert [(p.position_id, p.side, p.volume_lots, p.open_price) for p in mine] == [
        ("21", "buy", Decimal("0.5"), Decimal("1.08"))
    ]
    assert mine[0].opened_at == T0
    everyone = await ctrader_client.list_open_positions(None, "real\\retail\\std")
    assert {p.login for p in everyone} == {login, other}
    assert await ctrader_client.list_open_positions(None, "real\\pro\\std") == []


# --- transport errors ---------------------------------------------------------------------------


def canned(status: int | None) -> CTraderWebServicesClient:
    """A client whose server grants tokens and then answers `status` (None: times out)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/managers/token"):
            return httpx.Response(200, json={"webservToken": "t"})
        if status is None:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(status, json={"errorCode": "X", "description": "busy"})

    return CTraderWebServicesClient(
        "https://webserv.example",
        1,
        "pw",
        broker_name=BROKER,
        transport=httpx.MockTransport(handler),
    )


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, PlatformErrorKind.RATE_LIMITED),
        (500, PlatformErrorKind.UNAVAILABLE),
        (503, PlatformErrorKind.UNAVAILABLE),
        (None, PlatformErrorKind.UNAVAILABLE),
    ],
)
async def test_busy_or_unreachable_is_retryable(
    status: int | None, kind: PlatformErrorKind
) -> None:
    async with canned(status) as client:
        with pytest.raises(PlatformError) as caught:
            await client.get_account(1)
    assert (caught.value.kind, caught.value.retryable) == (kind, True)


def test_time_format() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert format_time(moment) == "2026-01-02T03:04:05.678"
    assert parse_time("2026-01-02T03:04:05.678") == moment
    with pytest.raises(ValueError):
        format_time(datetime(2026, 1, 1))


async def test_money_operations_and_the_commission_of_closed_volume(
    ctrader_client: CTraderWebServicesClient, ctrader_sim: CTraderSimulatorThread
) -> None:
    login = await funded(ctrader_client, "1000")
    await ctrader_client.balance_op(login, BalanceOpKind.BONUS, Decimal(50), "dealer bonus")
    await ctrader_client.balance_op(login, BalanceOpKind.WITHDRAW, Decimal("12.34"), "dealer fee")
    now = datetime.now(UTC)
    ops = [
        op
        async for op in ctrader_client.iter_balance_ops(
            None, "*", now - timedelta(hours=1), now + timedelta(hours=1)
        )
    ]
    assert sorted((op.login, op.kind, op.amount, op.comment) for op in ops) == [
        (login, "balance", Decimal("-12.34"), "dealer fee"),
        (login, "balance", Decimal(1000), f"seed-{login}"),
        (login, "credit", Decimal(50), "dealer bonus"),  # the non-withdrawable bonus
    ]
    # The opening commission (6) leaves the balance at once; each closing row reports its share
    # of it with its own commission, and the open position keeps the rest.
    state = ctrader_sim.state
    state.sim_apply_fill(sim_fill(login, 20, "in", "1", T0, commission=Decimal(-6)))
    state.sim_apply_fill(
        sim_fill(login, 20, "out", "0.5", T0 + timedelta(hours=1), commission=Decimal(-3))
    )
    (position,) = await ctrader_client.list_open_positions([login], None)
    assert position.commission == Decimal(-3)
    deals = [
        d
        async for d in ctrader_client.iter_closed_deals(
            [login], None, T0, T0 + timedelta(days=1), openings=True
        )
    ]
    assert [(d.entry, d.commission) for d in deals] == [("out", Decimal(-6))]


async def test_money_operations_skip_an_account_gone_since_the_list(
    ctrader_client: CTraderWebServicesClient,
) -> None:
    login = await funded(ctrader_client, "10")
    now = datetime.now(UTC)
    window = (now - timedelta(hours=1), now + timedelta(hours=1))
    ops = [op async for op in ctrader_client.iter_balance_ops([99_999_999, login], None, *window)]
    assert [op.login for op in ops] == [login]
