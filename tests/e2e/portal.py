"""What a trader's browser and a staff member's back office do, over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from fxcrm.seed import DEMO_PASSWORD_SUFFIX
from tests import documents

PNG = documents.png()  # real files: uploads are decoded, not only sniffed
PDF = documents.pdf()
PASSWORD = "Trader-pass-2026"


def registration(email: str | None = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "email": email or f"trader-{uuid.uuid4().hex[:10]}@example.com",
        "password": PASSWORD,
        "first_name": "Anna",
        "last_name": "Schmidt",
        "date_of_birth": "1985-03-14",
        "country": "DE",
        "phone": "+4915112345678",
        "address": {"line1": "Hauptstrasse 1", "city": "Berlin", "postal_code": "10115"},
        "account_type": "retail",
    }
    body.update(overrides)
    return body


async def register(http: httpx.AsyncClient, **overrides: Any) -> tuple[str, str]:
    """Registers and logs in; returns (trader id, bearer token)."""
    body = registration(**overrides)
    response = await http.post("/portal/demo/register", json=body)
    assert response.status_code == 201, response.text
    trader_id = response.json()["trader_id"]
    return trader_id, await trader_token(http, body["email"])


async def trader_token(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    response = await http.post("/portal/demo/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def staff_token(http: httpx.AsyncClient, role: str) -> str:
    response = await http.post(
        "/auth/token",
        data={"username": f"{role}@demo.fxcrm.dev", "password": f"{role}{DEMO_PASSWORD_SUFFIX}"},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def upload(
    http: httpx.AsyncClient,
    token: str,
    kind: str,
    doc_type: str,
    content: bytes,
    content_type: str,
    number: str | None = None,
) -> httpx.Response:
    data = {"kind": kind, "doc_type": doc_type, "issuing_country": "DE"}
    if number:
        data["document_number"] = number
    return await http.post(
        "/portal/me/documents",
        headers=bearer(token),
        data=data,
        files={"file": ("doc", content, content_type)},
    )


async def upload_both(http: httpx.AsyncClient, token: str, number: str | None = None) -> None:
    identity = await upload(
        http, token, "identity", "PASSPORT", PNG, "image/png", number or uuid.uuid4().hex[:9]
    )
    assert identity.status_code == 201, identity.text
    address = await upload(http, token, "address", "UTILITY_BILL", PDF, "application/pdf")
    assert address.status_code == 201, address.text


async def onboarding(http: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await http.get("/portal/me/onboarding", headers=bearer(token))
    assert response.status_code == 200, response.text
    return dict(response.json())
