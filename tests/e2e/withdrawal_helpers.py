"""What the withdrawal API and end-to-end tests share: a trader allowed to withdraw, staff users,
and reads (funding the ledger: tests.e2e.money)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from fxcrm.activities.money import wallet_account
from fxcrm.core.db import transaction
from fxcrm.core.security import hash_password
from fxcrm.ledger import AccountView, get_account
from fxcrm.models import (
    LedgerTransfer,
    StaffBrand,
    StaffUser,
    Trader,
)
from tests.e2e.money import verified_trader
from tests.e2e.portal import bearer
from tests.e2e.stack import Stack, eventually

BANK_WIRE = {
    "iban": "DE89 3704 0044 0532 0130 00",
    "bic": "COBADEFFXXX",
    "account_holder": "Anna Schmidt",
}


def withdrawal_body(
    amount: str = "100.00",
    method: str = "bank_wire",
    destination: dict[str, Any] | None = None,
    source: Any = "wallet",
    currency: str = "USD",
) -> dict[str, Any]:
    return {
        "amount": amount,
        "currency": currency,
        "source": source,
        "method": method,
        "destination": BANK_WIRE if destination is None else destination,
    }


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def allowed_trader(stack: Stack) -> tuple[str, str, str]:
    """A registered trader whose KYC is approved (tests.e2e.money.verified_trader). Returns
    (trader id, token, brand id)."""
    trader_id, token = await verified_trader(stack)
    return trader_id, token, await brand_of(stack, trader_id)


async def brand_of(stack: Stack, trader_id: str) -> str:
    async with stack.sessions() as session:
        brand_id = await session.scalar(select(Trader.brand_id).where(Trader.id == trader_id))
    assert brand_id is not None
    return brand_id


async def wallet(stack: Stack, trader_id: str, brand_id: str) -> AccountView:
    async with transaction(stack.sessions) as session:
        return await get_account(session, await wallet_account(session, brand_id, trader_id, "USD"))


async def ledger_account(stack: Stack, account_id: str) -> AccountView:
    async with stack.sessions() as session:
        return await get_account(session, account_id)


async def transfers_of(stack: Stack, payment_id: str) -> dict[str, LedgerTransfer]:
    """The payment's ledger transfers by idempotency key."""
    async with stack.sessions() as session:
        rows = await session.scalars(
            select(LedgerTransfer).where(LedgerTransfer.reference == payment_id)
        )
        return {row.idempotency_key: row for row in rows}


async def status_of(stack: Stack, token: str, payment_id: str, wanted: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        response = await stack.http.get(
            f"/portal/me/withdrawals/{payment_id}", headers=bearer(token)
        )
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        return view if view["status"] == wanted else None

    return await eventually(check, within=45.0)  # type: ignore[no-any-return]


async def staff_user(stack: Stack, brand_id: str, role: str) -> str:
    """A new staff user of the brand; returns a bearer token."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    password = "Staff-pass-2026"
    async with transaction(stack.sessions) as session:
        user = StaffUser(
            email=email,
            full_name=f"Second {role}",
            role=role,
            password_hash=hash_password(password),
        )
        session.add(user)
        await session.flush()
        session.add(StaffBrand(staff_id=user.id, brand_id=brand_id))
    response = await stack.http.post("/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def as_decimal(view: AccountView, posted: bool = True) -> Decimal:
    return (view.posted if posted else view.available).amount
