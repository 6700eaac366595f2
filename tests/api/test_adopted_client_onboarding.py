"""A client adopted with an account it already had (an imported book, `make dev`'s demo book)
has no onboarding workflow: its onboarding view says what `/portal/me` says, from the record."""

from __future__ import annotations

import random
import uuid

from schemathesis.python import asgi

from fxcrm.core.db import create_engine, session_factory
from fxcrm.core.security import hash_password
from fxcrm.models import Brand, Trader, TradingAccount
from fxcrm.seed import DEMO_BRAND, DEMO_SERVER
from tests.api.schema_app import InProcessApi, run_sync

PASSWORD = "Adopted-client-2026"


async def _adopted_client(database_url: str) -> tuple[str, int]:
    from sqlalchemy import select

    engine = create_engine(database_url)
    email = f"adopted-{uuid.uuid4().hex[:8]}@example.com"
    login = random.randint(10**8, 10**9)
    try:
        async with session_factory(engine)() as session, session.begin():
            brand_id = await session.scalar(select(Brand.id).where(Brand.code == DEMO_BRAND))
            trader = Trader(
                brand_id=brand_id,
                email=email,
                password_hash=hash_password(PASSWORD),
                first_name="Ada",
                last_name="Adopted",
                date_of_birth="1980-02-03",
                phone="+35799123456",
                address="{}",
                country="CY",
                account_type="retail",
                status="active",
                stage="active",
                kyc_status="APPROVED",
            )
            session.add(trader)
            await session.flush()
            session.add(
                TradingAccount(
                    trader_id=trader.id,
                    brand_id=brand_id,
                    server_id=DEMO_SERVER,
                    platform="mt5",
                    opening_key=f"adopted:{login}",
                    status="open",
                    login=login,
                    group="real\\retail\\std",
                    leverage=100,
                    currency="USD",
                    account_type="retail",
                )
            )
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
