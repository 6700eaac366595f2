"""Staff see why a deal paid an IB nothing: one deal's explanation, the unpaid deals filtered by
reason, counts per reason; another brand's deals are 404; bad filters are 422."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from temporalio.testing import ActivityEnvironment

from fxcrm.activities.ib_accrual import IbAccrualActivities
from fxcrm.models import (
    IbAccrualCursor,
    IbPlan,
    IbPlanAssignment,
    IbPlanVersion,
    IngestedDeal,
    PlatformServer,
    TradingAccount,
)
from fxcrm.workflows.ib_accrual_types import AccrueInput
from tests.api.ib_fixtures import IbBrand, add_client, create_ib, new_brand
from tests.e2e.stack import Stack

T0 = datetime(2026, 2, 2, tzinfo=UTC)


async def _server_with_client(stack: Stack, brand: IbBrand, ib_id: str) -> tuple[str, int, str]:
    """A platform server of the brand's own (the stack's worker does not accrue it), the IB's
    per-lot plan on EURUSD only, and a client of the IB with an account on the server."""
    server_id = f"mt5-{brand.code}"
    login = 500_000 + uuid.uuid4().int % 10**5
    trader_id = await add_client(stack, brand, ib_id, since=T0 - timedelta(days=30))
    async with stack.sessions() as session, session.begin():
        session.add(
            PlatformServer(
                id=server_id,
                brand_id=brand.id,
                platform="mt5",
                name="test",
                base_url="https://127.0.0.1:1",
                config={},
            )
        )
        plan = IbPlan(brand_id=brand.id, name="EURUSD only")
        session.add(plan)
        await session.flush()
        rules = {"symbol_groups": {"EURUSD": "fx"}, "per_lot": {"fx": {"*": "6"}}}
        session.add(
            IbPlanVersion(
                plan_id=plan.id, version=1, effective_from=T0 - timedelta(days=60), rules=rules
            )
        )
        session.add(
            IbPlanAssignment(ib_id=ib_id, plan_id=plan.id, effective_from=T0 - timedelta(days=60))
        )
        await session.flush()
        session.add(
            TradingAccount(
                trader_id=trader_id,
                brand_id=brand.id,
                server_id=server_id,
                platform="mt5",
                opening_key=uuid.uuid4().hex,
                status="open",
                login=login,
                group="real\\retail\\std",
                leverage=100,
                currency="USD",
                account_type="retail",
            )
        )
    return server_id, login, trader_id


async def _deal(
    stack: Stack,
    server_id: str,
    deal_id: str,
    login: int,
    symbol: str = "EURUSD",
    entry: str = "out",
) -> None:
    async with stack.sessions() as session, session.begin():
        session.add(
            IngestedDeal(
                server_id=server_id,
                deal_id=deal_id,
                login=login,
                position_id=f"p-{deal_id}",
                symbol=symbol,
                side="sell",
                entry=entry,
                volume_lots=Decimal(2),
                price=Decimal("1.1"),
                profit=Decimal(0),
                commission=Decimal(0),
                swap=Decimal(0),
                closed_at=T0,
                raw={},
            )
        )


async def test_staff_see_why_a_deal_paid_nothing(stack: Stack) -> None:
    brand = await new_brand(stack, roles=("admin", "finance"))
    other = await new_brand(stack, roles=("finance",))
    ib = await create_ib(stack.http, brand)
    server_id, login, trader_id = await _server_with_client(stack, brand, ib["ib_id"])
    await _deal(stack, server_id, "paid", login)
    await _deal(stack, server_id, "gold", login, symbol="XAUUSD")  # the plan has no rate for it
    await _deal(stack, server_id, "opening", login, entry="in")
    await _deal(stack, server_id, "stranger", 999_111)  # an account fxcrm does not know
    result = await ActivityEnvironment().run(
        IbAccrualActivities(stack.sessions).accrue_deals, AccrueInput(server_id=server_id)
    )
    assert result.read == 4 and result.excluded == 3
    await _deal(stack, server_id, "later", login)  # not read by the accrual yet
    finance = brand.staff("finance")

    async def explain(deal_id: str) -> Any:
        url = f"/backoffice/ib/deals/{server_id}/{deal_id}/explanation"
        response = await stack.http.get(url, headers=finance)
        assert response.status_code == 200, response.text
        return response.json()

    paid = await explain("paid")
    assert paid["status"] == "paid" and paid["unpaid"] is None
    assert [(line["beneficiary_id"], line["rule"], line["amount"]) for line in paid["lines"]] == [
        (ib["ib_id"], "per_lot", "12")
    ]
    gold = await explain("gold")
    assert gold["status"] == "unpaid" and gold["lines"] == []
    assert gold["unpaid"] == {
        "reason": "no_rate",
        "detail": "no_rate",
        "trader_id": trader_id,
        "ib_id": ib["ib_id"],
    }
    assert (await explain("opening"))["unpaid"]["reason"] == "opening_deal"
    stranger = await explain("stranger")
    assert stranger["unpaid"] == {
        "reason": "unknown_login",
        "detail": "unknown_login",
        "trader_id": None,
        "ib_id": None,
    }
    assert (await explain("later"))["status"] == "pending"
    # Read by an accrual from before the reasons were kept: neither lines nor a reason.
    async with stack.sessions() as session, session.begin():
        later = await session.scalar(
            select(IngestedDeal.id).where(
                IngestedDeal.server_id == server_id, IngestedDeal.deal_id == "later"
            )
        )
        await session.execute(
            update(IbAccrualCursor)
            .where(IbAccrualCursor.server_id == server_id)
            .values(upto_deal_pk=later)
        )
    assert (await explain("later"))["status"] == "unrecorded"

    listed = await stack.http.get(
        "/backoffice/ib/deals/unpaid",
        params={"server_id": server_id, "reason": "unknown_login"},
        headers=finance,
    )
    assert listed.status_code == 200
    assert [d["deal_id"] for d in listed.json()["deals"]] == ["stranger"]
    page = await stack.http.get(
        "/backoffice/ib/deals/unpaid", params={"server_id": server_id, "limit": 2}, headers=finance
    )
    assert [d["deal_id"] for d in page.json()["deals"]] == ["gold", "opening"]
    rest = await stack.http.get(
        "/backoffice/ib/deals/unpaid",
        params={"server_id": server_id, "after": page.json()["next_after"]},
        headers=finance,
    )
    assert [d["deal_id"] for d in rest.json()["deals"]] == ["stranger"]
    assert rest.json()["next_after"] is None
    summary = await stack.http.get("/backoffice/ib/deals/unpaid/summary", headers=finance)
    assert summary.json()["by_reason"] == {"no_rate": 1, "opening_deal": 1, "unknown_login": 1}

    # Another brand's staff: the deal does not exist for them, and none is listed.
    theirs = other.staff("finance")
    hidden = await stack.http.get(
        f"/backoffice/ib/deals/{server_id}/gold/explanation", headers=theirs
    )
    assert hidden.status_code == 404
    assert hidden.headers["content-type"].startswith("application/problem+json")
    none = await stack.http.get(
        "/backoffice/ib/deals/unpaid", params={"server_id": server_id}, headers=theirs
    )
    assert none.json() == {"deals": [], "next_after": None}
    missing = await stack.http.get(
        f"/backoffice/ib/deals/{server_id}/nope/explanation", headers=finance
    )
    assert missing.status_code == 404
    for params in ({"reason": "x'; drop"}, {"limit": 5000}, {"after": -1}):
        bad = await stack.http.get("/backoffice/ib/deals/unpaid", params=params, headers=finance)
        assert bad.status_code == 422, params
