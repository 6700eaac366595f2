"""Staff recalculation through the real API: roles, bad input refused with a code, a settled
period's plan change previewed by finance and applied once by an admin into the next open period,
audited, and the adjustment lines shown alike to the partner and the back office."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from temporalio.testing import ActivityEnvironment

from fxcrm.activities.ib_accrual import IbAccrualActivities
from fxcrm.models import IngestedDeal, PlatformServer, TradingAccount
from fxcrm.workflows.ib_accrual_types import AccrueInput
from tests.api.ib_fixtures import (
    IbBrand,
    add_client,
    audit_actions,
    create_ib,
    ib_headers,
    new_brand,
    settle,
)
from tests.e2e.stack import Stack

URL = "/backoffice/ib/recalculations"
PERIOD = "2026-01"
SINCE = "2026-01-01T00:00:00Z"


def per_lot(rate: str) -> dict[str, Any]:
    return {"symbol_groups": {"EURUSD": "fx_major"}, "per_lot": {"fx_major": {"*": rate}}}


async def _plan(stack: Stack, brand: IbBrand, ib_id: str, rate: str) -> None:
    admin = brand.staff("admin")
    plan = await stack.http.post(
        "/backoffice/ib-plans", json={"name": f"p{uuid.uuid4().hex[:6]}"}, headers=admin
    )
    assert plan.status_code == 201, plan.text
    plan_id = plan.json()["plan_id"]
    version = await stack.http.post(
        f"/backoffice/ib-plans/{plan_id}/versions",
        json={"effective_from": SINCE, "rules": per_lot(rate)},
        headers=admin,
    )
    assert version.status_code == 201, version.text
    assigned = await stack.http.post(
        f"/backoffice/ib/{ib_id}/plan-assignments",
        json={"plan_id": plan_id, "effective_from": SINCE},
        headers=admin,
    )
    assert assigned.status_code == 201, assigned.text


async def _server(stack: Stack, brand: IbBrand) -> str:
    """A server of the brand's own: the stack's worker never syncs (nor accrues) it."""
    server_id = f"mt5-{brand.code}"
    async with stack.sessions() as session, session.begin():
        session.add(
            PlatformServer(
                id=server_id,
                brand_id=brand.id,
                platform="mt5",
                name=server_id,
                base_url="https://127.0.0.1:1",
                config={},
            )
        )
    return server_id


async def _trade(stack: Stack, brand: IbBrand, server_id: str, trader_id: str, lots: str) -> int:
    login = 800_000_000 + uuid.uuid4().int % 10**8
    async with stack.sessions() as session, session.begin():
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
                leverage=30,
                currency="USD",
                account_type="retail",
            )
        )
        deal = IngestedDeal(
            server_id=server_id,
            deal_id=uuid.uuid4().hex[:12],
            login=login,
            position_id="p1",
            symbol="EURUSD",
            side="sell",
            entry="out",
            volume_lots=Decimal(lots),
            price=Decimal("1.08"),
            profit=Decimal(0),
            commission=Decimal(0),
            swap=Decimal(0),
            closed_at=datetime(2026, 1, 12, tzinfo=UTC),
            raw={},
        )
        session.add(deal)
        await session.flush()
        return deal.id


async def test_preview_apply_once_and_the_partner_sees_the_adjustment(stack: Stack) -> None:
    brand = await new_brand(stack, roles=("admin", "finance", "dealer"))
    http = stack.http
    master = await create_ib(http, brand, name="Master")
    sub = await create_ib(http, brand, parent_id=master["ib_id"], name="Sub")
    await _plan(stack, brand, master["ib_id"], "10")
    await _plan(stack, brand, sub["ib_id"], "7")
    server_id = await _server(stack, brand)
    client = await add_client(stack, brand, sub["ib_id"])
    await _trade(stack, brand, server_id, client, "2")
    accrued = await ActivityEnvironment().run(
        IbAccrualActivities(stack.sessions).accrue_deals,
        AccrueInput(server_id=server_id, max_deals=100),
    )
    assert accrued.accrued == 2  # Sub 14, Master 20 - 14 = 6
    for ib in (master, sub):
        await settle(stack, brand, ib["ib_id"], PERIOD, payable="1")

    body = {
        "period": PERIOD,
        "change": {"plan": {"ib_id": sub["ib_id"], "rules": per_lot("9")}},
        "reason": "rate agreed in December, set late",
    }
    # Roles: finance previews, only an admin applies; a dealer does neither.
    assert (await http.post(URL, json=body, headers=brand.staff("dealer"))).status_code == 403
    previewed = await http.post(URL, json=body, headers=brand.staff("finance"))
    assert previewed.status_code == 201, previewed.text
    preview = previewed.json()
    assert preview["status"] == "previewed" and preview["target_period"] is None
    deltas = {row["ib_id"]: row["delta"] for row in preview["preview"]["per_ib"]}
    assert deltas == {sub["ib_id"]: "4.00000000", master["ib_id"]: "-4.00000000"}
    assert preview["preview"]["totals"]["USD"]["delta"] == "0.00000000"
    assert len(preview["preview"]["sample"]) == 2
    apply_url = f"{URL}/{preview['id']}/apply"
    assert (await http.post(apply_url, headers=brand.staff("finance"))).status_code == 403

    applied = await http.post(apply_url, headers=brand.staff("admin"))
    assert applied.status_code == 200, applied.text
    assert applied.json()["target_period"] == "2026-02"
    assert applied.json()["applied"]["written"] == 2
    again = await http.post(apply_url, headers=brand.staff("admin"))
    assert again.status_code == 409 and again.json()["code"] == "already_applied"
    read = await http.get(f"{URL}/{preview['id']}", headers=brand.staff("finance"))
    assert read.status_code == 200 and read.json()["status"] == "applied"
    assert await audit_actions(stack, preview["id"]) == [
        "ib.recalculation_previewed",
        "ib.recalculation_applied",
    ]

    # The partner and the back office read the same lines and totals for the next period.
    partner = await ib_headers(http, brand, sub)
    mine = await http.get("/partner/commissions", params={"period": "2026-02"}, headers=partner)
    staff = await http.get(
        f"/backoffice/ib/{sub['ib_id']}/commissions",
        params={"period": "2026-02"},
        headers=brand.staff("finance"),
    )
    assert mine.status_code == 200 and mine.json() == staff.json()
    (line,) = mine.json()["lines"]
    assert line["rule"] == f"adjustment:{preview['id']}:per_lot"
    assert Decimal(line["amount"]) == Decimal(4)
    assert "rate agreed in December" in line["explanation"]
    assert "original=14.00000000" in line["explanation"]
    assert "recalculated=18.00000000" in line["explanation"]
    totals = await http.get("/partner/periods/2026-02", headers=partner)
    staff_totals = await http.get(
        f"/backoffice/ib/{sub['ib_id']}/periods/2026-02", headers=brand.staff("finance")
    )
    assert totals.json() == staff_totals.json()
    assert Decimal(totals.json()["totals"]["USD"]) == Decimal(4)


async def test_bad_input_is_refused_with_a_code(stack: Stack) -> None:
    brand = await new_brand(stack, roles=("admin", "finance"))
    other = await new_brand(stack, roles=("admin",))
    ib = await create_ib(stack.http, brand)
    foreign = await create_ib(stack.http, other)
    finance = brand.staff("finance")

    async def refused(period: str, change: dict[str, Any], status: int, code: str) -> None:
        body = {"period": period, "change": change, "reason": "checking refusals"}
        response = await stack.http.post(URL, json=body, headers=finance)
        assert response.status_code == status, response.text
        assert response.json()["code"] == code

    rules = {"plan": {"ib_id": ib["ib_id"], "rules": per_lot("5")}}
    await refused("2026-13", rules, 422, "invalid_period")
    await refused("2999-01", rules, 422, "period_future")
    await refused(PERIOD, {}, 422, "empty_change")
    await refused(
        PERIOD, {"plan": {"ib_id": ib["ib_id"], "rules": per_lot("-2")}}, 422, "negative_rate"
    )
    await refused(
        PERIOD, {"plan": {"ib_id": foreign["ib_id"], "rules": per_lot("5")}}, 404, "not_found"
    )
    await refused(
        PERIOD, {"attribution": {"trader_id": "nobody", "ib_id": ib["ib_id"]}}, 404, "not_found"
    )
    no_reason = {"period": PERIOD, "change": rules}
    assert (await stack.http.post(URL, json=no_reason, headers=finance)).status_code == 422
    missing = await stack.http.post(f"{URL}/nope/apply", headers=brand.staff("admin"))
    assert missing.status_code == 404
    # Another brand's recalculation is as missing as one that does not exist.
    made = await stack.http.post(
        URL, json={"period": PERIOD, "change": rules, "reason": "a preview"}, headers=finance
    )
    assert made.status_code == 201, made.text
    hidden = await stack.http.post(f"{URL}/{made.json()['id']}/apply", headers=other.staff("admin"))
    assert hidden.status_code == 404
