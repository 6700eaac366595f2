"""Transfers end to end: real API, worker, Temporal dev server and MT5 simulator. After every
transfer the platform balance equals its ledger mirror and the ledger balances."""

from __future__ import annotations

from decimal import Decimal

from fxcrm.core.temporal import BRAND, STAGE, TRADER_ID
from fxcrm.domain import ledger as rules
from fxcrm.domain.fx_rates import DEFAULT_SOURCE
from fxcrm.ledger import check_invariants
from fxcrm.workflows.transfer_types import TransferState
from tests.e2e.money import active_trader, fund_wallet
from tests.e2e.stack import Stack
from tests.e2e.transfers import (
    balance,
    mirror,
    post_transfer,
    second_account,
    wait_transfer,
    wallet,
)


def _platform_balance(stack: Stack, login: int) -> Decimal:
    return Decimal(stack.mt5.state.users[login].balance)


async def _invariants_ok(stack: Stack) -> None:
    async with stack.sessions() as session:
        report = await check_invariants(session)
    assert report.ok, report


async def test_wallet_to_mt5_and_back(stack: Stack) -> None:
    trader_id, token, account = await active_trader(stack)
    login = account["login"]
    await fund_wallet(stack.sessions, trader_id, "500.00")
    target = {"account_id": account["account_id"]}

    sent = await post_transfer(
        stack.http,
        token,
        {"amount": "200.00", "currency": "USD", "source": "wallet", "target": target},
    )
    assert sent.status_code == 201, sent.text
    done = await wait_transfer(stack, token, sent.json()["payment_id"])
    assert done["status"] == "completed", done
    assert _platform_balance(stack, login) == Decimal("200.00")
    assert await mirror(stack, trader_id, login) == Decimal("200.00")
    assert await wallet(stack, trader_id) == Decimal("300.00")

    # The workflow is findable and queryable.
    handle = stack.client.get_workflow_handle(done["workflow_id"])
    described = await handle.describe()
    attributes = described.typed_search_attributes
    assert attributes.get(TRADER_ID) == trader_id and attributes.get(BRAND) == "demo"
    assert attributes.get(STAGE) == "completed"
    state = await handle.query("state", result_type=TransferState)
    assert [c.stage.value for c in state.history] == ["holding", "depositing", "completed"]

    back = await post_transfer(
        stack.http,
        token,
        {"amount": "50.00", "currency": "USD", "source": target, "target": "wallet"},
    )
    assert back.status_code == 201, back.text
    done = await wait_transfer(stack, token, back.json()["payment_id"])
    assert done["status"] == "completed", done
    assert _platform_balance(stack, login) == Decimal("150.00")
    assert await mirror(stack, trader_id, login) == Decimal("150.00")
    assert await wallet(stack, trader_id) == Decimal("350.00")
    await _invariants_ok(stack)


async def test_withdrawal_beyond_free_margin_moves_nothing(stack: Stack) -> None:
    trader_id, token, account = await active_trader(stack)
    login = account["login"]
    await fund_wallet(stack.sessions, trader_id, "200.00")
    target = {"account_id": account["account_id"]}
    sent = await post_transfer(
        stack.http,
        token,
        {"amount": "200.00", "currency": "USD", "source": "wallet", "target": target},
    )
    assert (await wait_transfer(stack, token, sent.json()["payment_id"]))["status"] == "completed"
    # An open position takes most of the margin: the balance is there, free margin is not.
    stack.mt5.state.open_position(login, "EURUSD", "buy", "0.05", "1.08")

    back = await post_transfer(
        stack.http,
        token,
        {"amount": "100.00", "currency": "USD", "source": target, "target": "wallet"},
    )
    assert back.status_code == 201, back.text  # the API does not ask the platform
    done = await wait_transfer(stack, token, back.json()["payment_id"])
    assert (done["status"], done["failure_code"]) == ("failed", "insufficient_free_margin")
    assert _platform_balance(stack, login) == Decimal("200.00")
    assert await mirror(stack, trader_id, login) == Decimal("200.00")
    assert await wallet(stack, trader_id) == Decimal("0.00")
    await _invariants_ok(stack)


async def test_usd_to_eur_wallet_conversion_books_the_spread(stack: Stack) -> None:
    trader_id, token, _ = await active_trader(stack)
    await fund_wallet(stack.sessions, trader_id, "1000.00")
    revenue = rules.broker_revenue_code("EUR")
    revenue_before = await balance(stack, trader_id, revenue)

    sent = await post_transfer(
        stack.http,
        token,
        {
            "amount": "1000.00",
            "currency": "USD",
            "source": "wallet",
            "target": "wallet",
            "target_currency": "EUR",
        },
    )
    assert sent.status_code == 201, sent.text
    done = await wait_transfer(stack, token, sent.json()["payment_id"])
    assert done["status"] == "completed", done

    price = DEFAULT_SOURCE.price("USD", "EUR")
    assert Decimal(done["fx_rate"]) == price.rate and Decimal(done["spread"]) == price.spread
    gross = (Decimal("1000.00") * price.rate).quantize(Decimal("0.01"))
    net = Decimal(done["target_amount"])
    assert await wallet(stack, trader_id) == Decimal("0.00")
    assert await wallet(stack, trader_id, "EUR") == net
    spread = await balance(stack, trader_id, revenue) - revenue_before
    assert spread > 0 and net + spread == gross
    await _invariants_ok(stack)


async def test_account_to_account_and_compensation(stack: Stack) -> None:
    trader_id, token, first = await active_trader(stack)
    second = await second_account(stack, trader_id)
    await fund_wallet(stack.sessions, trader_id, "300.00")
    source = {"account_id": first["account_id"]}
    funded = await post_transfer(
        stack.http,
        token,
        {"amount": "300.00", "currency": "USD", "source": "wallet", "target": source},
    )
    assert (await wait_transfer(stack, token, funded.json()["payment_id"]))["status"] == "completed"

    moved = await post_transfer(
        stack.http,
        token,
        {
            "amount": "120.00",
            "currency": "USD",
            "source": source,
            "target": {"account_id": second["account_id"]},
        },
    )
    done = await wait_transfer(stack, token, moved.json()["payment_id"])
    assert done["status"] == "completed", done
    for login, expected in ((first["login"], "180.00"), (second["login"], "120.00")):
        assert _platform_balance(stack, login) == Decimal(expected)
        assert await mirror(stack, trader_id, login) == Decimal(expected)

    # The target platform refuses (its login does not exist there): the source is credited back.
    ghost = await second_account(stack, trader_id, on_platform=False)
    refused = await post_transfer(
        stack.http,
        token,
        {
            "amount": "80.00",
            "currency": "USD",
            "source": source,
            "target": {"account_id": ghost["account_id"]},
        },
    )
    done = await wait_transfer(stack, token, refused.json()["payment_id"])
    assert done["status"] == "failed", done
    assert _platform_balance(stack, first["login"]) == Decimal("180.00")
    assert await mirror(stack, trader_id, first["login"]) == Decimal("180.00")
    assert await mirror(stack, trader_id, ghost["login"]) == Decimal(0)
    comments = [d.comment for d in stack.mt5.state.deals.values() if d.login == first["login"]]
    pid = done["payment_id"][:26]
    assert f"to:{pid}" in comments and f"tr:{pid}" in comments  # out, then back
    await _invariants_ok(stack)
