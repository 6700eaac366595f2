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
from fxcrm.api.subjects import current_subject
from fxcrm.core.audit import Actor
from fxcrm.core.config import Settings
from fxcrm.core.security import decode_token

STAFF_ROLES = ("admin", "onboarding", "compliance", "finance", "dealer", "support", "auditor")
PORTAL_ROLES = ("trader", "ib")
ALL_ROLES = STAFF_ROLES + PORTAL_ROLES

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


async def get_write_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session that may write, whatever the method: for a GET that records who read what."""
    async with request.app.state.sessions() as session:
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
WriteSessionDep = Annotated[AsyncSession, Depends(get_write_session)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
KycDep = Annotated[KycProvider, Depends(get_kyc)]
PspsDep = Annotated[PspRegistry, Depends(get_psps)]


async def principal_from_token(
    request: Request, settings: Settings, session: AsyncSession, token: str | None
) -> Principal:
    """The caller, as the database knows them now: a signed token alone is not enough.

    The token names the subject; one primary-key read checks that the subject exists, is of the
    kind the token says, is still active, and that the token is not older than the subject's
    last logout, password change or deactivation (its token version). Roles and a trader's or
    IB's brand come from that row, never from the token.
    """
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
        kind, subject, version = str(claims["kind"]), str(claims["sub"]), int(claims["ver"])
        token_brands = [str(b) for b in claims["brands"]]
    except (jwt.InvalidTokenError, KeyError, ValueError, TypeError):
        raise unauthorized from None
    if settings.is_sqlite and request.method not in SAFE_METHODS:
        # The request's session would take SQLite's write lock at its first statement.
        async with request.app.state.read_sessions() as own:
            current = await current_subject(own, kind, subject)
    else:
        # The request's own session (no second connection). A GET goes on reading in the same
        # transaction (every GET reads before it calls Temporal, and releases first); a write
        # may call Temporal before it reads anything, so its transaction ends here.
        current = await current_subject(session, kind, subject)
        if request.method not in SAFE_METHODS:
            await release(session)
    if current is None or current.token_version != version:
        raise unauthorized
    principal = Principal(
        kind=kind,
        id=subject,
        role=current.role,
        # Staff brand grants travel in the token: changing them must revoke it (token version).
        brand_ids=token_brands if kind == "staff" else current.brand_ids,
    )
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

    async def dependency(
        request: Request, settings: Settings, session: AsyncSession, token: str | None
    ) -> Principal:
        principal = await principal_from_token(request, settings, session, token)
        if principal.role not in roles:
            raise Problem(403, "Forbidden", f"role {principal.role} may not do this")
        return principal

    # Built here, not annotated: `bearer` is local, and annotations are strings in this module.
    dependency.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request),
            inspect.Parameter("settings", inspect.Parameter.KEYWORD_ONLY, annotation=SettingsDep),
            inspect.Parameter("session", inspect.Parameter.KEYWORD_ONLY, annotation=SessionDep),
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
