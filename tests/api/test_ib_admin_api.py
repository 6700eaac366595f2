"""Staff API of the IB programme: IBs, links, moves, plans, assignments, re-attribution; every
refusal changes nothing, every change is audited, another brand's records are 404."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from fxcrm.models import IbParentLink, IbPartner, IbPlanVersion
from tests.api.ib_fixtures import (
    add_accruals,
    add_client,
    audit_actions,
    create_ib,
    ib_headers,
    new_brand,
    settle,
)
from tests.e2e.portal import register, staff_token
from tests.e2e.stack import Stack

PLAN: dict[str, Any] = {
    "symbol_groups": {"EURUSD": "fx_major"},
    "per_lot": {"fx_major": {"*": "7"}, "*": {"*": "4"}},
}


async def _count(stack: Stack, model: Any, *where: Any) -> int:
    async with stack.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_ibs_links_and_downline_sizes(stack: Stack) -> None:
    brand = await new_brand(stack)
    http = stack.http
    master = await create_ib(http, brand, name="Master")
    sub = await create_ib(http, brand, parent_id=master["ib_id"])
    await create_ib(http, brand, parent_id=sub["ib_id"])
    listed = {
        i["ib_id"]: i
        for i in (await http.get("/backoffice/ib", headers=brand.staff("finance"))).json()
    }
    assert len(listed) == 3
    assert listed[master["ib_id"]]["downline_size"] == 2
    assert listed[master["ib_id"]]["direct_sub_ibs"] == 1
    assert listed[sub["ib_id"]]["downline_size"] == 1
    assert listed[sub["ib_id"]]["parent_id"] == master["ib_id"]

    link = await http.post(
        f"/backoffice/ib/{master['ib_id']}/links",
        json={"name": "Spring campaign", "code": f"SPRING{brand.code}"},
        headers=brand.staff("admin"),
    )
    assert link.status_code == 201, link.text
    again = await http.post(
        f"/backoffice/ib/{sub['ib_id']}/links",
        json={"name": "copy", "code": f"SPRING{brand.code}"},
        headers=brand.staff("admin"),
    )
    assert again.status_code == 409
    generated = await http.post(
        f"/backoffice/ib/{master['ib_id']}/links",
        json={"name": "generated"},
        headers=brand.staff("admin"),
    )
    assert generated.status_code == 201 and len(generated.json()["code"]) >= 6
    links = (
        await http.get(f"/backoffice/ib/{master['ib_id']}/links", headers=brand.staff("finance"))
    ).json()
    assert [link["name"] for link in links] == ["Spring campaign", "generated"]

    detail = (await http.get(f"/backoffice/ib/{sub['ib_id']}", headers=brand.staff("admin"))).json()
    assert detail["hierarchy"][0]["parent_id"] == master["ib_id"]
    assert detail["hierarchy"][0]["effective_from"].startswith("2026-01-01")
    assert await audit_actions(stack, master["ib_id"]) == ["ib.created"]
    assert await audit_actions(stack, link.json()["link_id"]) == ["ib.link_created"]
    # The IB can log in with the password staff set.
    assert (await http.get("/partner/me", headers=await ib_headers(http, brand, sub))).json()[
        "master"
    ]["ib_id"] == master["ib_id"]


async def test_create_refuses_duplicates_and_foreign_parents(stack: Stack) -> None:
    brand = await new_brand(stack)
    other = await new_brand(stack)
    http = stack.http
    ib = await create_ib(http, brand)
    dup = await http.post(
        "/backoffice/ib",
        json={"name": "x", "email": ib["email"], "password": "long-enough-1"},
        headers=brand.staff("admin"),
    )
    assert dup.status_code == 409
    foreign_parent = await http.post(
        "/backoffice/ib",
        json={
            "name": "x",
            "email": "new@partners.dev",
            "password": "long-enough-1",
            "parent_id": ib["ib_id"],
        },
        headers=other.staff("admin"),
    )
    assert foreign_parent.status_code == 404


async def test_create_refuses_weak_passwords_and_invisible_names(stack: Stack) -> None:
    brand = await new_brand(stack)
    http = stack.http
    before = await _count(stack, IbPartner, IbPartner.brand_id == brand.id)
    for name, password in [
        ("Kite Partners", "aaaaaaaaaa"),
        ("Kite Partners", "P@ssw0rd2026!"),
        ("Kite Partners", "Kite-Partners-1"),  # the partner's own name
        ("   ", "long-enough-1"),
        ("Kite\u202ePartners", "long-enough-1"),
    ]:
        response = await http.post(
            "/backoffice/ib",
            json={"name": name, "email": "kite@partners.dev", "password": password},
            headers=brand.staff("admin"),
        )
        assert response.status_code == 422, (name, password, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert await _count(stack, IbPartner, IbPartner.brand_id == brand.id) == before


async def test_moves_are_effective_dated_and_refuse_cycles(stack: Stack) -> None:
    brand = await new_brand(stack)
    http = stack.http
    admin = brand.staff("admin")
    a = await create_ib(http, brand, name="A")
    b = await create_ib(http, brand, parent_id=a["ib_id"], name="B")
    c = await create_ib(http, brand, parent_id=b["ib_id"], name="C")
    other = await create_ib(http, brand, name="Other")
    links_before = await _count(stack, IbParentLink)

    cycle = await http.post(
        f"/backoffice/ib/{a['ib_id']}/move",
        json={"parent_id": c["ib_id"], "effective_from": "2026-06-01T00:00:00Z", "reason": "x-y"},
        headers=admin,
    )
    assert cycle.status_code == 422 and cycle.json()["code"] == "cycle"
    itself = await http.post(
        f"/backoffice/ib/{a['ib_id']}/move",
        json={"parent_id": a["ib_id"], "effective_from": "2026-06-01T00:00:00Z", "reason": "x-y"},
        headers=admin,
    )
    assert itself.status_code == 422 and itself.json()["code"] == "cycle"
    unknown = await http.post(
        f"/backoffice/ib/{c['ib_id']}/move",
        json={"parent_id": "nope", "effective_from": "2026-06-01T00:00:00Z", "reason": "x-y"},
        headers=admin,
    )
    assert unknown.status_code == 404
    naive = await http.post(
        f"/backoffice/ib/{c['ib_id']}/move",
        json={"parent_id": None, "effective_from": "2026-06-01T00:00:00", "reason": "x-y"},
        headers=admin,
    )
    assert naive.status_code == 422
    await settle(stack, brand, other["ib_id"], "2026-03")
    settled = await http.post(
        f"/backoffice/ib/{c['ib_id']}/move",
        json={"parent_id": a["ib_id"], "effective_from": "2026-03-15T00:00:00Z", "reason": "x-y"},
        headers=admin,
    )
    assert settled.status_code == 422 and settled.json()["code"] == "period_settled"
    earlier = await http.post(
        f"/backoffice/ib/{c['ib_id']}/move",
        json={"parent_id": a["ib_id"], "effective_from": "2026-02-15T00:00:00Z", "reason": "x-y"},
        headers=admin,
    )
    assert earlier.status_code == 422 and earlier.json()["code"] == "period_settled"
    assert await _count(stack, IbParentLink) == links_before  # nothing changed

    # C moves under A from April (past: effective now); a later cycle through the new link fails.
    moved = await http.post(
        f"/backoffice/ib/{c['ib_id']}/move",
        json={"parent_id": a["ib_id"], "effective_from": "2026-04-01T00:00:00Z", "reason": "deal"},
        headers=admin,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["parent_id"] == a["ib_id"]
    assert [h["parent_id"] for h in moved.json()["hierarchy"]] == [b["ib_id"], a["ib_id"]]
    later_cycle = await http.post(
        f"/backoffice/ib/{a['ib_id']}/move",
        json={"parent_id": c["ib_id"], "effective_from": "2026-05-01T00:00:00Z", "reason": "x-y"},
        headers=admin,
    )
    assert later_cycle.status_code == 422 and later_cycle.json()["code"] == "cycle"
    # A future move is recorded but the current master stays until then.
    future = await http.post(
        f"/backoffice/ib/{b['ib_id']}/move",
        json={"parent_id": None, "effective_from": "2099-01-01T00:00:00Z", "reason": "later"},
        headers=admin,
    )
    assert future.status_code == 200 and future.json()["parent_id"] == a["ib_id"]
    a_view = (await http.get(f"/backoffice/ib/{a['ib_id']}", headers=admin)).json()
    assert a_view["downline_size"] == 2 and a_view["direct_sub_ibs"] == 2
    assert await audit_actions(stack, c["ib_id"]) == ["ib.created", "ib.moved"]
    # When a future move's day comes, the tree follows the links, not the stored current master.
    async with stack.sessions() as session, session.begin():
        session.add(
            IbParentLink(
                ib_id=c["ib_id"],
                parent_id=None,
                effective_from=datetime.now(UTC) - timedelta(seconds=1),
                reason="due",
            )
        )
    c_view = (await http.get(f"/backoffice/ib/{c['ib_id']}", headers=admin)).json()
    assert c_view["parent_id"] is None
    assert (await http.get(f"/backoffice/ib/{a['ib_id']}", headers=admin)).json()[
        "downline_size"
    ] == 1


async def test_plan_versions_are_validated_and_never_overlap(stack: Stack) -> None:
    brand = await new_brand(stack)
    http = stack.http
    admin = brand.staff("admin")
    plan = await http.post("/backoffice/ib-plans", json={"name": "Gold"}, headers=admin)
    assert plan.status_code == 201
    plan_id = plan.json()["plan_id"]
    assert (
        await http.post("/backoffice/ib-plans", json={"name": "Gold"}, headers=admin)
    ).status_code == 409
    url = f"/backoffice/ib-plans/{plan_id}/versions"

    async def add(effective_from: str, rules: dict[str, Any]) -> Any:
        return await http.post(
            url, json={"effective_from": effective_from, "rules": rules}, headers=admin
        )

    bad = {
        "negative_rate": {**PLAN, "per_lot": {"fx_major": {"*": "-1"}}},
        "pool_exceeded": {**PLAN, "distribution": {"model": "split", "split_pct": [70, 40]}},
        "unknown_symbol_group": {**PLAN, "per_lot": {"crypto": {"*": "3"}}},
        "unsupported_currency": {**PLAN, "currency": "XXX"},
        "tiers_not_increasing": {
            **PLAN,
            "tiers": [{"threshold": 100, "multiplier": 2}, {"threshold": 50, "multiplier": 3}],
        },
    }
    for code, rules in bad.items():
        refused = await add("2026-02-01T00:00:00Z", rules)
        assert refused.status_code == 422, (code, refused.text)
        assert refused.json()["code"] == code
    first = await add("2026-02-01T00:00:00Z", PLAN)
    assert first.status_code == 201 and first.json()["version"] == 1
    for when in ("2026-02-01T00:00:00Z", "2026-01-15T00:00:00Z"):
        overlap = await add(when, PLAN)
        assert overlap.status_code == 409 and overlap.json()["code"] == "overlapping_version"
    ib = await create_ib(http, brand)
    await settle(stack, brand, ib["ib_id"], "2026-03")
    settled = await add("2026-03-20T00:00:00Z", PLAN)
    assert settled.status_code == 422 and settled.json()["code"] == "period_settled"
    second = await add("2026-04-01T00:00:00Z", {**PLAN, "per_lot": {"*": {"*": "5"}}})
    assert second.status_code == 201 and second.json()["version"] == 2
    versions = (await http.get(url, headers=brand.staff("finance"))).json()
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[1]["rules"]["per_lot"] == {"*": {"*": "5"}}
    assert await _count(stack, IbPlanVersion, IbPlanVersion.plan_id == plan_id) == 2
    assert await audit_actions(stack, plan_id) == [
        "ib.plan_created",
        "ib.plan_version_added",
        "ib.plan_version_added",
    ]


async def test_plan_assignments(stack: Stack) -> None:
    brand = await new_brand(stack)
    other = await new_brand(stack)
    http = stack.http
    admin = brand.staff("admin")
    ib = await create_ib(http, brand)
    plan_id = (await http.post("/backoffice/ib-plans", json={"name": "Std"}, headers=admin)).json()[
        "plan_id"
    ]
    foreign_plan = (
        await http.post("/backoffice/ib-plans", json={"name": "Std"}, headers=other.staff("admin"))
    ).json()["plan_id"]
    link = (
        await http.post(f"/backoffice/ib/{ib['ib_id']}/links", json={"name": "web"}, headers=admin)
    ).json()
    url = f"/backoffice/ib/{ib['ib_id']}/plan-assignments"
    ok = await http.post(
        url, json={"plan_id": plan_id, "effective_from": "2026-05-01T00:00:00Z"}, headers=admin
    )
    assert ok.status_code == 201, ok.text
    override = await http.post(
        url,
        json={
            "plan_id": plan_id,
            "effective_from": "2026-05-01T00:00:00Z",
            "link_code": link["code"],
        },
        headers=admin,
    )
    assert override.status_code == 201
    assert [a["link_code"] for a in override.json()] == [None, link["code"]]
    duplicate = await http.post(
        url, json={"plan_id": plan_id, "effective_from": "2026-05-01T00:00:00Z"}, headers=admin
    )
    assert duplicate.status_code == 409
    unknown_link = await http.post(
        url,
        json={"plan_id": plan_id, "effective_from": "2026-06-01T00:00:00Z", "link_code": "NOPE"},
        headers=admin,
    )
    assert unknown_link.status_code == 422 and unknown_link.json()["code"] == "unknown_link"
    foreign = await http.post(
        url, json={"plan_id": foreign_plan, "effective_from": "2026-06-01T00:00:00Z"}, headers=admin
    )
    assert foreign.status_code == 404
    await settle(stack, brand, ib["ib_id"], "2026-06")
    settled = await http.post(
        url, json={"plan_id": plan_id, "effective_from": "2026-06-02T00:00:00Z"}, headers=admin
    )
    assert settled.status_code == 422 and settled.json()["code"] == "period_settled"
    assert len((await http.get(url, headers=brand.staff("finance"))).json()) == 2


async def test_roles_and_brand_scope(stack: Stack) -> None:
    brand = await new_brand(stack)
    other = await new_brand(stack)
    http = stack.http
    ib = await create_ib(http, brand)
    body = {"name": "x", "email": "r@partners.dev", "password": "long-enough-1"}
    assert (
        await http.post("/backoffice/ib", json=body, headers=brand.staff("finance"))
    ).status_code == 403
    assert (await http.get("/backoffice/ib", headers=brand.staff("dealer"))).status_code == 403
    assert (
        await http.post(
            f"/backoffice/ib/{ib['ib_id']}/suspend",
            json={"reason": "fraud check"},
            headers=brand.staff("finance"),
        )
    ).status_code == 403
    partner = await ib_headers(http, brand, ib)
    assert (await http.get("/backoffice/ib", headers=partner)).status_code == 403
    _, trader = await register(http)
    assert (
        await http.get("/backoffice/ib", headers={"Authorization": f"Bearer {trader}"})
    ).status_code == 403
    # Another brand's staff: the IB does not exist for them.
    for method, url, payload in (
        ("get", f"/backoffice/ib/{ib['ib_id']}", None),
        ("get", f"/backoffice/ib/{ib['ib_id']}/commissions", None),
        ("get", f"/backoffice/ib/{ib['ib_id']}/periods/2026-05", None),
        ("post", f"/backoffice/ib/{ib['ib_id']}/suspend", {"reason": "not mine"}),
        (
            "post",
            f"/backoffice/ib/{ib['ib_id']}/move",
            {"parent_id": None, "effective_from": "2026-09-01T00:00:00Z", "reason": "not mine"},
        ),
    ):
        response = await http.request(method, url, json=payload, headers=other.staff("admin"))
        assert response.status_code == 404, (url, response.text)
    listed = (await http.get("/backoffice/ib", headers=other.staff("admin"))).json()
    assert listed == []
    # The settlement router's literal path is not taken for an IB id.
    settlements = await http.get(
        "/backoffice/ib/settlements", params={"period": "2026-05"}, headers=brand.staff("finance")
    )
    assert settlements.status_code == 200 and settlements.json() == []
    # The demo admin (demo brand only) does not see it either.
    demo_admin = {"Authorization": f"Bearer {await staff_token(http, 'admin')}"}
    assert (await http.get(f"/backoffice/ib/{ib['ib_id']}", headers=demo_admin)).status_code == 404


async def test_suspend_and_reactivate(stack: Stack) -> None:
    brand = await new_brand(stack)
    http = stack.http
    ib = await create_ib(http, brand)
    url = f"/backoffice/ib/{ib['ib_id']}"
    suspended = await http.post(
        f"{url}/suspend", json={"reason": "KYC expired"}, headers=brand.staff("admin")
    )
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    again = await http.post(
        f"{url}/suspend", json={"reason": "KYC expired"}, headers=brand.staff("admin")
    )
    assert again.status_code == 409
    back = await http.post(
        f"{url}/reactivate", json={"reason": "KYC renewed"}, headers=brand.staff("admin")
    )
    assert back.json()["status"] == "active"
    assert await audit_actions(stack, ib["ib_id"]) == [
        "ib.created",
        "ib.suspended",
        "ib.reactivated",
    ]


async def test_staff_reassign_a_client_from_a_date(stack: Stack) -> None:
    brand = await new_brand(stack)
    other = await new_brand(stack)
    http = stack.http
    admin = brand.staff("admin")
    old = await create_ib(http, brand)
    new = await create_ib(http, brand)
    foreign = await create_ib(http, other)
    client = await add_client(stack, brand, old["ib_id"])
    url = f"/backoffice/traders/{client}/ib-attributions"

    async def reassign(ib_id: str, when: str) -> Any:
        return await http.post(
            url,
            json={"ib_id": ib_id, "effective_from": when, "reason": "client asked"},
            headers=admin,
        )

    await settle(stack, brand, old["ib_id"], "2026-02")
    settled = await reassign(new["ib_id"], "2026-02-10T00:00:00Z")
    assert settled.status_code == 422 and settled.json()["code"] == "period_settled"
    assert (await reassign(foreign["ib_id"], "2026-05-01T00:00:00Z")).status_code == 404
    assert (
        await http.post(
            "/backoffice/traders/nope/ib-attributions",
            json={"ib_id": new["ib_id"], "effective_from": "2026-05-01T00:00:00Z", "reason": "x-y"},
            headers=admin,
        )
    ).status_code == 404
    moved = await reassign(new["ib_id"], "2026-05-01T00:00:00Z")
    assert moved.status_code == 201, moved.text
    history = moved.json()
    assert [(h["ib_id"], h["source"]) for h in history] == [
        (old["ib_id"], "registration"),
        (new["ib_id"], "staff"),
    ]
    assert history[1]["reason"] == "client asked" and history[1]["excluded"] is None
    before_latest = await reassign(old["ib_id"], "2026-04-01T00:00:00Z")
    assert before_latest.status_code == 409
    assert before_latest.json()["code"] == "attribution_order"
    listed = (await http.get(url, headers=brand.staff("finance"))).json()
    assert len(listed) == 2
    assert await audit_actions(stack, history[1]["attribution_id"]) == ["ib.client_attributed"]
    # Another brand's staff: no such trader.
    assert (await http.get(url, headers=other.staff("admin"))).status_code == 404


async def test_staff_reassignment_detects_self_referral(stack: Stack) -> None:
    brand = await new_brand(stack)
    http = stack.http
    ib = await create_ib(http, brand, email="sam.partner@partners.dev")
    own = await add_client(stack, brand, email="Sam.Partner+trading@partners.dev")
    response = await http.post(
        f"/backoffice/traders/{own}/ib-attributions",
        json={"ib_id": ib["ib_id"], "effective_from": "2026-05-01T00:00:00Z", "reason": "move"},
        headers=brand.staff("admin"),
    )
    assert response.status_code == 201
    row = response.json()[0]
    assert row["excluded"] == "self_referral:ib:email"
    assert await audit_actions(stack, row["attribution_id"]) == ["ib.self_referral_excluded"]


async def test_backoffice_commissions_page_and_bad_period(stack: Stack) -> None:
    brand = await new_brand(stack)
    http = stack.http
    ib = await create_ib(http, brand)
    client = await add_client(stack, brand, ib["ib_id"])
    await add_accruals(
        stack, brand, ib["ib_id"], client, "2026-05", [("per_lot", 1, f"1.{i}") for i in range(5)]
    )
    url = f"/backoffice/ib/{ib['ib_id']}/commissions"
    first = (
        await http.get(
            url, params={"period": "2026-05", "limit": 3}, headers=brand.staff("finance")
        )
    ).json()
    assert len(first["lines"]) == 3 and first["next_after"] is not None
    rest = (
        await http.get(
            url,
            params={"period": "2026-05", "limit": 3, "after": first["next_after"]},
            headers=brand.staff("finance"),
        )
    ).json()
    assert len(rest["lines"]) == 2 and rest["next_after"] is None
    bad = await http.get(url, params={"period": "2026-13"}, headers=brand.staff("finance"))
    assert bad.status_code == 422
