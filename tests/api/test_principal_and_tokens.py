"""Every request checks its token's subject against the database; logout, a password change and
deactivation revoke the tokens already issued; a login takes as long for unknown accounts."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import pytest
from sqlalchemy import update

from fxcrm.api.routes import auth as auth_routes
from fxcrm.core.security import issue_token
from fxcrm.models import IbPartner, StaffUser
from tests.api.inprocess import InProcessApp, inprocess_app
from tests.e2e.portal import bearer

PASSWORD = "Correct-horse-2026"
STAFF_ROUTE = "/backoffice/traders"  # every staff role may read it
ADMIN_ROUTE = "/audit/events"


@pytest.fixture
async def api(database_url: str):  # type: ignore[no-untyped-def]
    async with inprocess_app(database_url) as running:
        yield running


def _forged(api: InProcessApp, subject: str, **claims: object) -> dict[str, str]:
    """A token signed with the real key (as a leaked key or a bug would allow)."""
    body = {"kind": "staff", "role": "admin", "brands": [api.brand_id], "ver": 0, **claims}
    return bearer(issue_token(api.settings.secret_key, subject, body, 60))


async def test_a_token_for_an_unknown_subject_is_refused(api: InProcessApp) -> None:
    async with api.client() as http:
        response = await http.get(ADMIN_ROUTE, headers=_forged(api, uuid.uuid4().hex))
    assert response.status_code == 401


async def test_the_role_comes_from_the_database_not_the_token(api: InProcessApp) -> None:
    trader_id, _ = await api.add_trader(PASSWORD)
    support_id, _ = await api.add_staff("support", PASSWORD)
    async with api.client() as http:
        # A trader's token claiming admin is still a trader's.
        as_trader = await http.get(STAFF_ROUTE, headers=_forged(api, trader_id, kind="trader"))
        assert as_trader.status_code == 403
        # A support agent's token claiming admin is still support's.
        as_support = await http.get(ADMIN_ROUTE, headers=_forged(api, support_id))
        assert as_support.status_code == 403
        # A staff id presented as a trader names no trader.
        wrong_kind = await http.get("/portal/me", headers=_forged(api, support_id, kind="trader"))
        assert wrong_kind.status_code == 401
        unknown_kind = await http.get(STAFF_ROUTE, headers=_forged(api, support_id, kind="root"))
        assert unknown_kind.status_code == 401


async def test_a_demoted_user_loses_the_old_role_at_once(api: InProcessApp) -> None:
    admin_id, email = await api.add_staff("admin", PASSWORD)
    token = await api.token("staff", email, PASSWORD)
    async with api.client() as http:
        assert (await http.get(ADMIN_ROUTE, headers=token)).status_code == 200
        async with api.sessions() as session, session.begin():
            await session.execute(
                update(StaffUser).where(StaffUser.id == admin_id).values(role="support")
            )
        assert (await http.get(ADMIN_ROUTE, headers=token)).status_code == 403


async def test_deactivation_revokes_tokens_and_refuses_logins(api: InProcessApp) -> None:
    victim_id, email = await api.add_staff("finance", PASSWORD)
    _, admin_email = await api.add_staff("admin", PASSWORD)
    token = await api.token("staff", email, PASSWORD)
    admin = await api.token("staff", admin_email, PASSWORD)
    async with api.client() as http:
        assert (await http.get(STAFF_ROUTE, headers=token)).status_code == 200
        off = await http.post(
            f"/admin/staff/{victim_id}/deactivate", json={"reason": "left"}, headers=admin
        )
        assert off.status_code == 200 and off.json()["is_active"] is False
        assert (await http.get(STAFF_ROUTE, headers=token)).status_code == 401
    assert (await api.login("staff", email, PASSWORD)).status_code == 401
    async with api.client() as http:
        on = await http.post(
            f"/admin/staff/{victim_id}/activate", json={"reason": "back"}, headers=admin
        )
        assert on.status_code == 200
        assert (await http.get(STAFF_ROUTE, headers=token)).status_code == 401  # still revoked
    assert (await api.login("staff", email, PASSWORD)).status_code == 200


async def test_only_admins_deactivate_and_not_themselves(api: InProcessApp) -> None:
    victim_id, _ = await api.add_staff("finance", PASSWORD)
    admin_id, admin_email = await api.add_staff("admin", PASSWORD)
    _, support_email = await api.add_staff("support", PASSWORD)
    admin = await api.token("staff", admin_email, PASSWORD)
    support = await api.token("staff", support_email, PASSWORD)
    async with api.client() as http:
        body = {"reason": "test"}
        url = f"/admin/staff/{victim_id}/deactivate"
        assert (await http.post(url, json=body, headers=support)).status_code == 403
        own = await http.post(f"/admin/staff/{admin_id}/deactivate", json=body, headers=admin)
        assert own.status_code == 409
        missing = await http.post("/admin/staff/nobody/deactivate", json=body, headers=admin)
        assert missing.status_code == 404


async def test_a_suspended_ib_neither_logs_in_nor_keeps_access(api: InProcessApp) -> None:
    ib_id, email = await api.add_ib(PASSWORD)
    token = await api.token("ib", email, PASSWORD)
    async with api.client() as http:
        assert (await http.get("/partner/me", headers=token)).status_code == 200
        async with api.sessions() as session, session.begin():
            await session.execute(
                update(IbPartner).where(IbPartner.id == ib_id).values(status="suspended")
            )
        assert (await http.get("/partner/me", headers=token)).status_code == 401
    assert (await api.login("ib", email, PASSWORD)).status_code == 401


async def test_logout_revokes_the_callers_tokens(api: InProcessApp) -> None:
    _, email = await api.add_trader(PASSWORD)
    first = await api.token("trader", email, PASSWORD)
    second = await api.token("trader", email, PASSWORD)  # another device
    async with api.client() as http:
        assert (await http.get("/portal/me", headers=first)).status_code == 200
        assert (await http.post("/auth/logout", headers=first)).status_code == 204
        assert (await http.get("/portal/me", headers=first)).status_code == 401
        assert (await http.get("/portal/me", headers=second)).status_code == 401
        assert (await http.post("/auth/logout")).status_code == 401
    again = await api.token("trader", email, PASSWORD)
    async with api.client() as http:
        assert (await http.get("/portal/me", headers=again)).status_code == 200


@pytest.mark.parametrize("kind", ["staff", "trader", "ib"])
async def test_password_change(api: InProcessApp, kind: str) -> None:
    add = {
        "staff": lambda p: api.add_staff("dealer", p),
        "trader": api.add_trader,
        "ib": api.add_ib,
    }
    _, email = await add[kind](PASSWORD)
    old = await api.token(kind, email, PASSWORD)
    new_password = "Battery-staple-2027"
    async with api.client() as http:
        wrong = await http.post(
            "/auth/password",
            json={"current_password": "not-it-at-all", "new_password": new_password},
            headers=old,
        )
        assert wrong.status_code == 403
        weak = await http.post(
            "/auth/password",
            json={"current_password": PASSWORD, "new_password": "short"},
            headers=old,
        )
        assert weak.status_code == 422
        changed = await http.post(
            "/auth/password",
            json={"current_password": PASSWORD, "new_password": new_password},
            headers=old,
        )
        assert changed.status_code == 200, changed.text
        fresh = bearer(changed.json()["access_token"])
        me = {"staff": STAFF_ROUTE, "trader": "/portal/me", "ib": "/partner/me"}[kind]
        assert (await http.get(me, headers=old)).status_code == 401
        assert (await http.get(me, headers=fresh)).status_code == 200
    assert (await api.login(kind, email, PASSWORD)).status_code == 401
    assert (await api.login(kind, email, new_password)).status_code == 200


async def test_an_unknown_account_costs_a_hash_verification_too(
    api: InProcessApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, email = await api.add_staff("dealer", PASSWORD)
    verified: list[str | None] = []
    real = auth_routes.verify_password

    def counting(password_hash: str | None, password: str) -> bool:
        verified.append(password_hash)
        return real(password_hash, password)

    monkeypatch.setattr(auth_routes, "verify_password", counting)
    for username in ("nobody@staff.test", email):
        response = await api.login("staff", username, "wrong-password", address="10.9.0.1")
        assert response.status_code == 401
    assert len(verified) == 2  # the unknown account was verified against a dummy hash

    async def median_ms(username: str, address: str) -> float:
        times = []
        for _ in range(4):
            start = time.perf_counter()
            await api.login("staff", username, "wrong-password", address=address)
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000

    unknown = await median_ms("ghost@staff.test", "10.9.0.2")
    known = await median_ms(email, "10.9.0.3")
    # Both pay for argon2 (tens of ms); before, an unknown account answered in 2-6 ms.
    assert unknown > known / 3, (unknown, known)
    await asyncio.sleep(0)
