"""Login, lock-out, roles on every endpoint, brand scoping, a trader sees only their own data."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from fxcrm.core.security import hash_password
from fxcrm.models import Brand, StaffBrand, StaffUser
from fxcrm.seed import DEMO_BRAND
from tests.e2e.portal import PASSWORD, bearer, register, registration, staff_token
from tests.e2e.stack import Stack


async def test_wrong_password_then_lockout(stack: Stack) -> None:
    body = registration()
    assert (await stack.http.post("/portal/demo/register", json=body)).status_code == 201
    for _ in range(5):
        wrong = await stack.http.post(
            "/portal/demo/token", data={"username": body["email"], "password": "nope"}
        )
        assert wrong.status_code == 401
    locked = await stack.http.post(
        "/portal/demo/token", data={"username": body["email"], "password": PASSWORD}
    )
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0


async def test_unknown_user_and_missing_token(stack: Stack) -> None:
    unknown = await stack.http.post(
        "/auth/token", data={"username": "ghost@x.dev", "password": "whatever"}
    )
    assert unknown.status_code == 401
    assert (await stack.http.get("/portal/me")).status_code == 401
    forged = await stack.http.get("/portal/me", headers=bearer("not.a.jwt"))
    assert forged.status_code == 401


async def test_roles_are_enforced(stack: Stack) -> None:
    trader_id, trader = await register(stack.http)
    # A trader is not staff; a dealer does not decide KYC; a support agent does not read the audit log.
    assert (await stack.http.get("/backoffice/traders", headers=bearer(trader))).status_code == 403
    dealer = await staff_token(stack.http, "dealer")
    decision = await stack.http.post(
        f"/backoffice/traders/{trader_id}/kyc-decision",
        json={"decision": "approve", "reason": "looks good"},
        headers=bearer(dealer),
    )
    assert decision.status_code == 403
    support = await staff_token(stack.http, "support")
    assert (await stack.http.get("/audit/events", headers=bearer(support))).status_code == 403
    assert (await stack.http.get("/portal/me", headers=bearer(support))).status_code == 403


async def test_pii_is_masked_for_roles_that_do_not_need_it(stack: Stack) -> None:
    trader_id, _ = await register(stack.http, first_name="Beatrix", last_name="Kiddo")
    dealer = await staff_token(stack.http, "dealer")
    masked = (
        await stack.http.get(f"/backoffice/traders/{trader_id}", headers=bearer(dealer))
    ).json()
    assert masked["trader"]["first_name"] == "B***"
    onboarding = await staff_token(stack.http, "onboarding")
    full = (
        await stack.http.get(f"/backoffice/traders/{trader_id}", headers=bearer(onboarding))
    ).json()
    assert full["trader"]["first_name"] == "Beatrix"


async def test_staff_of_another_brand_sees_nothing(stack: Stack) -> None:
    trader_id, _ = await register(stack.http)
    code = f"other{uuid.uuid4().hex[:6]}"
    async with stack.sessions() as session, session.begin():
        demo = (
            await session.execute(
                text("select config from brands where code = :c"), {"c": DEMO_BRAND}
            )
        ).one()
        brand = Brand(code=code, name="Other", legal_entity="Other Ltd", config=demo[0])
        session.add(brand)
        await session.flush()
        user = StaffUser(
            email=f"onb@{code}.dev",
            full_name="Other Onboarding",
            role="onboarding",
            password_hash=hash_password("other-pass-123"),
        )
        session.add(user)
        await session.flush()
        session.add(StaffBrand(staff_id=user.id, brand_id=brand.id))
    token = (
        await stack.http.post(
            "/auth/token", data={"username": f"onb@{code}.dev", "password": "other-pass-123"}
        )
    ).json()["access_token"]
    assert (
        await stack.http.get(f"/backoffice/traders/{trader_id}", headers=bearer(token))
    ).status_code == 404
    listed = (await stack.http.get("/backoffice/traders", headers=bearer(token))).json()
    assert all(t["trader_id"] != trader_id for t in listed)


async def test_a_trader_sees_only_their_own_accounts(stack: Stack) -> None:
    _, alice = await register(stack.http)
    _, bob = await register(stack.http)
    alice_docs = await stack.http.get("/portal/me/accounts", headers=bearer(alice))
    assert alice_docs.status_code == 200
    other = await stack.http.post(
        f"/portal/me/accounts/{uuid.uuid4().hex}/credentials", headers=bearer(bob)
    )
    assert other.status_code == 404
