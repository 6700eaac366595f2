"""What the transfer tests share: traders with accounts, funding through the ledger, the portal's
transfer calls, and reading ledger balances (shared by API and e2e tests)."""

from __future__ import annotations

import random
import uuid
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import func, select, update

from fxcrm.activities.money import psp_clearing_account, trading_mirror_account, wallet_account
from fxcrm.domain import ledger as rules
from fxcrm.domain.ledger import TransferKind
from fxcrm.domain.money import Money
from fxcrm.ledger import TransferRequest, account_by_code, transfer
from fxcrm.models import Payment, Trader, TradingAccount
from fxcrm.models.base import new_id
from fxcrm.seed import DEMO_SERVER
from tests.e2e.portal import bearer, onboarding, register, upload_both
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


async def verified_with_account(stack: Stack, login: int | None = None) -> tuple[str, str, str]:
    """A KYC-approved trader with an open USD account row (no platform user behind it unless
    `login` names one): enough for the API's checks. Returns (trader id, token, account id)."""
    trader_id, token = await register(stack.http)
    async with stack.sessions() as session, session.begin():
        await session.execute(
            update(Trader).where(Trader.id == trader_id).values(kyc_status="GREEN")
        )
        trader = await session.get(Trader, trader_id)
        assert trader is not None
        account = TradingAccount(
            trader_id=trader_id,
            brand_id=trader.brand_id,
            server_id=DEMO_SERVER,
            platform="mt5",
            opening_key=new_id(),
            status="open",
            login=login or random.randint(10**8, 10**9),
            group="real\\retail\\std",
            leverage=30,
            currency="USD",
            account_type="retail",
        )
        session.add(account)
    return trader_id, token, account.id


async def active_trader(stack: Stack) -> tuple[str, str, dict[str, Any]]:
    """A trader through the whole onboarding, with a real MT5 account on the simulator."""
    trader_id, token = await register(stack.http)
    await upload_both(stack.http, token)

    async def active() -> bool:
        return (await onboarding(stack.http, token))["stage"] == "active"

    await eventually(active, within=60)
    accounts = (await stack.http.get("/portal/me/accounts", headers=bearer(token))).json()
    assert len(accounts) == 1 and accounts[0]["status"] == "open"
    return trader_id, token, dict(accounts[0])


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
    async with stack.sessions() as session, session.begin():
        trader = await session.get(Trader, trader_id)
        assert trader is not None
        account = TradingAccount(
            trader_id=trader_id,
            brand_id=trader.brand_id,
            server_id=DEMO_SERVER,
            platform="mt5",
            opening_key=new_id(),
            status="open",
            login=login,
            group="real\\retail\\std",
            leverage=30,
            currency="USD",
            account_type="retail",
        )
        session.add(account)
    return {"account_id": account.id, "login": login}


async def fund_wallet(stack: Stack, trader_id: str, amount: str, currency: str = "USD") -> None:
    """Money in the wallet as a settled deposit would leave it: PSP clearing → wallet."""
    async with stack.sessions() as session, session.begin():
        trader = await session.get(Trader, trader_id)
        assert trader is not None
        await transfer(
            session,
            TransferRequest(
                idempotency_key=f"test-fund:{uuid.uuid4().hex}",
                debit_account_id=await psp_clearing_account(
                    session, trader.brand_id, "sim", currency
                ),
                credit_account_id=await wallet_account(
                    session, trader.brand_id, trader_id, currency
                ),
                amount=Money.of(amount, currency),
                kind=TransferKind.DEPOSIT,
            ),
        )


async def fund_account_mirror(stack: Stack, account_id: str, amount: str) -> None:
    """Only the ledger side of a platform deposit (for API checks that never reach a platform)."""
    async with stack.sessions() as session, session.begin():
        account = await session.get(TradingAccount, account_id)
        assert account is not None
        await transfer(
            session,
            TransferRequest(
                idempotency_key=f"test-fund:{uuid.uuid4().hex}",
                debit_account_id=await psp_clearing_account(
                    session, account.brand_id, "sim", account.currency
                ),
                credit_account_id=await trading_mirror_account(session, account),
                amount=Money.of(amount, account.currency),
                kind=TransferKind.DEPOSIT,
            ),
        )


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


async def payments_of(stack: Stack, trader_id: str) -> int:
    async with stack.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(Payment).where(Payment.trader_id == trader_id)
        )
    return int(count or 0)
