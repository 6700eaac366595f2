"""What the transfer tests share: a second trading account, the portal's transfer calls, and
reading ledger balances (shared by API and e2e tests; traders and funding: tests.e2e.money)."""

from __future__ import annotations

import random
import uuid
from decimal import Decimal
from typing import Any

import httpx

from fxcrm.domain import ledger as rules
from fxcrm.ledger import account_by_code
from fxcrm.models import Trader
from fxcrm.seed import DEMO_SERVER
from tests.e2e.money import add_account
from tests.e2e.portal import bearer
from tests.e2e.stack import Stack, eventually


async def post_transfer(
    http: httpx.AsyncClient, token: str, body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    headers = bearer(token)
    if key != "":
        headers["Idempotency-Key"] = key or uuid.uuid4().hex
    return await http.post("/portal/me/transfers", json=body, headers=headers)


async def wait_transfer(
    stack: Stack, token: str, payment_id: str, within: float = 30.0
) -> dict[str, Any]:
    """Waits for a final status and returns the transfer's view."""

    async def check() -> dict[str, Any] | None:
        response = await stack.http.get(f"/portal/me/transfers/{payment_id}", headers=bearer(token))
        assert response.status_code == 200, response.text
        view = dict(response.json())
        return view if view["status"] in {"completed", "failed"} else None

    return await eventually(check, within=within)


async def second_account(
    stack: Stack, trader_id: str, *, on_platform: bool = True
) -> dict[str, Any]:
    """Another open USD account of the trader on the demo MT5 server; `on_platform=False` leaves
    the platform without that login (every balance operation on it is refused)."""
    if on_platform:
        user = stack.mt5.state.add_user(
            group="real\\retail\\std",
            leverage=30,
            password_main="Main-pass-2026",
            password_investor="Invest-pass-2026",
        )
        login = user.login
    else:
        login = random.randint(10**8, 10**9)
    return {"account_id": await add_account(stack.sessions, trader_id, login), "login": login}


async def balance(stack: Stack, trader_id: str, code: str) -> Decimal:
    """Posted balance of a ledger account by code (0 if it was never opened)."""
    async with stack.sessions() as session:
        trader = await session.get(Trader, trader_id)
        assert trader is not None
        try:
            view = await account_by_code(session, trader.brand_id, code)
        except rules.UnknownAccount:
            return Decimal(0)
    return view.posted.amount


async def wallet(stack: Stack, trader_id: str, currency: str = "USD") -> Decimal:
    return await balance(stack, trader_id, rules.client_wallet_code(trader_id, currency))


async def mirror(stack: Stack, trader_id: str, login: int) -> Decimal:
    return await balance(stack, trader_id, rules.client_trading_code(trader_id, DEMO_SERVER, login))
