"""The partner portal: an IB sees itself and its downline only, clients masked and without
profit, its own commission lines with their explanation, and the very numbers the back office
shows. Registration attribution by referral click or code, and self-referral exclusion."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from fxcrm.models import IbAttribution, Trader
from fxcrm.models.ib import IbReferralClick
from tests.api.ib_fixtures import (
    IbBrand,
    add_accruals,
    add_client,
    audit_actions,
    create_ib,
    ib_headers,
    new_brand,
    settle,
)
from tests.e2e.portal import bearer, register, registration, staff_token
from tests.e2e.stack import Stack


async def _tree(stack: Stack, brand: IbBrand) -> dict[str, dict[str, str]]:
    """master > (sub > subsub, sibling)."""
    http = stack.http
    master = await create_ib(http, brand, name="Master")
    sub = await create_ib(http, brand, parent_id=master["ib_id"], name="Sub")
    subsub = await create_ib(http, brand, parent_id=sub["ib_id"], name="SubSub")
    sibling = await create_ib(http, brand, parent_id=master["ib_id"], name="Sibling")
    return {"master": master, "sub": sub, "subsub": subsub, "sibling": sibling}


async def test_downline_is_scoped_and_masked(stack: Stack) -> None:
    brand = await new_brand(stack)
    http = stack.http
    t = await _tree(stack, brand)
    mine = await add_client(
        stack, brand, t["sub"]["ib_id"], first_name="Beatrix", last_name="Kiddo"
    )
    deep = await add_client(stack, brand, t["subsub"]["ib_id"], email="vernita@example.com")
    theirs = await add_client(stack, brand, t["sibling"]["ib_id"])
    # A client re-assigned away from sub in the future still shows under sub now.
    later = datetime.now(UTC) + timedelta(days=30)
    async with stack.sessions() as session, session.begin():
        session.add(
            IbAttribution(
                trader_id=mine, ib_id=t["sibling"]["ib_id"], effective_from=later, source="staff"
            )
        )

    master = await ib_headers(http, brand, t["master"])
    tree = (await http.get("/partner/downline", headers=master)).json()
    nodes = {n["ib_id"]: n for n in tree["nodes"]}
    assert tree["root"] == t["master"]["ib_id"]
    assert set(nodes) == {t[k]["ib_id"] for k in ("master", "sub", "subsub", "sibling")}
    assert nodes[t["subsub"]["ib_id"]]["depth"] == 2
    assert nodes[t["subsub"]["ib_id"]]["parent_id"] == t["sub"]["ib_id"]
    sub_clients = nodes[t["sub"]["ib_id"]]["clients"]
    assert [c["trader_id"] for c in sub_clients] == [mine]
    assert sub_clients[0]["name"] == "B*** K***"
    assert "Beatrix" not in json.dumps(tree) and "Kiddo" not in json.dumps(tree)
    assert nodes[t["subsub"]["ib_id"]]["clients"][0]["email"] == "v***@example.com"
    assert nodes[t["sub"]["ib_id"]]["email"].startswith(t["sub"]["email"][0] + "***@")
    assert "profit" not in json.dumps(tree)

    sub = await ib_headers(http, brand, t["sub"])
    sub_tree = (await http.get("/partner/downline", headers=sub)).json()
    assert {n["ib_id"] for n in sub_tree["nodes"]} == {t["sub"]["ib_id"], t["subsub"]["ib_id"]}
    # A sub-IB's own subtree, asked by the master: allowed. The other way round, or a sibling's: 404.
    branch = await http.get(
        "/partner/downline", params={"ib_id": t["sub"]["ib_id"]}, headers=master
    )
    assert branch.status_code == 200 and len(branch.json()["nodes"]) == 2
    for ib_id in (t["master"]["ib_id"], t["sibling"]["ib_id"], "nope"):
        refused = await http.get("/partner/downline", params={"ib_id": ib_id}, headers=sub)
        assert refused.status_code == 404
    assert theirs not in json.dumps(sub_tree)
    assert deep in json.dumps(sub_tree)

    me = (await http.get("/partner/me", headers=sub)).json()
    assert me["ib_id"] == t["sub"]["ib_id"] and me["downline_size"] == 1
    assert me["master"] == {"ib_id": t["master"]["ib_id"], "name": "Master"}


async def test_client_commissions_only_within_the_downline(stack: Stack) -> None:
    brand = await new_brand(stack)
    http = stack.http
    t = await _tree(stack, brand)
    client = await add_client(stack, brand, t["subsub"]["ib_id"])
    sibling_client = await add_client(stack, brand, t["sibling"]["ib_id"])
    await add_accruals(stack, brand, t["subsub"]["ib_id"], client, "2026-05", [("per_lot", 1, "7")])
    await add_accruals(stack, brand, t["sub"]["ib_id"], client, "2026-05", [("per_lot", 2, "1.5")])
    await add_accruals(
        stack, brand, t["sibling"]["ib_id"], sibling_client, "2026-05", [("per_lot", 1, "9")]
    )

    sub = await ib_headers(http, brand, t["sub"])
    lines = (await http.get(f"/partner/clients/{client}/commissions", headers=sub)).json()["lines"]
    assert [(line["amount"], line["depth"]) for line in lines] == [("1.5", 2)]  # its own line only
    line = lines[0]
    assert line["symbol"] == "EURUSD" and line["volume_lots"] == "1.5"
    assert line["explanation"].startswith("1.5 lots x 7 USD/lot (rate cell fx_majorx*)")
    assert line["explanation"].endswith("= 1.5 USD")
    assert "profit" not in json.dumps(lines)
    for other in (sibling_client, "nope"):
        refused = await http.get(f"/partner/clients/{other}/commissions", headers=sub)
        assert refused.status_code == 404
    sibling = await ib_headers(http, brand, t["sibling"])
    assert (
        await http.get(f"/partner/clients/{client}/commissions", headers=sibling)
    ).status_code == 404
    # A client who left the downline keeps showing what the IB earned on it before.
    async with stack.sessions() as session, session.begin():
        session.add(
            IbAttribution(
                trader_id=client,
                ib_id=t["sibling"]["ib_id"],
                effective_from=datetime(2026, 6, 1, tzinfo=UTC),
                source="staff",
            )
        )
    kept = await http.get(f"/partner/clients/{client}/commissions", headers=sub)
    assert kept.status_code == 200 and len(kept.json()["lines"]) == 1


async def test_partner_and_backoffice_show_the_same_numbers(stack: Stack) -> None:
    brand = await new_brand(stack)
    http = stack.http
    t = await _tree(stack, brand)
    ib = t["sub"]
    a = await add_client(stack, brand, ib["ib_id"])
    b = await add_client(stack, brand, t["subsub"]["ib_id"])
    amounts_a = [("per_lot", 1, "7.12345678"), ("spread_share", 1, "0.33333333")]
    amounts_b = [("per_lot", 2, "2.00000001"), ("commission_share", 2, "0.1"), ("per_lot", 2, "3")]
    await add_accruals(stack, brand, ib["ib_id"], a, "2026-05", amounts_a)
    await add_accruals(stack, brand, ib["ib_id"], b, "2026-05", amounts_b)
    await add_accruals(stack, brand, ib["ib_id"], a, "2026-04", [("per_lot", 1, "100")])
    await settle(stack, brand, ib["ib_id"], "2026-04", payable="100")

    partner = await ib_headers(http, brand, ib)
    portal = (await http.get("/partner/periods/2026-05", headers=partner)).json()
    office = (
        await http.get(
            f"/backoffice/ib/{ib['ib_id']}/periods/2026-05", headers=brand.staff("finance")
        )
    ).json()
    assert portal == office
    expected = sum(Decimal(x) for _, _, x in amounts_a + amounts_b)
    assert Decimal(portal["totals"]["USD"]) == expected == Decimal("12.55679012")
    assert portal["lines"] == 5 and portal["deals"] == 5 and portal["clients"] == 2
    assert {r["rule"]: Decimal(r["amount"]) for r in portal["by_rule"]} == {
        "commission_share": Decimal("0.1"),
        "per_lot": Decimal("12.12345679"),
        "spread_share": Decimal("0.33333333"),
    }
    assert {d["depth"]: Decimal(d["amount"]) for d in portal["by_depth"]} == {
        1: Decimal("7.45679011"),
        2: Decimal("5.10000001"),
    }
    assert portal["settlement"] is None

    portal_lines = (
        await http.get("/partner/commissions", params={"period": "2026-05"}, headers=partner)
    ).json()
    office_lines = (
        await http.get(
            f"/backoffice/ib/{ib['ib_id']}/commissions",
            params={"period": "2026-05"},
            headers=brand.staff("admin"),
        )
    ).json()
    assert portal_lines == office_lines
    assert sum(Decimal(line["amount"]) for line in portal_lines["lines"]) == expected

    april = (await http.get("/partner/periods/2026-04", headers=partner)).json()
    assert (
        april["settlement"]["status"] == "paid" and Decimal(april["settlement"]["payable"]) == 100
    )
    assert (
        april
        == (
            await http.get(
                f"/backoffice/ib/{ib['ib_id']}/periods/2026-04", headers=brand.staff("finance")
            )
        ).json()
    )
    assert (await http.get("/partner/periods/2026-5", headers=partner)).status_code == 422


async def test_settlements_and_payouts(stack: Stack) -> None:
    brand = await new_brand(stack)
    http = stack.http
    ib = await create_ib(http, brand)
    other = await create_ib(http, brand)
    await settle(stack, brand, ib["ib_id"], "2026-03", status="carried", payable="12.5")
    await settle(stack, brand, ib["ib_id"], "2026-04", status="paid", payable="80")
    await settle(stack, brand, other["ib_id"], "2026-04", status="paid", payable="999")
    partner = await ib_headers(http, brand, ib)
    listed = (await http.get("/partner/settlements", headers=partner)).json()
    assert [(s["period"], s["status"]) for s in listed] == [
        ("2026-04", "paid"),
        ("2026-03", "carried"),
    ]
    paid = (await http.get("/partner/payouts", headers=partner)).json()
    assert [(s["period"], Decimal(s["payable"])) for s in paid] == [("2026-04", Decimal(80))]
    office = (
        await http.get(f"/backoffice/ib/{ib['ib_id']}/settlements", headers=brand.staff("finance"))
    ).json()
    assert office == listed


async def test_partner_roles(stack: Stack) -> None:
    assert (await stack.http.get("/partner/me")).status_code == 401
    admin = await staff_token(stack.http, "admin")
    assert (await stack.http.get("/partner/me", headers=bearer(admin))).status_code == 403
    _, trader = await register(stack.http)
    assert (await stack.http.get("/partner/downline", headers=bearer(trader))).status_code == 403
    # A demo IB (seeded) logs in and sees its seeded master and plan.
    login = await stack.http.post(
        "/partner/demo/token", data={"username": "ib2@demo.fxcrm.dev", "password": "ib2-demo-2026"}
    )
    me = (await stack.http.get("/partner/me", headers=bearer(login.json()["access_token"]))).json()
    assert me["referral_code"] == "SUBIB1" and me["master"]["name"] == "Demo IB level 1"
    assert len(me["plan_assignments"]) == 1 and me["downline_size"] >= 1


# ---- registration attribution ----


async def _register(stack: Stack, brand: IbBrand, **overrides: object) -> str:
    body = registration(**overrides)
    response = await stack.http.post(f"/portal/{brand.code}/register", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["trader_id"])


async def _attribution(stack: Stack, trader_id: str) -> IbAttribution | None:
    async with stack.sessions() as session:
        return await session.scalar(
            select(IbAttribution).where(IbAttribution.trader_id == trader_id)
        )


async def _click(stack: Stack, brand: IbBrand, code: str, visitor: str) -> None:
    response = await stack.http.post(
        f"/portal/{brand.code}/referral-clicks", json={"code": code, "visitor_id": visitor}
    )
    assert response.status_code == 201, response.text


async def test_last_and_first_click_within_the_window(stack: Stack) -> None:
    last = await new_brand(stack)
    first = await new_brand(stack, attribution="first_click")
    http = stack.http
    for brand, expected in ((last, "b"), (first, "a")):
        a = await create_ib(http, brand)
        b = await create_ib(http, brand)
        link = (
            await http.post(
                f"/backoffice/ib/{b['ib_id']}/links",
                json={"name": "banner"},
                headers=brand.staff("admin"),
            )
        ).json()
        visitor = uuid.uuid4().hex
        await _click(stack, brand, a["referral_code"], visitor)
        await _click(stack, brand, link["code"], visitor)
        # Typed code of A, clicks A then B: the brand's click model decides.
        trader = await _register(
            stack, brand, ib_referral_code=a["referral_code"], visitor_id=visitor
        )
        row = await _attribution(stack, trader)
        assert row is not None and row.source == "click" and row.excluded is None
        winner = {"a": a, "b": b}[expected]
        assert row.ib_id == winner["ib_id"]
        assert row.link_code == (link["code"] if expected == "b" else None)
        async with stack.sessions() as session:
            saved = await session.get(Trader, trader)
            assert saved is not None and saved.ib_partner_id == winner["ib_id"]
            assert abs((row.effective_from - saved.created_at).total_seconds()) < 1
        assert await audit_actions(stack, row.id) == ["ib.client_attributed"]


async def test_clicks_outside_the_window_fall_back_to_the_code(stack: Stack) -> None:
    brand = await new_brand(stack, attribution_window_days=7)
    http = stack.http
    a = await create_ib(http, brand)
    b = await create_ib(http, brand)
    visitor = uuid.uuid4().hex
    async with stack.sessions() as session, session.begin():
        session.add(
            IbReferralClick(
                brand_id=brand.id,
                ib_id=b["ib_id"],
                visitor_id=visitor,
                clicked_at=datetime.now(UTC) - timedelta(days=8),
            )
        )
    trader = await _register(stack, brand, ib_referral_code=a["referral_code"], visitor_id=visitor)
    row = await _attribution(stack, trader)
    assert row is not None and (row.ib_id, row.source) == (a["ib_id"], "registration")
    # No click, no code: no attribution (the trades pay nobody).
    assert (
        await _attribution(stack, await _register(stack, brand, visitor_id=uuid.uuid4().hex))
        is None
    )
    # Another brand's click never attributes here.
    other = await new_brand(stack)
    c = await create_ib(http, other)
    shared_visitor = uuid.uuid4().hex
    await _click(stack, other, c["referral_code"], shared_visitor)
    assert (
        await _attribution(stack, await _register(stack, brand, visitor_id=shared_visitor)) is None
    )


async def test_bad_clicks_and_codes(stack: Stack) -> None:
    brand = await new_brand(stack)
    ib = await create_ib(stack.http, brand)
    unknown = await stack.http.post(
        f"/portal/{brand.code}/referral-clicks", json={"code": "NOPE", "visitor_id": "abcdefgh12"}
    )
    assert unknown.status_code == 422
    bad_visitor = await stack.http.post(
        f"/portal/{brand.code}/referral-clicks",
        json={"code": ib["referral_code"], "visitor_id": "a b"},
    )
    assert bad_visitor.status_code == 422
    other = await new_brand(stack)
    foreign = await stack.http.post(
        f"/portal/{other.code}/referral-clicks",
        json={"code": ib["referral_code"], "visitor_id": "abcdefgh12"},
    )
    assert foreign.status_code == 422
    refused = await stack.http.post(
        f"/portal/{brand.code}/register", json=registration(ib_referral_code="NOPE")
    )
    assert refused.status_code == 422 and refused.json()["field"] == "ib_referral_code"


async def test_self_referral_is_attributed_but_excluded(stack: Stack) -> None:
    brand = await new_brand(stack)
    http = stack.http
    master = await create_ib(http, brand, email="max.master@partners.dev", name="Max Master")
    ib = await create_ib(
        http, brand, parent_id=master["ib_id"], email="ida.ib@partners.dev", name="Ida"
    )
    code = ib["referral_code"]
    # The IB's own trading record: a client registered with the IB's email.
    own = await _register(
        stack,
        brand,
        email="ida.ib@partners.dev",
        first_name="Ida",
        last_name="Brandt",
        date_of_birth="1979-02-03",
        phone="+35799000111",
        ib_referral_code=code,
    )
    cases = {
        "self_referral:ib:email": {"email": "Ida.IB+2@partners.dev"},
        "self_referral:ib_own_account:phone": {"phone": "+35799000111"},
        "self_referral:ib_own_account:name_and_date_of_birth": {
            "first_name": " ida ",
            "last_name": "BRANDT",
            "date_of_birth": "1979-02-03",
        },
        "self_referral:upline_ib_level_2:email": {"email": "max.master@partners.dev"},
    }
    own_row = await _attribution(stack, own)
    assert own_row is not None and own_row.excluded == "self_referral:ib:email"
    for reason, fields in cases.items():
        trader = await _register(
            stack, brand, ib_referral_code=code, phone=fields.pop("phone", "+35799123456"), **fields
        )
        row = await _attribution(stack, trader)
        assert row is not None and row.excluded == reason, (reason, row and row.excluded)
        assert await audit_actions(stack, row.id) == ["ib.self_referral_excluded"]
    honest = await _register(
        stack,
        brand,
        ib_referral_code=code,
        first_name="Ida",
        last_name="Brandt",
        phone="+35799123457",
    )
    honest_row = await _attribution(stack, honest)
    assert honest_row is not None and honest_row.excluded is None  # same name, other birth date
    # The partner sees the excluded clients flagged.
    tree = (await http.get("/partner/downline", headers=await ib_headers(http, brand, ib))).json()
    flags = {c["trader_id"]: c["excluded"] for c in tree["nodes"][0]["clients"]}
    assert flags[own] is True and flags[honest] is False
