"""MatchTraderClient against the simulator: the whole TradingPlatformGateway surface."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from fxcrm.adapters.platforms.base import (
    AccessLevel,
    BalanceOpKind,
    PlatformError,
    PlatformErrorKind,
)
from fxcrm.adapters.platforms.matchtrader import MatchTraderClient
from fxcrm.adapters.simulators.matchtrader import (
    SIM_SYSTEM_UUID,
    MatchTraderSimConfig,
    MatchTraderSimulatorThread,
)
from fxcrm.adapters.simulators.matchtrader.config import stable_uuid
from tests.adapters.matchtrader.conftest import (
    HIGHRISK,
    RETAIL,
    T0,
    account_spec,
    fill,
    make_client,
)

SINCE = datetime(2026, 1, 1, tzinfo=UTC)


async def test_auth_bearer_bare_and_refused(mtr_sim: MatchTraderSimulatorThread) -> None:
    for bearer in (True, False):
        async with make_client(mtr_sim, bearer=bearer) as client:
            await client.ping()
    async with make_client(mtr_sim, api_key="wrong") as client:
        with pytest.raises(PlatformError) as caught:
            await client.ping()
    assert caught.value.kind is PlatformErrorKind.AUTH and not caught.value.retryable


async def test_rate_limit_is_a_retryable_error(mtr_server: MatchTraderSimulatorThread) -> None:
    mtr_server.reset(MatchTraderSimConfig(rate_limit_per_minute=2))
    async with make_client(mtr_server) as client:
        await client.ping()
        await client.ping()
        with pytest.raises(PlatformError) as caught:
            await client.ping()
    assert caught.value.kind is PlatformErrorKind.RATE_LIMITED and caught.value.retryable
    assert 0 < caught.value.retry_after <= 60  # type: ignore[attr-defined]


async def test_short_retry_after_is_waited_out_once() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers["authorization"])
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "0"}, json={"code": "TOO_MANY"})
        return httpx.Response(200, json={"status": "UP"})

    client = MatchTraderClient(
        "http://mtr.test", "k", bearer=False, transport=httpx.MockTransport(handler)
    )
    await client.ping()
    await client.close()
    assert calls == ["k", "k"]


@pytest.mark.parametrize(
    "answer",
    [httpx.Response(503, text="down"), httpx.ReadTimeout("slow"), httpx.ConnectError("refused")],
)
async def test_outages_are_unavailable(answer: httpx.Response | Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    client = MatchTraderClient("http://mtr.test", "k", transport=httpx.MockTransport(handler))
    with pytest.raises(PlatformError) as caught:
        await client.ping()
    await client.close()
    assert caught.value.kind is PlatformErrorKind.UNAVAILABLE and caught.value.retryable


async def test_create_account_then_second_trading_account_for_the_same_email(
    mtr_client: MatchTraderClient, mtr_sim: MatchTraderSimulatorThread
) -> None:
    spec = account_spec(leverage=200)
    first = await mtr_client.create_account(spec)
    assert (first.group, first.leverage) == (RETAIL, 200)
    second = await mtr_client.create_account(
        spec.model_copy(update={"group": HIGHRISK, "leverage": 50})
    )
    assert second.login != first.login
    assert len(mtr_sim.state.accounts) == 1  # one client account, two trading accounts
    account = mtr_sim.state.account_by_email(spec.email)
    assert account.external_id == spec.client_id
    assert account.personal["firstname"] == "Ada"

    state = await mtr_client.get_account(first.login)
    assert (state.group, state.leverage, state.currency) == (RETAIL, 200, "USD")
    assert state.client_id == spec.client_id and state.access is AccessLevel.FULL
    assert state.balance == 0 and state.margin_level is None

    found = await mtr_client.find_accounts_by_client(spec.client_id)
    assert [(r.login, r.group, r.leverage) for r in found] == [
        (first.login, RETAIL, 200),
        (second.login, HIGHRISK, 50),
    ]
    assert await mtr_client.find_accounts_by_client("someone-else") == []

    other = spec.model_copy(update={"client_id": "another-client"})
    with pytest.raises(PlatformError) as caught:
        await mtr_client.create_account(other)
    assert caught.value.kind is PlatformErrorKind.CONFLICT


async def test_create_account_refusals(mtr_client: MatchTraderClient) -> None:
    with pytest.raises(PlatformError) as caught:
        await mtr_client.create_account(account_spec(group="real\\nope"))
    assert caught.value.kind is PlatformErrorKind.UNKNOWN_GROUP
    with pytest.raises(PlatformError) as caught:
        await mtr_client.create_account(account_spec(group=HIGHRISK, leverage=200))
    assert caught.value.kind is PlatformErrorKind.INVALID_LEVERAGE


async def test_unknown_login_is_not_found(mtr_client: MatchTraderClient) -> None:
    with pytest.raises(PlatformError) as caught:
        await mtr_client.get_account(999_999)
    assert caught.value.kind is PlatformErrorKind.NOT_FOUND


async def test_deposit_and_find_balance_op_by_comment(
    mtr_client: MatchTraderClient, mtr_sim: MatchTraderSimulatorThread
) -> None:
    login = (await mtr_client.create_account(account_spec())).login
    started = datetime.now(UTC)
    assert await mtr_client.find_balance_op(login, "dep-1", started) is None
    result = await mtr_client.balance_op(login, BalanceOpKind.DEPOSIT, Decimal("250.50"), "dep-1")
    assert result.amount == Decimal("250.50") and result.comment == "dep-1"
    assert result.time.tzinfo is not None
    # A retried activity finds the first post instead of posting again.
    found = await mtr_client.find_balance_op(login, "dep-1", started)
    assert found is not None
    assert (found.ticket, found.amount) == (result.ticket, Decimal("250.5"))
    assert len(mtr_sim.state.ledgers) == 1
    assert (await mtr_client.get_account(login)).balance == Decimal("250.5")

    out = await mtr_client.balance_op(login, BalanceOpKind.WITHDRAW, Decimal(50), "wd-1")
    assert out.amount == Decimal(-50)
    found_out = await mtr_client.find_balance_op(login, "wd-1", started)
    assert found_out is not None and found_out.amount == Decimal(-50)


async def test_deposit_follows_the_status_lifecycle(mtr_server: MatchTraderSimulatorThread) -> None:
    state = mtr_server.reset(MatchTraderSimConfig(settle_seconds=0.3))
    async with make_client(mtr_server) as client:
        login = (await client.create_account(account_spec())).login
        result = await client.balance_op(login, BalanceOpKind.DEPOSIT, Decimal(100), "slow-1")
        (op,) = state.manual_ops.values()
        assert op.status == "DONE" and result.ticket == op.uuid

        # Still pending when the activity gives up: retryable, and never reported as absent.
        impatient = make_client(mtr_server, settle_timeout=0.05)
        since = datetime.now(UTC)
        with pytest.raises(PlatformError) as caught:
            await impatient.balance_op(login, BalanceOpKind.DEPOSIT, Decimal(10), "slow-2")
        assert caught.value.retryable and caught.value.code == "pending"
        with pytest.raises(PlatformError) as caught:
            await impatient.find_balance_op(login, "slow-2", since)
        assert caught.value.kind is PlatformErrorKind.UNAVAILABLE
        await asyncio.sleep(0.35)
        assert await impatient.find_balance_op(login, "slow-2", since) is not None
        await impatient.close()


async def test_rejected_deposit_is_an_error_and_not_found(
    mtr_server: MatchTraderSimulatorThread,
) -> None:
    state = mtr_server.reset(MatchTraderSimConfig(settle_seconds=30))
    async with make_client(mtr_server, settle_timeout=5) as client:
        login = (await client.create_account(account_spec())).login
        since = datetime.now(UTC)
        task = asyncio.create_task(
            client.balance_op(login, BalanceOpKind.DEPOSIT, Decimal(10), "rej-1")
        )
        for _ in range(500):  # until the deposit is posted
            if state.manual_ops:
                break
            await asyncio.sleep(0.01)
        (op,) = state.manual_ops.values()
        state.set_manual_status(op.uuid, "REJECTED")
        with pytest.raises(PlatformError) as caught:
            await task
        assert caught.value.code == "rejected"
        assert await client.find_balance_op(login, "rej-1", since) is None


async def test_no_gateway_in_the_account_currency(mtr_server: MatchTraderSimulatorThread) -> None:
    config = MatchTraderSimConfig()
    config.gateways = [g for g in config.gateways if g.currency != "USD"]
    mtr_server.reset(config)
    async with make_client(mtr_server) as client:
        login = (await client.create_account(account_spec())).login
        with pytest.raises(PlatformError) as caught:
            await client.balance_op(login, BalanceOpKind.DEPOSIT, Decimal(10), "d")
    assert caught.value.kind is PlatformErrorKind.INVALID_REQUEST


async def test_withdrawal_beyond_free_margin_is_refused(
    mtr_client: MatchTraderClient, mtr_sim: MatchTraderSimulatorThread
) -> None:
    login = (await mtr_client.create_account(account_spec())).login
    await mtr_client.balance_op(login, BalanceOpKind.DEPOSIT, Decimal(2000), "d")
    mtr_sim.state.sim_apply_fill(fill(login, 1, "in", lots="1", price="1.1"))  # margin 1100
    with pytest.raises(PlatformError) as caught:
        await mtr_client.balance_op(login, BalanceOpKind.WITHDRAW, Decimal(1000), "w")
    assert caught.value.kind is PlatformErrorKind.INSUFFICIENT_FUNDS
    await mtr_client.balance_op(login, BalanceOpKind.WITHDRAW, Decimal(900), "w2")
    state = await mtr_client.get_account(login)
    assert state.balance == 1100 and state.margin == 1100 and state.free_margin == 0
    assert state.margin_level == 100


async def test_credit_and_bonus(mtr_client: MatchTraderClient) -> None:
    login = (await mtr_client.create_account(account_spec())).login
    since = datetime.now(UTC)
    await mtr_client.balance_op(login, BalanceOpKind.CREDIT_IN, Decimal(50), "cr-1")
    bonus = await mtr_client.balance_op(login, BalanceOpKind.BONUS, Decimal(20), "bn-1")
    assert bonus.comment == "bonus:bn-1"
    found = await mtr_client.find_balance_op(login, "bn-1", since)
    assert found is not None and found.ticket == bonus.ticket and found.amount == 20
    out = await mtr_client.balance_op(login, BalanceOpKind.CREDIT_OUT, Decimal(30), "co-1")
    assert out.amount == -30
    assert (await mtr_client.get_account(login)).credit == 40
    with pytest.raises(PlatformError) as caught:
        await mtr_client.balance_op(login, BalanceOpKind.CREDIT_OUT, Decimal(100), "co-2")
    assert caught.value.kind is PlatformErrorKind.INSUFFICIENT_FUNDS


async def test_leverage_access_and_group_changes(mtr_client: MatchTraderClient) -> None:
    login = (await mtr_client.create_account(account_spec())).login
    await mtr_client.set_leverage(login, 500)
    assert (await mtr_client.get_account(login)).leverage == 500
    with pytest.raises(PlatformError) as caught:
        await mtr_client.set_leverage(login, 501)
    assert caught.value.kind is PlatformErrorKind.INVALID_LEVERAGE
    with pytest.raises(PlatformError) as caught:
        await mtr_client.set_group(login, HIGHRISK)  # 500 is above that group's 100
    assert caught.value.kind is PlatformErrorKind.INVALID_LEVERAGE
    await mtr_client.set_leverage(login, 100)
    await mtr_client.set_group(login, HIGHRISK)
    assert (await mtr_client.get_account(login)).group == HIGHRISK
    with pytest.raises(PlatformError) as caught:
        await mtr_client.set_group(login, "real\\nope")
    assert caught.value.kind is PlatformErrorKind.UNKNOWN_GROUP
    for access in AccessLevel:
        await mtr_client.set_access(login, access)
        state = await mtr_client.get_account(login)
        assert (state.access, state.group) == (access, HIGHRISK)
    with pytest.raises(PlatformError) as caught:
        await mtr_client.set_access(999_999, AccessLevel.FULL)
    assert caught.value.kind is PlatformErrorKind.NOT_FOUND


async def test_groups_and_accounts(mtr_client: MatchTraderClient) -> None:
    groups = await mtr_client.list_groups()
    assert {RETAIL, HIGHRISK, "real\\pro\\std", "real\\pro\\highrisk"} <= set(groups)
    a = (await mtr_client.create_account(account_spec())).login
    b = (
        await mtr_client.create_account(
            account_spec(email="b@example.com", client_id="c-2", group=HIGHRISK)
        )
    ).login
    everyone = await mtr_client.list_accounts(None)
    assert [(s.login, s.client_id) for s in everyone] == [
        (a, "7f1c6a52-3d0e-4b8a-9c11-5e2f4d6b8a90"),
        (b, "c-2"),
    ]
    assert [s.login for s in await mtr_client.list_accounts(HIGHRISK)] == [b]


async def test_open_positions(
    mtr_client: MatchTraderClient, mtr_sim: MatchTraderSimulatorThread
) -> None:
    a = (await mtr_client.create_account(account_spec())).login
    b = (await mtr_client.create_account(account_spec(email="b@example.com", group=HIGHRISK))).login
    mtr_sim.state.sim_apply_fill(fill(a, 11, "in", lots="0.3", price="1.1", commission="-2"))
    mtr_sim.state.sim_apply_fill(fill(b, 12, "in", side="sell", lots="1", price="1.1", minutes=1))
    mtr_sim.state.sim_mark_prices({"EURUSD": Decimal("1.099")})
    everyone = await mtr_client.list_open_positions(None, None)
    assert [p.position_id for p in everyone] == ["11", "12"]
    (mine,) = await mtr_client.list_open_positions([a], None)
    assert (mine.side, mine.volume_lots, mine.commission) == ("buy", Decimal("0.3"), -2)
    assert mine.profit == Decimal("-30") and mine.current_price == Decimal("1.099")
    assert mine.opened_at == T0
    (theirs,) = await mtr_client.list_open_positions(None, HIGHRISK)
    assert theirs.side == "sell" and theirs.profit == 100


async def test_closed_deals_are_paged_deduplicated_and_utc(
    mtr_server: MatchTraderSimulatorThread,
) -> None:
    state = mtr_server.reset(MatchTraderSimConfig())
    async with make_client(mtr_server, page_size=3) as client:
        a = (await client.create_account(account_spec())).login
        b = (await client.create_account(account_spec(email="b@example.com", group=HIGHRISK))).login
        for n in range(7):
            state.sim_apply_fill(fill(a, n, "in", minutes=n))
            state.sim_apply_fill(
                fill(
                    a,
                    n,
                    "out",
                    side="sell",
                    price="1.1010",
                    minutes=n + 0.5,
                    profit="100",
                    commission="-3",
                )
            )
        # Two exits at the very same instant straddle a page boundary.
        state.sim_apply_fill(fill(b, 100, "in", lots="2", minutes=20))
        state.sim_apply_fill(fill(b, 100, "out", side="sell", lots="1", minutes=30, profit="5"))
        state.sim_apply_fill(fill(b, 100, "out", side="sell", lots="1", minutes=30, profit="6"))

        deals = [
            d async for d in client.iter_closed_deals([a, b], None, SINCE, T0 + timedelta(hours=1))
        ]
        assert len(deals) == 9 and len({d.deal_id for d in deals}) == 9
        first = deals[0]
        assert (first.login, first.position_id, first.side, first.entry) == (a, "0", "sell", "out")
        assert (first.volume_lots, first.price, first.profit, first.commission) == (
            Decimal(1),
            Decimal("1.101"),
            Decimal(100),
            Decimal(-3),
        )
        assert first.time == T0 + timedelta(minutes=0.5) and first.time.tzinfo == UTC
        assert first.opened_at == T0 and first.opened_at.tzinfo == UTC
        assert [d.opened_at for d in deals if d.login == b] == [T0 + timedelta(minutes=20)] * 2
        group_deals = [
            d
            async for d in client.iter_closed_deals(None, HIGHRISK, SINCE, T0 + timedelta(hours=1))
        ]
        assert [d.profit for d in group_deals] == [5, 6]
        window = [
            d
            async for d in client.iter_closed_deals(
                [a], None, T0 + timedelta(minutes=2), T0 + timedelta(minutes=4)
            )
        ]
        assert [d.position_id for d in window] == ["2", "3"]
        with pytest.raises(ValueError):
            [d async for d in client.iter_closed_deals(None, None, SINCE, T0)]


async def test_explicit_system_uuid(mtr_sim: MatchTraderSimulatorThread) -> None:
    async with make_client(mtr_sim, system_uuid=SIM_SYSTEM_UUID) as client:
        assert RETAIL in await client.list_groups()
    async with make_client(mtr_sim, system_uuid="not-ours") as client:
        with pytest.raises(PlatformError) as caught:
            await client.create_account(account_spec())
    assert caught.value.kind is PlatformErrorKind.UNKNOWN_GROUP
    assert stable_uuid("x") == stable_uuid("x")


async def test_opening_commission_from_the_ledger_and_money_operations(
    mtr_client: MatchTraderClient, mtr_sim: MatchTraderSimulatorThread
) -> None:
    a = (await mtr_client.create_account(account_spec())).login
    state = mtr_sim.state
    state.sim_apply_fill(fill(a, 7, "in", lots="1", commission="-3.5"))
    state.sim_apply_fill(fill(a, 7, "in", lots="1", minutes=1, commission="-3.5"))
    state.sim_apply_fill(
        fill(a, 7, "out", side="sell", lots="2", minutes=5, profit="40", commission="-7")
    )
    until = T0 + timedelta(hours=1)
    closing = [d async for d in mtr_client.iter_closed_deals([a], None, SINCE, until)]
    assert [(d.entry, d.commission) for d in closing] == [("out", Decimal(-7))]
    every = [d async for d in mtr_client.iter_closed_deals([a], None, SINCE, until, openings=True)]
    # The two entries' commission, not the exit's (the closed position carries that one).
    openings = [d for d in every if d.entry == "in"]
    assert [(d.position_id, d.commission, d.time) for d in openings] == [
        ("7", Decimal("-3.5"), T0),
        ("7", Decimal("-3.5"), T0 + timedelta(minutes=1)),
    ]
    assert len({d.deal_id for d in every}) == 3

    await mtr_client.balance_op(a, BalanceOpKind.DEPOSIT, Decimal(100), "dealer deposit")
    await mtr_client.balance_op(a, BalanceOpKind.CREDIT_IN, Decimal(50), "dealer credit")
    now = datetime.now(UTC)
    ops = [
        op
        async for op in mtr_client.iter_balance_ops(
            None, "*", now - timedelta(hours=1), now + timedelta(hours=1)
        )
    ]
    assert sorted((op.login, op.kind, op.amount, op.comment) for op in ops) == [
        (a, "balance", Decimal(100), "dealer deposit"),
        (a, "credit", Decimal(50), "dealer credit"),
    ]
