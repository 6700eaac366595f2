"""Registration: every kind of bad input gets a problem-details 4xx and stores nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from fxcrm.models import Trader
from tests.e2e.portal import registration
from tests.e2e.stack import Stack

QUESTIONNAIRE = {
    "trading_experience_years": 6,
    "leveraged_trades_last_year": 120,
    "understands_leverage_risk": True,
    "relevant_professional_experience": True,
    "portfolio_over_500k_eur": False,
}


async def _traders(stack: Stack) -> int:
    async with stack.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Trader)) or 0)


@pytest.mark.parametrize(
    ("overrides", "status", "needle"),
    [
        ({"date_of_birth": "2099-01-01"}, 422, "future"),
        ({"date_of_birth": "2015-06-01"}, 422, "at least 18"),
        ({"date_of_birth": "not-a-date"}, 422, "date_of_birth"),
        ({"country": "XX"}, 422, "unknown country"),
        ({"country": "KP"}, 422, "does not accept"),
        ({"phone": "12345"}, 422, "international format"),
        ({"email": "not-an-email"}, 422, "email"),
        ({"password": "short"}, 422, "password"),
        ({"account_type": "vip"}, 422, "account_type"),
        ({"account_type": "pro"}, 422, "questionnaire"),
        ({"ib_referral_code": "NOPE"}, 422, "referral code"),
        ({"first_name": ""}, 422, "first_name"),
        ({"first_name": "   "}, 422, "first_name"),
        ({"last_name": "\u3000 "}, 422, "last_name"),
        ({"first_name": "An\u0000na"}, 422, "first_name"),
        ({"last_name": "\u202eSchmidt"}, 422, "last_name"),
        ({"first_name": "An\u2066na\u2069"}, 422, "first_name"),
        ({"last_name": "Schm\u200bidt"}, 422, "last_name"),
        ({"middle_name": "Maria\u200d"}, 422, "middle_name"),
        (
            {
                "address": {
                    "line1": "Haupt\u0000strasse 1",
                    "city": "Berlin",
                    "postal_code": "10115",
                }
            },
            422,
            "line1",
        ),
        (
            {"address": {"line1": "Hauptstrasse 1", "city": "   ", "postal_code": "10115"}},
            422,
            "city",
        ),
        ({"phone": "+4915112345678\n"}, 422, "international format"),
        ({"password": "aaaaaaaaaa"}, 422, "password"),
        ({"password": "qwerty123456"}, 422, "password"),
        ({"password": "Anna-Schmidt-1985"}, 422, "password"),
    ],
)
async def test_bad_registrations_are_refused(
    stack: Stack, overrides: dict[str, Any], status: int, needle: str
) -> None:
    before = await _traders(stack)
    response = await stack.http.post("/portal/demo/register", json=registration(**overrides))
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status
    assert needle.lower() in response.text.lower()
    assert await _traders(stack) == before


async def test_missing_fields_are_listed(stack: Stack) -> None:
    response = await stack.http.post("/portal/demo/register", json={"email": "a@example.com"})
    assert response.status_code == 422
    missing = {tuple(e["loc"])[-1] for e in response.json()["errors"]}
    assert {"password", "first_name", "last_name", "date_of_birth", "country"} <= missing


async def test_duplicate_email_in_a_brand_is_a_conflict(stack: Stack) -> None:
    email = f"dup-{uuid.uuid4().hex[:8]}@example.com"
    first = await stack.http.post("/portal/demo/register", json=registration(email=email))
    assert first.status_code == 201
    again = await stack.http.post("/portal/demo/register", json=registration(email=email.upper()))
    assert again.status_code == 409
    assert again.json()["title"] == "Email already registered"


async def test_unknown_brand(stack: Stack) -> None:
    response = await stack.http.post("/portal/nobrand/register", json=registration())
    assert response.status_code == 404


async def test_pro_with_questionnaire_and_referral_code_is_accepted(stack: Stack) -> None:
    body = registration(account_type="pro", questionnaire=QUESTIONNAIRE, ib_referral_code="SUBIB1")
    response = await stack.http.post("/portal/demo/register", json=body)
    assert response.status_code == 201, response.text
    async with stack.sessions() as session:
        trader = await session.get(Trader, response.json()["trader_id"])
    assert trader is not None
    assert trader.ib_referral_code == "SUBIB1" and trader.ib_partner_id
    assert trader.questionnaire == QUESTIONNAIRE


async def test_names_are_stored_stripped_and_nfc(stack: Stack) -> None:
    body = registration(first_name="  Jose\u0301 ", last_name="Schmidt\n", middle_name="   ")
    response = await stack.http.post("/portal/demo/register", json=body)
    assert response.status_code == 201, response.text
    async with stack.sessions() as session:
        trader = await session.get(Trader, response.json()["trader_id"])
    assert trader is not None
    assert (trader.first_name, trader.last_name, trader.middle_name) == ("José", "Schmidt", None)
