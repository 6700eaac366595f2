"""What a trader's portal and the PSP do around a deposit, over HTTP (shared by API and e2e tests)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from sqlalchemy import select

from fxcrm.adapters.psp.simulator_client import EVENT_ID_HEADER, SIGNATURE_HEADER, webhook_signature
from fxcrm.models import LedgerTransfer
from tests.e2e.portal import bearer
from tests.e2e.stack import Stack, eventually

CARD_OK = "4242424242424242"
CARD_3DS = "4000000000003220"
CARD_DECLINED = "4000000000000002"


def deposit_body(amount: str = "100.00", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "amount": amount,
        "currency": "USD",
        "method": "card",
        "target": "wallet",
        "instrument": CARD_OK,
    }
    body.update(overrides)
    return body


async def deposit(
    http: httpx.AsyncClient, token: str, body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    headers = bearer(token)
    headers["Idempotency-Key"] = key or uuid.uuid4().hex
    return await http.post("/portal/me/deposits", json=body, headers=headers)


async def payment_status(stack: Stack, token: str, payment_id: str) -> str:
    response = await stack.http.get(f"/portal/me/payments/{payment_id}", headers=bearer(token))
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


async def wait_payment(
    stack: Stack, token: str, payment_id: str, status: str, within: float = 30.0
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        response = await stack.http.get(f"/portal/me/payments/{payment_id}", headers=bearer(token))
        view = response.json()
        return dict(view) if view["status"] == status else None

    return await eventually(check, within=within)  # type: ignore[no-any-return]


async def deposit_transfers(stack: Stack, payment_id: str) -> list[str]:
    """Idempotency keys of the ledger transfers this deposit made."""
    async with stack.sessions() as session:
        keys = await session.scalars(
            select(LedgerTransfer.idempotency_key).where(
                LedgerTransfer.idempotency_key.like(f"deposit:{payment_id}%")
            )
        )
        return sorted(keys.all())


def signed_psp_event(secret: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: webhook_signature(secret, body),
        EVENT_ID_HEADER: str(event["id"]),
    }
    return body, headers
