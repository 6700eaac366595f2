"""FastAPI dependencies: settings, database session, Temporal client, the caller and their roles."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import jwt
import structlog
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from fxcrm.adapters.kyc.base import KycProvider
from fxcrm.adapters.psp.registry import PspRegistry
from fxcrm.api.errors import Problem
from fxcrm.core.audit import Actor
from fxcrm.core.config import Settings
from fxcrm.core.security import decode_token

STAFF_ROLES = ("admin", "onboarding", "compliance", "finance", "dealer", "support", "auditor")
PORTAL_ROLES = ("trader", "ib")

oauth2 = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


class Principal(BaseModel):
    kind: str  # staff | trader | ib
    id: str
    role: str
    brand_ids: list[str]

    @property
    def actor(self) -> Actor:
        return Actor(type=self.kind, id=self.id, role=self.role)

    def can_see_brand(self, brand_id: str) -> bool:
        return brand_id in self.brand_ids


# Dependencies are `async def` even when they only read app state: FastAPI runs a plain `def`
# dependency on its thread pool, a thread hop that cost more than the rest of the dependency.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    # GET never writes (HTTP's safe methods), so it reads beside writers instead of queueing.
    factory = request.app.state.read_sessions if request.method in SAFE_METHODS else None
    async with (factory or request.app.state.sessions)() as session:
        yield session


async def get_temporal(request: Request) -> Client:
    client: Client = await request.app.state.temporal()
    return client


async def get_kyc(request: Request) -> KycProvider:
    kyc: KycProvider = request.app.state.kyc
    return kyc


async def get_psps(request: Request) -> PspRegistry:
    psps: PspRegistry = request.app.state.psps
    return psps


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
KycDep = Annotated[KycProvider, Depends(get_kyc)]
PspsDep = Annotated[PspRegistry, Depends(get_psps)]


async def get_principal(
    settings: SettingsDep, token: Annotated[str | None, Depends(oauth2)]
) -> Principal:
    unauthorized = Problem(
        401,
        "Not authenticated",
        "a valid bearer token is required",
        headers={"WWW-Authenticate": "Bearer"},
    )
    if not token:
        raise unauthorized
    try:
        claims: dict[str, Any] = decode_token(settings.secret_key, token)
        principal = Principal(
            kind=claims["kind"], id=claims["sub"], role=claims["role"], brand_ids=claims["brands"]
        )
    except (jwt.InvalidTokenError, KeyError, ValueError):
        raise unauthorized from None
    structlog.contextvars.bind_contextvars(user=f"{principal.kind}:{principal.id}")
    return principal


async def release(session: AsyncSession) -> None:
    """Ends the open read transaction before a slow call (Temporal, a provider).

    On SQLite every transaction holds the write lock (BEGIN IMMEDIATE), and on PostgreSQL an idle
    transaction holds a connection: neither may wait on the network.
    """
    await session.commit()


def require(*roles: str) -> Callable[..., Any]:
    """Declares who may call an endpoint; anyone else gets 403."""

    async def dependency(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in roles:
            raise Problem(403, "Forbidden", f"role {principal.role} may not do this")
        return principal

    dependency.roles = roles  # type: ignore[attr-defined]
    return dependency


TraderDep = Annotated[Principal, Depends(require("trader"))]
