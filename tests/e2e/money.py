"""Test data the payment tests share (deposits, withdrawals, transfers, reconciliation): traders
allowed to pay, their trading accounts, money put straight into the ledger as a settled deposit
would leave it, and counts. Database helpers take a session factory, so that activity and
workflow tests without the whole stack use them too."""

from __future__ import annotations

import random
import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fxcrm.activities.money import psp_clearing_account, trading_mirror_account, wallet_account
from fxcrm.core.db import transaction
from fxcrm.domain.ledger import TransferKind
from fxcrm.domain.money import Money
from fxcrm.ledger import TransferRequest, transfer
from fxcrm.models import Payment, Trader, TradingAccount
from fxcrm.models.base import new_id
from fxcrm.seed import DEMO_SERVER
from tests.e2e.portal import bearer, onboarding, register, upload_both
from tests.e2e.stack import Stack, eventually

Sessions = async_sessionmaker[AsyncSession]


# ---------------------------------------------------------------- rows


def new_trader(brand_id: str, **overrides: Any) -> Trader:
    """A trader row that went through onboarding (status active), for tests without the API."""
    values: dict[str, Any] = {
        "email": f"{uuid.uuid4().hex[:10]}@example.com",
        "password_hash": "x",
        "first_name": "Anna",
        "last_name": "Schmidt",
        "date_of_birth": "1985-03-14",
        "phone": "+4915112345678",
        "address": "{}",
        "country": "DE",
        "account_type": "retail",
        "status": "active",
    }
    values.update(overrides)
    return Trader(brand_id=brand_id, **values)


def new_account(
    trader_id: str,
    brand_id: str,
    login: int | None = None,
    *,
    server_id: str = DEMO_SERVER,
    platform: str = "mt5",
    currency: str = "USD",
    group: str = "real\\retail\\std",
    leverage: int = 30,
) -> TradingAccount:
    """An open trading account row, by default USD on the demo MT5 server (no platform user
    behind it unless `login` names one)."""
    return TradingAccount(
        trader_id=trader_id,
        brand_id=brand_id,
        server_id=server_id,
        platform=platform,
        opening_key=new_id(),
        status="open",
        login=login or random.randint(10**8, 10**9),
        group=group,
        leverage=leverage,
        currency=currency,
        account_type="retail",
    )


async def add_account(sessions: Sessions, trader_id: str, login: int | None = None) -> str:
    """Adds new_account() for the trader; returns its id."""
    async with transaction(sessions) as session:
        trader = await session.get(Trader, trader_id)
        assert trader is not None
        account = new_account(trader_id, trader.brand_id, login)
        session.add(account)
    return account.id


# ---------------------------------------------------------------- traders through the API


async def approve_kyc(sessions: Sessions, trader_id: str) -> None:
    """KYC approved in the database (onboarding itself is tested elsewhere): deposits,
    withdrawals and wallet transfers are allowed."""
    async with transaction(sessions) as session:
        await session.execute(
            update(Trader).where(Trader.id == trader_id).values(kyc_status="GREEN")
        )


async def verified_trader(stack: Stack) -> tuple[str, str]:
    """A registered trader whose KYC is approved, without the whole onboarding."""
    trader_id, token = await register(stack.http)

    async def applicant_opened() -> bool:
        async with stack.sessions() as session:
            trader = await session.get(Trader, trader_id)
            return trader is not None and trader.kyc_applicant_id is not None

    # After the onboarding workflow's own KYC write (applicant created), which would overwrite
    # ours; it then waits for documents that never come.
    await eventually(applicant_opened)
    await approve_kyc(stack.sessions, trader_id)
    return trader_id, token


async def verified_with_account(stack: Stack, login: int | None = None) -> tuple[str, str, str]:
    """verified_trader() with an open USD account row (new_account()): enough for the API's
    checks. Returns (trader id, token, account id)."""
    trader_id, token = await verified_trader(stack)
    return trader_id, token, await add_account(stack.sessions, trader_id, login)


async def active_trader(stack: Stack) -> tuple[str, str, dict[str, Any]]:
    """A trader through the whole onboarding, with its one open USD MT5 account on the simulator
    (as the portal shows it)."""
    trader_id, token = await register(stack.http)
    await upload_both(stack.http, token)

    async def active() -> bool:
        return (await onboarding(stack.http, token))["stage"] == "active"

    await eventually(active, within=60)
    accounts = (await stack.http.get("/portal/me/accounts", headers=bearer(token))).json()
    assert len(accounts) == 1, accounts
    assert (accounts[0]["status"], accounts[0]["currency"]) == ("open", "USD"), accounts
    return trader_id, token, dict(accounts[0])


# ---------------------------------------------------------------- money in the ledger


async def fund_wallet(
    sessions: Sessions, trader_id: str, amount: str, currency: str = "USD"
) -> None:
    """Money in the wallet as a settled deposit would leave it: PSP clearing → wallet."""
    async with transaction(sessions) as session:
        trader = await session.get(Trader, trader_id)
        assert trader is not None
        clearing = await psp_clearing_account(session, trader.brand_id, "sim", currency)
        wallet = await wallet_account(session, trader.brand_id, trader_id, currency)
        await _deposit_like(session, clearing, wallet, Money.of(amount, currency))


async def fund_mirror(sessions: Sessions, account_id: str, amount: str) -> str:
    """Only the ledger side of a platform deposit to a trading account (for checks that never
    reach a platform, or with the platform funded apart); returns the mirror's id."""
    async with transaction(sessions) as session:
        account = await session.get(TradingAccount, account_id)
        assert account is not None
        clearing = await psp_clearing_account(session, account.brand_id, "sim", account.currency)
        mirror = await trading_mirror_account(session, account)
        await _deposit_like(session, clearing, mirror, Money.of(amount, account.currency))
        return mirror


async def _deposit_like(session: AsyncSession, clearing: str, to: str, money: Money) -> None:
    await transfer(
        session,
        TransferRequest(
            idempotency_key=f"test-fund:{uuid.uuid4().hex}",
            debit_account_id=clearing,
            credit_account_id=to,
            amount=money,
            kind=TransferKind.DEPOSIT,
        ),
    )


# ---------------------------------------------------------------- reads


async def payments_of(sessions: Sessions, trader_id: str) -> int:
    """How many payments the trader has (a refused request stores none)."""
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(Payment).where(Payment.trader_id == trader_id)
        )
    return int(count or 0)
