"""fxcrm's Sirix client against the simulator, and its conversions on their own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from fxcrm.adapters.platforms.base import (
    AccessLevel,
    BalanceOpKind,
    PlatformError,
    PlatformErrorKind,
    TradingPlatformGateway,
)
from fxcrm.adapters.platforms.sirix import (
    SirixClient,
    access_of,
    error_for,
    from_server_time,
    to_server_time,
)
from fxcrm.adapters.simulators.sirix import DEV_SIRIX_TOKEN, SirixSimState, SirixSimulatorThread
from fxcrm.adapters.simulators.tls import ensure_self_signed_cert
from tests.adapters.sirix.conftest import fill, make_client, spec

JERUSALEM = ZoneInfo("Asia/Jerusalem")
STD = "real\\retail\\std"


async def funded(client: SirixClient, amount: str = "1000", **changes: Any) -> int:
    ref = await client.create_account(spec(**changes))
    await client.balance_op(ref.login, BalanceOpKind.DEPOSIT, Decimal(amount), "seed")
    return ref.login


# --- conversions ------------------------------------------------------------------------------


def test_server_time_round_trip_across_dst() -> None:
    # Israel: +02:00 in winter, +03:00 from the Friday before the last Sunday of March.
    winter = datetime(2025, 3, 27, 22, 30, tzinfo=UTC)
    summer = datetime(2025, 3, 28, 0, 30, tzinfo=UTC)  # 03:30 local, after the 02:00 jump
    assert to_server_time(winter, JERUSALEM) == "2025-03-28T00:30:00.000"
    assert to_server_time(summer, JERUSALEM) == "2025-03-28T03:30:00.000"
    for moment in (winter, summer):
        assert from_server_time(to_server_time(moment, JERUSALEM), JERUSALEM) == moment
    # Offsets and .NET dates are honoured as sent.
    assert from_server_time("2025-07-01T12:00:00+03:00", JERUSALEM) == datetime(
        2025, 7, 1, 9, tzinfo=UTC
    )
    assert from_server_time("/Date(0)/", JERUSALEM) == datetime(1970, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        to_server_time(datetime(2025, 1, 1), JERUSALEM)
    with pytest.raises(PlatformError) as caught:
        from_server_time("yesterday", JERUSALEM)
    assert caught.value.kind is PlatformErrorKind.PROTOCOL


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (404, {"ErrorCode": "UserNotFound", "Message": "User 1 not found"}, "not_found"),
        (400, {"ErrorCode": "GroupNotFound"}, "unknown_group"),
        (400, {"errorCode": "InvalidLeverage"}, "invalid_leverage"),
        (400, {"Error": {"Code": "NotEnoughMoney", "Message": "x"}}, "insufficient_funds"),
        (400, {"message": "Leverage exceeds the group maximum"}, "invalid_leverage"),
        (400, {"Message": "Withdrawal exceeds free margin"}, "insufficient_funds"),
        (400, {"Message": "Unknown group real\\x"}, "unknown_group"),
        (500, "<html>oops</html>", "unavailable"),
        (502, None, "unavailable"),
        (401, {}, "auth"),
        (429, {}, "rate_limited"),
        (400, {"Message": "Something odd"}, "invalid_request"),
    ],
)
def test_error_bodies_are_read_defensively(status: int, body: object, kind: str) -> None:
    error = error_for("X/Y", status, body)
    assert error.kind == kind
    assert error.retryable == (kind in ("unavailable", "rate_limited"))


def test_access_flags() -> None:
    assert access_of({"IsEnabled": True, "Tradability": "Tradable"}) is AccessLevel.FULL
    assert access_of({"IsEnabled": True, "Tradability": 1}) is AccessLevel.NO_TRADING
    assert access_of({"IsEnabled": "true", "DisableTrading": True}) is AccessLevel.READ_ONLY
    assert access_of({"IsEnabled": False}) is AccessLevel.DISABLED
    assert access_of({"IsEnabled": True, "IsArchived": True}) is AccessLevel.DISABLED


# --- session and errors -----------------------------------------------------------------------


async def test_ping_time_and_bad_token(
    sirix_client: SirixClient, sirix_sim: SirixSimulatorThread
) -> None:
    gateway: TradingPlatformGateway = sirix_client
    await gateway.ping()
    assert abs(await sirix_client.platform_time() - datetime.now(UTC)) < timedelta(seconds=5)
    async with make_client(sirix_sim, token="t1_wrong") as bad:
        with pytest.raises(PlatformError) as caught:
            await bad.ping()
    assert caught.value.kind is PlatformErrorKind.AUTH
    assert not caught.value.retryable


async def test_outage_and_timeout_are_retryable(
    sirix_client: SirixClient, sirix_state: SirixSimState
) -> None:
    sirix_state.fail_requests = 1
    with pytest.raises(PlatformError) as caught:
        await sirix_client.ping()
    assert (caught.value.kind, caught.value.retryable) == (PlatformErrorKind.UNAVAILABLE, True)
    await sirix_client.ping()  # back

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    async with SirixClient("https://sirix.invalid", "t", transport=httpx.MockTransport(hang)) as c:
        with pytest.raises(PlatformError) as slow:
            await c.ping()
    assert (slow.value.kind, slow.value.retryable) == (PlatformErrorKind.UNAVAILABLE, True)


async def test_wire_shape_of_a_call() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"OrderID": 77})

    async with SirixClient("https://x", "t1_abc", transport=httpx.MockTransport(answer)) as client:
        result = await client.balance_op(5, BalanceOpKind.CREDIT_IN, Decimal("12.5"), "ref-1")
    assert result.ticket == "77" and result.amount == Decimal("12.5")
    first = seen[0]
    assert first.method == "POST"
    assert first.url.path == "/api/ManagementService/DepositBalanceWithResult"
    assert first.headers["authorization"] == "Bearer t1_abc"
    assert first.read() == (b'{"userID":5,"amount":12.5,"comment":"ref-1","subType":1}')


# --- accounts ---------------------------------------------------------------------------------


async def test_create_get_and_find_by_client(
    sirix_client: SirixClient, sirix_state: SirixSimState
) -> None:
    client_id = str(uuid.uuid4())
    ref = await sirix_client.create_account(spec(client_id, leverage=200))
    assert (ref.group, ref.leverage) == (STD, 200)
    await sirix_client.create_account(spec(client_id, group="real\\pro\\std"))
    await sirix_client.create_account(spec())  # someone else
    stored = sirix_state.user(ref.login)
    assert stored.details["Comment"] == f"fxcrm:{client_id}"
    assert stored.details["Source"] == "fxcrm"
    assert stored.passwords == {"main": "Trader2026a", "investor": "Invest2026b"}
    assert await sirix_client.verify_user(ref.login, "Trader2026a") == 0

    state = await sirix_client.get_account(ref.login)
    assert (state.login, state.group, state.leverage, state.currency) == (
        ref.login,
        STD,
        200,
        "USD",
    )
    assert (state.balance, state.equity, state.margin, state.margin_level) == (0, 0, 0, None)
    assert (state.access, state.client_id) == (AccessLevel.FULL, client_id)

    found = await sirix_client.find_accounts_by_client(client_id)
    assert sorted(a.login for a in found) == [ref.login, ref.login + 1]
    assert await sirix_client.find_accounts_by_client("nobody") == []


async def test_refusals_map_to_kinds(sirix_client: SirixClient) -> None:
    async def kind_of(coro: object) -> PlatformErrorKind:
        with pytest.raises(PlatformError) as caught:
            await coro  # type: ignore[misc]
        return caught.value.kind

    assert await kind_of(sirix_client.get_account(12345)) is PlatformErrorKind.NOT_FOUND
    assert (
        await kind_of(sirix_client.create_account(spec(group="real\\nope")))
        is PlatformErrorKind.UNKNOWN_GROUP
    )
    assert (
        await kind_of(sirix_client.create_account(spec(leverage=1000)))
        is PlatformErrorKind.INVALID_LEVERAGE
    )
    ref = await sirix_client.create_account(spec())
    assert (
        await kind_of(sirix_client.set_leverage(ref.login, 501))
        is PlatformErrorKind.INVALID_LEVERAGE
    )
    assert (
        await kind_of(sirix_client.set_group(ref.login, "real\\nope"))
        is PlatformErrorKind.UNKNOWN_GROUP
    )
    assert (
        await kind_of(sirix_client.create_account(spec(main_password="x")))
        is PlatformErrorKind.INVALID_REQUEST
    )
    assert await kind_of(sirix_client.set_leverage(999, 100)) is PlatformErrorKind.NOT_FOUND


async def test_group_and_leverage_changes(sirix_client: SirixClient) -> None:
    ref = await sirix_client.create_account(spec(leverage=100))
    await sirix_client.set_group(ref.login, "real\\pro\\highrisk")
    await sirix_client.set_leverage(ref.login, 50)
    state = await sirix_client.get_account(ref.login)
    assert (state.group, state.leverage) == ("real\\pro\\highrisk", 50)


async def test_access_round_trip(sirix_client: SirixClient, sirix_state: SirixSimState) -> None:
    ref = await sirix_client.create_account(spec())
    for level in (
        AccessLevel.DISABLED,
        AccessLevel.FULL,
        AccessLevel.NO_TRADING,
        AccessLevel.READ_ONLY,
        AccessLevel.DISABLED,
        AccessLevel.NO_TRADING,
        AccessLevel.FULL,
    ):
        await sirix_client.set_access(ref.login, level)
        assert (await sirix_client.get_account(ref.login)).access is level
    user = sirix_state.user(ref.login)
    assert (user.is_enabled, user.disable_trading, user.tradability) == (True, False, "Tradable")
    sirix_state.archive_user(ref.login)
    assert (await sirix_client.get_account(ref.login)).access is AccessLevel.DISABLED


async def test_groups_and_accounts(sirix_client: SirixClient) -> None:
    groups = await sirix_client.list_groups()
    assert {STD, "real\\retail\\highrisk", "real\\pro\\std", "real\\pro\\highrisk"} <= set(groups)
    assert any(g.startswith("demo") for g in groups)
    first = await funded(sirix_client, "250")
    await funded(sirix_client, "10", group="real\\pro\\std")
    accounts = await sirix_client.list_accounts(STD)
    assert [(a.login, a.balance, a.free_margin) for a in accounts] == [
        (first, Decimal(250), Decimal(250))
    ]
    assert len(await sirix_client.list_accounts(None)) == 2


async def test_list_groups_falls_back_to_the_groups_of_users() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("GetAllGroups"):
            return httpx.Response(404)
        return httpx.Response(
            200, json={"Users": [{"UserID": 1, "GroupName": "b"}, {"GroupName": "a"}]}
        )

    async with SirixClient("https://x", "t", transport=httpx.MockTransport(answer)) as client:
        assert await client.list_groups() == ["a", "b"]


# --- money ------------------------------------------------------------------------------------


async def test_balance_ops_and_find_balance_op(
    sirix_client: SirixClient, sirix_state: SirixSimState
) -> None:
    login = (await sirix_client.create_account(spec())).login
    since = datetime.now(UTC)
    assert await sirix_client.find_balance_op(login, "wf-1", since) is None

    done = await sirix_client.balance_op(login, BalanceOpKind.DEPOSIT, Decimal("500.25"), "wf-1")
    assert (done.amount, done.comment) == (Decimal("500.25"), "wf-1")
    assert abs(done.time - datetime.now(UTC)) < timedelta(seconds=5)

    # A retried activity looks first and finds the deposit: nothing is posted twice.
    again = await sirix_client.find_balance_op(login, "wf-1", since)
    assert again == done
    assert len(sirix_state.transactions_of(login)) == 1
    # Outside the window it is not ours (an old op with a reused ref).
    assert await sirix_client.find_balance_op(login, "wf-1", since + timedelta(hours=1)) is None

    out = await sirix_client.balance_op(login, BalanceOpKind.WITHDRAW, Decimal(100), "wf-2")
    assert out.amount == Decimal(-100)
    found = await sirix_client.find_balance_op(login, "wf-2", since)
    assert found is not None and found.amount == Decimal(-100) and found.ticket == out.ticket

    await sirix_client.balance_op(login, BalanceOpKind.CREDIT_IN, Decimal(50), "wf-3")
    await sirix_client.balance_op(login, BalanceOpKind.BONUS, Decimal(20), "wf-4")
    await sirix_client.balance_op(login, BalanceOpKind.CREDIT_OUT, Decimal(30), "wf-5")
    state = await sirix_client.get_account(login)
    assert (state.balance, state.credit, state.equity) == (
        Decimal("420.25"),
        Decimal(20),
        Decimal("440.25"),
    )
    bonus = [t for t in sirix_state.transactions_of(login) if t.comment == "wf-4"]
    assert bonus[0].sub_type == 2
    with pytest.raises(PlatformError) as caught:
        await sirix_client.balance_op(login, BalanceOpKind.CREDIT_OUT, Decimal(21), "wf-6")
    assert caught.value.kind is PlatformErrorKind.INSUFFICIENT_FUNDS
    with pytest.raises(ValueError):
        await sirix_client.balance_op(login, BalanceOpKind.DEPOSIT, Decimal(0), "wf-7")


async def test_withdrawal_beyond_free_margin(
    sirix_client: SirixClient, sirix_state: SirixSimState
) -> None:
    login = await funded(sirix_client, "1000")
    when = datetime.now(UTC)
    # 0.5 lot EURUSD at 1.2 and 1:100: 600 of margin, 400 free.
    sirix_state.sim_apply_fill(fill(login, 1, "in", "buy", "0.5", "1.2", when))
    state = await sirix_client.get_account(login)
    assert (state.margin, state.free_margin, state.margin_level) == (
        Decimal(600),
        Decimal(400),
        Decimal("166.67"),
    )
    with pytest.raises(PlatformError) as caught:
        await sirix_client.balance_op(login, BalanceOpKind.WITHDRAW, Decimal(401), "too-much")
    assert caught.value.kind is PlatformErrorKind.INSUFFICIENT_FUNDS
    assert await sirix_client.find_balance_op(login, "too-much", when) is None
    await sirix_client.balance_op(login, BalanceOpKind.WITHDRAW, Decimal(400), "fits")


# --- positions --------------------------------------------------------------------------------


async def test_open_positions(sirix_client: SirixClient, sirix_state: SirixSimState) -> None:
    first = await funded(sirix_client)
    second = await funded(sirix_client, group="real\\pro\\std")
    opened = datetime(2025, 1, 15, 8, 0, tzinfo=UTC)
    sirix_state.sim_apply_fill(
        fill(first, 11, "in", "sell", "0.25", "1.0300", opened, commission="-2")
    )
    sirix_state.sim_apply_fill(fill(second, 12, "in", "buy", "1", "1.0300", opened))
    sirix_state.sim_mark_prices({"EURUSD": Decimal("1.0250")})

    mine = await sirix_client.list_open_positions([first], None)
    assert len(mine) == 1
    position = mine[0]
    assert (position.position_id, position.login, position.symbol, position.side) == (
        "11",
        first,
        "EURUSD",
        "sell",
    )
    assert (position.volume_lots, position.open_price, position.current_price) == (
        Decimal("0.25"),
        Decimal("1.03"),
        Decimal("1.025"),
    )
    assert (position.profit, position.commission, position.opened_at) == (
        Decimal(125),
        Decimal(-2),
        opened,
    )
    by_group = await sirix_client.list_open_positions(None, "real\\pro\\std")
    assert [p.position_id for p in by_group] == ["12"]
    everything = await sirix_client.list_open_positions(None, None)
    assert sorted(p.position_id for p in everything) == ["11", "12"]
    assert await sirix_client.list_open_positions([first], "real\\pro\\std") == []


async def test_closed_deals_by_group_across_dst(
    sirix_client: SirixClient, sirix_state: SirixSimState, sirix_sim: SirixSimulatorThread
) -> None:
    login = await funded(sirix_client)
    elsewhere = await funded(sirix_client, group="real\\pro\\std")
    # Israel went to summer time on Friday 2025-03-28 at 02:00 local (00:00 UTC).
    times = [
        datetime(2025, 3, 27, 21, 15, tzinfo=UTC),  # 23:15 IST
        datetime(2025, 3, 27, 23, 45, tzinfo=UTC),  # 01:45 IST, just before the jump
        datetime(2025, 3, 28, 0, 15, tzinfo=UTC),  # 03:15 IDT, just after
        datetime(2025, 3, 28, 22, 0, tzinfo=UTC),  # 01:00 IDT the next day
    ]
    for number, moment in enumerate(times, start=1):
        sirix_state.sim_apply_fill(fill(login, number, "in", "buy", "0.1", "1.08", moment))
        sirix_state.sim_apply_fill(
            fill(login, number, "out", "sell", "0.1", "1.081", moment, profit="10", commission="-1")
        )
    sirix_state.sim_apply_fill(fill(elsewhere, 99, "out", "sell", "1", "1.08", times[1]))
    rows = sirix_state.closed_positions
    assert [sirix_state.local(r.close_time).hour for r in rows[:4]] == [23, 1, 3, 1]

    since, until = datetime(2025, 3, 27, 20, tzinfo=UTC), datetime(2025, 3, 29, tzinfo=UTC)
    deals = [d async for d in sirix_client.iter_closed_deals(None, STD, since, until)]
    assert [d.time for d in deals] == times
    assert [d.opened_at for d in deals] == times  # opened at the close, in local time too
    deal = deals[1]
    assert (deal.login, deal.position_id, deal.symbol, deal.side, deal.entry) == (
        login,
        "2",
        "EURUSD",
        "sell",
        "out",
    )
    assert (deal.volume_lots, deal.price, deal.profit, deal.commission, deal.swap) == (
        Decimal("0.1"),
        Decimal("1.081"),
        Decimal(10),
        Decimal(-1),
        Decimal(0),
    )
    assert deal.raw["CloseTime"] == "2025-03-28T01:45:00.000"
    assert len({d.deal_id for d in deals}) == 4

    # A window that ends right at the change keeps only what closed before it (UTC, inclusive).
    before = [
        d.time
        async for d in sirix_client.iter_closed_deals(
            None, STD, since, datetime(2025, 3, 28, tzinfo=UTC)
        )
    ]
    assert before == times[:2]
    # Small windows (several requests) give the same deals once each.
    async with make_client(sirix_sim, deal_window=timedelta(hours=1)) as small:
        windowed = [d.time async for d in small.iter_closed_deals(None, STD, since, until)]
    assert windowed == times


async def test_repeated_autumn_hour_reads_as_the_first(
    sirix_client: SirixClient, sirix_state: SirixSimState
) -> None:
    """Local times carry no offset: in the hour repeated on 2025-10-26 (02:00 IDT -> 01:00 IST) a
    close in the second 01:30 reads as the first, an hour early. Both still come once."""
    login = await funded(sirix_client)
    first = datetime(2025, 10, 25, 22, 30, tzinfo=UTC)  # 01:30 IDT
    second = datetime(2025, 10, 25, 23, 30, tzinfo=UTC)  # 01:30 IST
    for number, moment in enumerate((first, second), start=1):
        sirix_state.sim_apply_fill(fill(login, number, "out", "sell", "1", "1.1", moment))
    since, until = first - timedelta(hours=2), second + timedelta(hours=2)
    deals = [d async for d in sirix_client.iter_closed_deals([login], None, since, until)]
    assert [d.time for d in deals] == [first, first]
    assert len({d.deal_id for d in deals}) == 2


async def test_closed_deals_by_login_and_all(
    sirix_client: SirixClient, sirix_state: SirixSimState
) -> None:
    first = await funded(sirix_client)
    second = await funded(sirix_client, group="demo\\retail\\std")
    # The autumn change: 2025-10-26 02:00 IDT -> 01:00 IST.
    autumn = datetime(2025, 10, 26, 12, 0, tzinfo=UTC)
    sirix_state.sim_apply_fill(fill(first, 1, "out", "sell", "1", "1.1", autumn))
    sirix_state.sim_apply_fill(fill(second, 2, "out", "buy", "2", "1.1", autumn))
    since, until = autumn - timedelta(hours=1), autumn + timedelta(hours=1)

    by_login = [d async for d in sirix_client.iter_closed_deals([first], None, since, until)]
    assert [(d.login, d.time, d.side) for d in by_login] == [(first, autumn, "sell")]
    # Neither logins nor a group: the server's (misspelled) all-positions call.
    everyone = [d async for d in sirix_client.iter_closed_deals(None, None, since, until)]
    assert sorted(d.login for d in everyone) == [first, second]
    assert [d.volume_lots for d in everyone if d.login == second] == [Decimal(2)]
    with pytest.raises(ValueError):
        [d async for d in sirix_client.iter_closed_deals([first], STD, since, until)]


async def test_https_with_a_pinned_certificate(tmp_path: Path) -> None:
    certfile, keyfile = ensure_self_signed_cert(tmp_path)
    with SirixSimulatorThread(certfile=certfile, keyfile=keyfile) as sim:
        assert sim.base_url.startswith("https://")
        async with SirixClient(sim.base_url, DEV_SIRIX_TOKEN, verify=certfile) as client:
            await client.ping()


async def test_money_operations_in_a_window(sirix_client: SirixClient) -> None:
    login = await funded(sirix_client, "1000")
    await sirix_client.balance_op(login, BalanceOpKind.CREDIT_IN, Decimal(100), "dealer credit")
    await sirix_client.balance_op(login, BalanceOpKind.BONUS, Decimal(25), "dealer bonus")
    await sirix_client.balance_op(login, BalanceOpKind.WITHDRAW, Decimal("7.5"), "dealer fee")
    now = datetime.now(UTC)
    window = (now - timedelta(hours=1), now + timedelta(hours=1))
    ops = [op async for op in sirix_client.iter_balance_ops(None, "*", *window)]
    assert sorted((op.login, op.kind, op.amount, op.comment) for op in ops) == [
        (login, "balance", Decimal("-7.5"), "dealer fee"),
        (login, "balance", Decimal(25), "dealer bonus"),  # Sirix books the bonus as balance
        (login, "balance", Decimal(1000), "seed"),
        (login, "credit", Decimal(100), "dealer credit"),
    ]
    later = [op async for op in sirix_client.iter_balance_ops([login], None, window[1], window[1])]
    assert later == []


async def test_money_operations_skip_an_account_gone_since_the_list(
    sirix_client: SirixClient,
) -> None:
    login = await funded(sirix_client, "10")
    now = datetime.now(UTC)
    window = (now - timedelta(hours=1), now + timedelta(hours=1))
    ops = [op async for op in sirix_client.iter_balance_ops([99_999_999, login], None, *window)]
    assert [op.login for op in ops] == [login]
