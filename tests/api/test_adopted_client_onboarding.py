"""A client adopted with an account it already had (an imported book, `make dev`'s demo book)
has no onboarding workflow: its onboarding view says what `/portal/me` says, from the record."""

from __future__ import annotations

import random
import uuid

from schemathesis.python import asgi

from fxcrm.core.db import create_engine, session_factory
from fxcrm.core.security import hash_password
from fxcrm.models import Brand
from fxcrm.seed import DEMO_BRAND
from tests.api.schema_app import InProcessApi, run_sync
from tests.e2e.money import new_account, new_trader

PASSWORD = "Adopted-client-2026"


async def _adopted_client(database_url: str) -> tuple[str, int]:
    from sqlalchemy import select

    engine = create_engine(database_url)
    email = f"adopted-{uuid.uuid4().hex[:8]}@example.com"
    login = random.randint(10**8, 10**9)
    try:
        async with session_factory(engine)() as session, session.begin():
            brand_id = await session.scalar(select(Brand.id).where(Brand.code == DEMO_BRAND))
            trader = new_trader(
                brand_id,
                email=email,
                password_hash=hash_password(PASSWORD),
                stage="active",
                kyc_status="APPROVED",
            )
            session.add(trader)
            await session.flush()
            session.add(new_account(trader.id, brand_id, login))
    finally:
        await engine.dispose()
    return email, login


def test_an_adopted_client_sees_its_onboarding_as_its_record_says(
    inprocess_api: InProcessApi,
) -> None:
    email, login = run_sync(lambda: _adopted_client(inprocess_api.settings.database_url))
    with asgi.get_client(inprocess_api.app) as http:
        token = http.post(
            f"/portal/{DEMO_BRAND}/token", data={"username": email, "password": PASSWORD}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        me = http.get("/portal/me", headers=headers)
        view = http.get("/portal/me/onboarding", headers=headers)
    assert me.status_code == 200 and view.status_code == 200, view.text
    assert (view.json()["stage"], me.json()["stage"]) == ("active", "active")
    assert view.json()["login"] == login
