"""fxcrm's MT4 bridge client against the simulator: the gateway contract, units and errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from fxcrm.adapters.platforms.base import (
    AccessLevel,
    BalanceOpKind,
    NewAccountSpec,
    PlatformError,
    PlatformErrorKind,
)
from fxcrm.adapters.platforms.mt4 import (
    Mt4BridgeClient,
    client_id_from_key,
    client_key,
)
from fxcrm.adapters.simulators.market.contract import SimFill
from fxcrm.adapters.simulators.mt4 import (
    DEV_MT4_READONLY_KEY_ID,
    DEV_MT4_READONLY_SECRET,
    Mt4SimState,
    Mt4SimulatorThread,
)
from tests.adapters.mt4.conftest import SESSION_TIMEOUT, FakeClock, make_client

STD = "real\\retail\\std"
HIGHRISK = "real\\retail\\highrisk"


def spec(client_id: str | None = None, group: str = STD, leverage: int = 100) -> NewAccountSpec:
    return NewAccountSpec(
        group=group,
        leverage=leverage,
        first_name="Grace",
        last_name="Hopper",
        email="grace@example.com",
        country="US",
        phone="+15550100",
        client_id=client_id or uuid.uuid4().hex,
        main_password="Main2026x",
        investor_password="Invest2026",
    )


async def expect(kind: PlatformErrorKind, awaitable: object) -> PlatformError:
    with pytest.raises(PlatformError) as caught:
        await awaitable  # type: ignore[misc]
    assert caught.value.kind is kind, caught.value
    return caught.value


def test_client_ids_fit_the_31_characters_of_user_record_id() -> None:
    fxcrm_id = uuid.uuid4().hex
    stored = client_key(fxcrm_id)
    assert len(stored) <= 31 and stored.startswith("u:")
    assert client_id_from_key(stored) == fxcrm_id
    assert client_key("crm-123") == "crm-123"
    assert client_id_from_key("crm-123") == "crm-123"
    with pytest.raises(ValueError):
        client_key("x" * 32)


async def test_create_and_read_an_account(mt4_client: Mt4BridgeClient) -> None:
    await mt4_client.ping()
    client_id = uuid.uuid4().hex
    ref = await mt4_client.create_account(spec(client_id))
    assert (ref.group, ref.leverage) == (STD, 100)
    state = await mt4_client.get_account(ref.login)
    assert (state.login, state.currency, state.access, state.client_id) == (
        ref.login,
        "USD",
        AccessLevel.FULL,
        client_id,
    )
    assert state.balance == state.equity == state.free_margin == Decimal(0)
    assert state.margin_level is None
    other = await mt4_client.create_account(spec())
    found = await mt4_client.find_accounts_by_client(client_id)
    assert [a.login for a in found] == [ref.login] and other.login != ref.login
    assert await mt4_client.find_accounts_by_client(uuid.uuid4().hex) == []


async def test_groups_leverage_and_not_found(mt4_client: Mt4BridgeClient) -> None:
    groups = await mt4_client.list_groups()
    assert STD in groups and HIGHRISK in groups
    await expect(PlatformErrorKind.UNKNOWN_GROUP, mt4_client.create_account(spec(group="x\\y")))
    await expect(
        PlatformErrorKind.INVALID_LEVERAGE,
        mt4_client.create_account(spec(group=HIGHRISK, leverage=500)),
    )
    ref = await mt4_client.create_account(spec(leverage=200))
    await expect(PlatformErrorKind.INVALID_LEVERAGE, mt4_client.set_leverage(ref.login, 1000))
    await expect(PlatformErrorKind.INVALID_LEVERAGE, mt4_client.set_group(ref.login, HIGHRISK))
    await expect(PlatformErrorKind.UNKNOWN_GROUP, mt4_client.set_group(ref.login, "nope"))
    await mt4_client.set_leverage(ref.login, 100)
    await mt4_client.set_group(ref.login, HIGHRISK)
    state = await mt4_client.get_account(ref.login)
    assert (state.group, state.leverage) == (HIGHRISK, 100)
    await expect(PlatformErrorKind.NOT_FOUND, mt4_client.get_account(1))
    await expect(PlatformErrorKind.NOT_FOUND, mt4_client.set_leverage(1, 100))


async def test_access_round_trip(mt4_client: Mt4BridgeClient, mt4_state: Mt4SimState) -> None:
    login = (await mt4_client.create_account(spec())).login
    expected = {
        AccessLevel.READ_ONLY: AccessLevel.READ_ONLY,
        AccessLevel.NO_TRADING: AccessLevel.READ_ONLY,  # MT4 has one switch against trading
        AccessLevel.DISABLED: AccessLevel.DISABLED,
        AccessLevel.FULL: AccessLevel.FULL,
    }
    for access, reads_back in expected.items():
        await mt4_client.set_access(login, access)
        assert (await mt4_client.get_account(login)).access is reads_back
    user = mt4_state.users[login]
    assert (user.enable, user.enable_read_only) == (1, 0)


async def test_balance_op_is_idempotent_by_ref(
    mt4_client: Mt4BridgeClient, mt4_state: Mt4SimState
) -> None:
    login = (await mt4_client.create_account(spec())).login
    since = datetime.now(UTC) - timedelta(minutes=1)
    first = await mt4_client.balance_op(login, BalanceOpKind.DEPOSIT, Decimal("250.10"), "wf-dep-1")
    again = await mt4_client.balance_op(login, BalanceOpKind.DEPOSIT, Decimal("250.10"), "wf-dep-1")
    assert again == first
    assert (first.amount, first.comment) == (Decimal("250.1"), "wf-dep-1")
    assert abs(first.time - datetime.now(UTC)) < timedelta(seconds=5)  # server time -> UTC
    assert mt4_state.users[login].balance == Decimal("250.10")
    assert len(mt4_state.closed_trades(logins=[login])) == 1
    found = await mt4_client.find_balance_op(login, "wf-dep-1", since)
    assert found == first
    assert await mt4_client.find_balance_op(login, "wf-other", since) is None
    await expect(
        PlatformErrorKind.CONFLICT,
        mt4_client.balance_op(login, BalanceOpKind.DEPOSIT, Decimal(5), "wf-dep-1"),
    )
    with pytest.raises(ValueError):
        await mt4_client.balance_op(login, BalanceOpKind.DEPOSIT, Decimal(1), "r" * 32)


async def test_credit_withdraw_and_insufficient_funds(mt4_client: Mt4BridgeClient) -> None:
    login = (await mt4_client.create_account(spec())).login
    await mt4_client.balance_op(login, BalanceOpKind.DEPOSIT, Decimal(100), "d1")
    await mt4_client.balance_op(login, BalanceOpKind.CREDIT_IN, Decimal(30), "c1")
    await mt4_client.balance_op(login, BalanceOpKind.BONUS, Decimal(20), "b1")
    state = await mt4_client.get_account(login)
    assert (state.balance, state.credit, state.equity) == (Decimal(100), Decimal(50), Decimal(150))
    out = await mt4_client.balance_op(login, BalanceOpKind.CREDIT_OUT, Decimal(50), "c2")
    assert out.amount == Decimal(-50)
    await expect(
        PlatformErrorKind.INSUFFICIENT_FUNDS,
        mt4_client.balance_op(login, BalanceOpKind.CREDIT_OUT, Decimal(1), "c3"),
    )
    await expect(
        PlatformErrorKind.INSUFFICIENT_FUNDS,
        mt4_client.balance_op(login, BalanceOpKind.WITHDRAW, Decimal("100.01"), "w1"),
    )
    withdrawal = await mt4_client.balance_op(login, BalanceOpKind.WITHDRAW, Decimal(100), "w2")
    assert withdrawal.amount == Decimal(-100)
    await expect(
        PlatformErrorKind.NOT_FOUND,
        mt4_client.balance_op(1, BalanceOpKind.DEPOSIT, Decimal(1), "x1"),
    )


def _fill(
    login: int,
    position: int,
    entry: str,
    side: str,
    lots: str,
    price: str,
    at: datetime,
    profit: Decimal = Decimal(0),
    commission: Decimal = Decimal(0),
    swap: Decimal = Decimal(0),
) -> SimFill:
    return SimFill(
        login=login,
        position_id=position,
        symbol="XAUUSD",
        side=side,  # type: ignore[arg-type]
        entry=entry,  # type: ignore[arg-type]
        lots=Decimal(lots),
        price=Decimal(price),
        time=at,
        contract_size=Decimal(100),
        profit=profit,
        commission=commission,
        swap=swap,
    )


async def test_closed_deals_are_paged_in_lots_and_utc(
    mt4_sim: Mt4SimulatorThread, mt4_state: Mt4SimState
) -> None:
    client = make_client(mt4_sim, page_size=2)
    login = (await client.create_account(spec())).login
    await client.balance_op(login, BalanceOpKind.DEPOSIT, Decimal(50_000), "d1")
    base = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    for n in range(5):
        at = base + timedelta(hours=n)
        mt4_state.sim_apply_fill(_fill(login, n + 1, "in", "buy", "0.13", "2650.50", at))
        mt4_state.sim_apply_fill(
            _fill(
                login,
                n + 1,
                "out",
                "sell",
                "0.13",
                "2651.50",
                at + timedelta(minutes=5),
                profit=Decimal("13"),
                commission=Decimal("-1.3"),
                swap=Decimal("-0.5"),
            )
        )
    deals = [
        d async for d in client.iter_closed_deals([login], None, base, base + timedelta(hours=10))
    ]
    assert len(deals) == 5  # three pages of two
    deal = deals[0]
    assert (deal.login, deal.symbol, deal.side, deal.entry) == (login, "XAUUSD", "sell", "out")
    assert deal.volume_lots == Decimal("0.13")
    assert deal.time == base + timedelta(minutes=5)
    assert [d.opened_at for d in deals] == [base + timedelta(hours=n) for n in range(5)]
    assert (deal.price, deal.profit, deal.commission, deal.swap) == (
        Decimal("2651.5"),
        Decimal(13),
        Decimal("-1.3"),
        Decimal("-0.5"),
    )
    assert deal.raw["volume"] == 13
    window = [
        d async for d in client.iter_closed_deals(None, "real*", base, base + timedelta(hours=2))
    ]
    assert [d.time for d in window] == [base + timedelta(minutes=5 + 60 * n) for n in range(2)]
    with pytest.raises(ValueError):
        _ = [d async for d in client.iter_closed_deals(None, None, base, base)]
    await client.close()


async def test_open_positions_and_accounts(
    mt4_client: Mt4BridgeClient, mt4_state: Mt4SimState
) -> None:
    login = (await mt4_client.create_account(spec())).login
    await mt4_client.balance_op(login, BalanceOpKind.DEPOSIT, Decimal(10_000), "d1")
    opened = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    mt4_state.sim_apply_fill(_fill(login, 1, "in", "sell", "0.5", "2600", opened))
    mt4_state.sim_mark_prices({"XAUUSD": Decimal("2590")})
    (position,) = await mt4_client.list_open_positions([login], None)
    assert (position.side, position.volume_lots, position.opened_at) == (
        "sell",
        Decimal("0.5"),
        opened,
    )
    assert (position.open_price, position.current_price, position.profit) == (
        Decimal(2600),
        Decimal(2590),
        Decimal(500),
    )
    assert await mt4_client.list_open_positions(None, "demo*") == []
    assert len(await mt4_client.list_open_positions(None, None)) == 1
    (account,) = await mt4_client.list_accounts("real\\retail\\*")
    assert account.login == login
    assert account.equity == Decimal(10_500)
    assert account.margin == Decimal(1300)  # 0.5 * 100 * 2600 / 100
    assert account.margin_level == Decimal("807.69")
    assert await mt4_client.list_accounts("demo*") == []


async def test_an_expired_session_is_reopened_transparently(
    mt4_client: Mt4BridgeClient, clock: FakeClock
) -> None:
    login = (await mt4_client.create_account(spec())).login
    clock.advance(SESSION_TIMEOUT + 5)
    await mt4_client.balance_op(login, BalanceOpKind.DEPOSIT, Decimal(10), "after-expiry")
    clock.advance(SESSION_TIMEOUT + 5)
    assert (await mt4_client.get_account(login)).balance == Decimal(10)


async def test_auth_permission_and_unavailable(mt4_sim: Mt4SimulatorThread) -> None:
    bad = make_client(mt4_sim, secret="not-the-secret")
    await expect(PlatformErrorKind.AUTH, bad.ping())
    await bad.close()
    viewer = make_client(mt4_sim, key_id=DEV_MT4_READONLY_KEY_ID, secret=DEV_MT4_READONLY_SECRET)
    await viewer.ping()
    error = await expect(
        PlatformErrorKind.PERMISSION,
        viewer.balance_op(410_001, BalanceOpKind.DEPOSIT, Decimal(1), "v1"),
    )
    assert error.code == "RET_NOT_ENOUGH_RIGHTS"
    await viewer.close()
    down = Mt4BridgeClient("http://127.0.0.1:9", "k", "s", timeout=1.0)
    error = await expect(PlatformErrorKind.UNAVAILABLE, down.ping())
    assert error.retryable
    await down.close()


async def test_a_garbled_answer_is_a_protocol_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/session":
            return httpx.Response(200, json={"utc_offset_seconds": 7200})
        return httpx.Response(200, json={"unexpected": True})

    client = Mt4BridgeClient("http://bridge", "k", "s", transport=httpx.MockTransport(handler))
    await expect(PlatformErrorKind.PROTOCOL, client.list_groups())
    await client.close()


async def test_a_lost_answer_is_resent_only_when_that_is_safe() -> None:
    calls: dict[str, int] = {}
    record = {"order": 5, "login": 1, "cmd": 6, "profit": 10.0, "comment": "r1", "open_time": 7200}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        calls[path] = calls.get(path, 0) + 1
        if path == "/v1/session":
            return httpx.Response(200, json={"utc_offset_seconds": 7200})
        if calls[path] == 1:  # the first attempt of anything dies in flight
            raise httpx.ReadError("connection reset", request=request)
        return httpx.Response(201, json=record)

    client = Mt4BridgeClient("http://bridge", "k", "s", transport=httpx.MockTransport(handler))
    result = await client.balance_op(1, BalanceOpKind.DEPOSIT, Decimal(10), "r1")
    assert (result.ticket, result.time) == ("5", datetime(1970, 1, 1, tzinfo=UTC))
    assert calls["/v1/trades/balance"] == 2  # the Idempotency-Key makes the resend harmless
    await expect(PlatformErrorKind.UNAVAILABLE, client.create_account(spec()))
    assert calls["/v1/users"] == 1  # not idempotent: the caller reconciles instead
    await client.close()


async def test_balance_and_credit_records_as_money_operations(
    mt4_client: Mt4BridgeClient, mt4_state: Mt4SimState
) -> None:
    login = (await mt4_client.create_account(spec())).login
    await mt4_client.balance_op(login, BalanceOpKind.DEPOSIT, Decimal(1000), "d1")
    await mt4_client.balance_op(login, BalanceOpKind.CREDIT_IN, Decimal(100), "dealer credit")
    await mt4_client.balance_op(login, BalanceOpKind.WITHDRAW, Decimal("20.5"), "dealer fee")
    mt4_state.sim_apply_fill(
        _fill(login, 1, "in", "buy", "0.1", "2650", datetime.now(UTC), commission=Decimal(-1))
    )
    now = datetime.now(UTC)
    ops = [
        op
        async for op in mt4_client.iter_balance_ops(
            None, "real*", now - timedelta(hours=1), now + timedelta(hours=1)
        )
    ]
    assert sorted((op.login, op.kind, op.amount, op.comment) for op in ops) == [
        (login, "balance", Decimal("-20.5"), "dealer fee"),
        (login, "balance", Decimal(1000), "d1"),
        (login, "credit", Decimal(100), "dealer credit"),
    ]
    assert all(abs(op.time - now) < timedelta(minutes=1) for op in ops)
    # No opening deals on MT4: its commission is on the open trade (and then the closed record).
    assert mt4_client.open_commission_reported_on_close
    every = [
        d
        async for d in mt4_client.iter_closed_deals(
            [login], None, now - timedelta(hours=1), now + timedelta(hours=1), openings=True
        )
    ]
    assert every == []
