"""The API in this process over ASGI, on the test database, without Temporal or simulators: for
what is decided before a workflow is touched (authentication, roles, limits, headers).

Each client may come from its own address (`client("10.0.0.7")`), so the per-address limits
can be tested without a network.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from fxcrm.adapters.psp.registry import build_psps
from fxcrm.api.main import create_app
from fxcrm.core.config import Settings
from fxcrm.core.ratelimit import RateLimiter
from fxcrm.core.security import hash_password
from fxcrm.models import IbPartner, StaffBrand, StaffUser, Trader
from fxcrm.seed import seed_demo
from tests.e2e.portal import bearer


class _NoKyc:
    provider = "none"

    async def close(self) -> None:
        return None


class _Unreachable:
    """Stands in for the Temporal client: resolving the dependency is fine, using it is not."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"this test's requests must not reach Temporal ({name})")


async def _no_temporal() -> Client:
    return _Unreachable()  # type: ignore[return-value]


@dataclass
class InProcessApp:
    app: FastAPI
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    brand_id: str

    def client(self, address: str = "10.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(address, 50000))
        return httpx.AsyncClient(transport=transport, base_url="http://fxcrm.test")

    async def add_staff(self, role: str, password: str) -> tuple[str, str]:
        """A staff user of the demo brand: (id, email)."""
        email = f"{role}-{uuid.uuid4().hex[:8]}@staff.test"
        async with self.sessions() as session, session.begin():
            user = StaffUser(
                email=email, full_name="Test", role=role, password_hash=hash_password(password)
            )
            session.add(user)
            await session.flush()
            session.add(StaffBrand(staff_id=user.id, brand_id=self.brand_id))
        return user.id, email

    async def add_trader(self, password: str) -> tuple[str, str]:
        email = f"trader-{uuid.uuid4().hex[:8]}@example.com"
        async with self.sessions() as session, session.begin():
            trader = Trader(
                brand_id=self.brand_id,
                email=email,
                password_hash=hash_password(password),
                first_name="Test",
                last_name="Trader",
                date_of_birth="1985-03-14",
                phone="+4915112345678",
                address='{"line1": "Hauptstrasse 1", "city": "Berlin", "postal_code": "10115"}',
                country="DE",
                account_type="retail",
            )
            session.add(trader)
        return trader.id, email

    async def add_ib(self, password: str) -> tuple[str, str]:
        email = f"ib-{uuid.uuid4().hex[:8]}@partner.test"
        async with self.sessions() as session, session.begin():
            partner = IbPartner(
                brand_id=self.brand_id,
                email=email,
                name="Test IB",
                referral_code=f"T{uuid.uuid4().hex[:10].upper()}",
                password_hash=hash_password(password),
            )
            session.add(partner)
        return partner.id, email

    async def login(
        self, kind: str, email: str, password: str, address: str = "10.0.0.1"
    ) -> httpx.Response:
        path = {"staff": "/auth/token", "trader": "/portal/demo/token", "ib": "/partner/demo/token"}
        async with self.client(address) as http:
            return await http.post(path[kind], data={"username": email, "password": password})

    async def token(self, kind: str, email: str, password: str) -> dict[str, str]:
        response = await self.login(kind, email, password)
        assert response.status_code == 200, response.text
        return bearer(response.json()["access_token"])


@contextlib.asynccontextmanager
async def inprocess_app(
    database_url: str, limiter: RateLimiter | None = None, **overrides: Any
) -> AsyncIterator[InProcessApp]:
    settings = Settings(env="test", database_url=database_url, **overrides)
    psps = build_psps(settings)
    app = create_app(
        settings,
        kyc=_NoKyc(),  # type: ignore[arg-type]
        temporal_client=_no_temporal,
        psps=psps,
        limiter=limiter,
    )
    async with app.router.lifespan_context(app):
        brand_id = await seed_demo(app.state.sessions)
        yield InProcessApp(app, settings, app.state.sessions, brand_id)
    await psps.close()
