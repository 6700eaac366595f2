"""FastAPI dependencies: settings, database session, Temporal client, the caller and their roles."""

from __future__ import annotations

import inspect
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

# One OAuth2 password scheme per kind of user, each with its own token endpoint, so that the
# API docs (/docs) offer staff, traders and IBs an Authorize button each. All three read the same
# bearer token; the token itself says whose it is, and `require` what may call the endpoint.
staff_oauth2 = OAuth2PasswordBearer(
    tokenUrl="/auth/token",
    scheme_name="staff",
    description="Staff: e-mail and password.",
    auto_error=False,
)
trader_oauth2 = OAuth2PasswordBearer(
    tokenUrl="/portal/token",
    scheme_name="trader",
    description="Traders: e-mail and password; client_id is the brand's code (e.g. demo), "
    "which may be left empty where there is one brand.",
    auto_error=False,
)
ib_oauth2 = OAuth2PasswordBearer(
    tokenUrl="/partner/token",
    scheme_name="ib",
    description="IB partners: e-mail and password; client_id is the brand's code (e.g. demo), "
    "which may be left empty where there is one brand.",
    auto_error=False,
)
oauth2 = staff_oauth2


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


def get_settings(request: Request) -> Settings:
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


def get_kyc(request: Request) -> KycProvider:
    kyc: KycProvider = request.app.state.kyc
    return kyc


def get_psps(request: Request) -> PspRegistry:
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
    return principal_from_token(settings, token)


def principal_from_token(settings: Settings, token: str | None) -> Principal:
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


def _bearer(roles: tuple[str, ...]) -> Callable[..., Any]:
    """A dependency giving the bearer token, declared (for the API docs) under the schemes of
    the kinds of user `roles` belong to."""
    schemes = [
        scheme
        for scheme, kind_roles in (
            (staff_oauth2, STAFF_ROLES),
            (trader_oauth2, ("trader",)),
            (ib_oauth2, ("ib",)),
        )
        if set(roles) & set(kind_roles)
    ] or [staff_oauth2]

    async def token(**found: str | None) -> str | None:
        return next((value for value in found.values() if value), None)

    token.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                scheme.scheme_name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[str | None, Depends(scheme)],
            )
            for scheme in schemes
        ]
    )
    return token


def require(*roles: str) -> Callable[..., Any]:
    """Declares who may call an endpoint; anyone else gets 403."""
    bearer = _bearer(roles)

    async def dependency(settings: Settings, token: str | None) -> Principal:
        principal = principal_from_token(settings, token)
        if principal.role not in roles:
            raise Problem(403, "Forbidden", f"role {principal.role} may not do this")
        return principal

    # Built here, not annotated: `bearer` is local, and annotations are strings in this module.
    dependency.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("settings", inspect.Parameter.KEYWORD_ONLY, annotation=SettingsDep),
            inspect.Parameter(
                "token",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[str | None, Depends(bearer)],
            ),
        ],
        return_annotation=Principal,
    )
    dependency.roles = roles  # type: ignore[attr-defined]
    return dependency


TraderDep = Annotated[Principal, Depends(require("trader"))]
