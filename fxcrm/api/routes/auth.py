"""OAuth2 password flow for staff, traders and IB partners; logout, password change and staff
deactivation, each of which revokes the tokens already issued (token version).

Failed logins are throttled per account and client address (fxcrm.api.limits): an attacker's
guesses slow the attacker down without locking the owner out.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field
from sqlalchemy import select

from fxcrm.api.deps import ALL_ROLES, Principal, SessionDep, SettingsDep, release, require
from fxcrm.api.errors import Problem
from fxcrm.api.limits import LoginGuard, account_key
from fxcrm.api.subjects import load_subject, revoke_tokens
from fxcrm.core.audit import Actor, append_audit
from fxcrm.core.config import Settings
from fxcrm.core.security import hash_password, issue_token, verify_password
from fxcrm.domain.passwords import NewPassword
from fxcrm.models import Brand, IbPartner, StaffBrand, StaffUser, Trader
from fxcrm.models.base import utcnow

router = APIRouter(tags=["auth"])
FormDep = Annotated[OAuth2PasswordRequestForm, Depends()]
AnyoneDep = Annotated[Principal, Depends(require(*ALL_ROLES))]
AdminDep = Annotated[Principal, Depends(require("admin"))]


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105
    expires_in: int


async def _check_password(
    request: Request,
    session: SessionDep,
    settings: Settings,
    user: StaffUser | Trader | IbPartner | None,
    password: str,
    kind: str,
    account: str,
    refusal: int = 401,
) -> None:
    """401 (or `refusal`) unless the password is right; 429 while this address (or everyone) is
    throttled.

    A hash is verified whether or not the account exists, so the answer takes as long either way.
    """
    guard = LoginGuard(request, settings, account)
    await guard.check()
    # argon2 is deliberately slow: verify off the event loop, and outside any transaction.
    password_hash = user.password_hash if user is not None else None
    await release(session)
    if not await asyncio.to_thread(verify_password, password_hash, password):
        if await guard.failed() and user is not None:
            await _audit_throttled(session, settings, user, kind)
        if refusal != 401:
            raise Problem(refusal, "Wrong password", "the current password is not right")
        raise Problem(
            401,
            "Invalid credentials",
            "wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    await guard.succeeded()


async def _audit_throttled(
    session: SessionDep, settings: Settings, user: StaffUser | Trader | IbPartner, kind: str
) -> None:
    until = utcnow() + timedelta(minutes=settings.login_lockout_minutes)
    await append_audit(
        session,
        actor=Actor(type=kind, id=user.id),
        action="auth.locked_out",
        entity_type=kind,
        entity_id=user.id,
        after={"scope": "client_address", "until": until.isoformat()},
    )
    await session.commit()


def _token(
    settings: Settings,
    kind: str,
    user: StaffUser | Trader | IbPartner,
    role: str,
    brands: list[str],
) -> TokenResponse:
    minutes = settings.access_token_minutes
    claims: dict[str, Any] = {
        "kind": kind,
        "role": role,
        "brands": brands,
        "ver": user.token_version,
    }
    return TokenResponse(
        access_token=issue_token(settings.secret_key, user.id, claims, minutes),
        expires_in=minutes * 60,
    )


async def _staff_brands(session: SessionDep, staff_id: str) -> list[str]:
    rows = await session.scalars(select(StaffBrand.brand_id).where(StaffBrand.staff_id == staff_id))
    return list(rows.all())


@router.post("/auth/token", response_model=TokenResponse, summary="Staff login")
async def staff_token(
    request: Request, form: FormDep, session: SessionDep, settings: SettingsDep
) -> TokenResponse:
    user = await session.scalar(select(StaffUser).where(StaffUser.email == form.username.lower()))
    if user is not None and not user.is_active:
        user = None
    account = account_key("staff", "", form.username)
    await _check_password(request, session, settings, user, form.password, "staff", account)
    assert user is not None
    return _token(settings, "staff", user, user.role, await _staff_brands(session, user.id))


async def _brand_id(session: SessionDep, brand_code: str) -> str:
    brand_id = await session.scalar(select(Brand.id).where(Brand.code == brand_code))
    if brand_id is None:
        raise Problem(404, "Unknown brand", f"no brand {brand_code!r}")
    return brand_id


async def _client_brand(
    request: Request, form: OAuth2PasswordRequestForm, session: SessionDep
) -> str:
    """The brand of a login without one in the path (the API docs' Authorize dialog): its code
    as the OAuth2 client_id, in the form or as HTTP Basic user (where Swagger UI sends it by
    default); none given, the installation's only brand."""
    code = form.client_id
    header = request.headers.get("authorization", "")
    if not code and header.lower().startswith("basic "):
        try:
            code = base64.b64decode(header[6:], validate=True).decode().split(":", 1)[0]
        except (binascii.Error, UnicodeDecodeError):
            code = None
    if code:
        return await _brand_id(session, code)
    brands = (await session.scalars(select(Brand.id).limit(2))).all()
    if len(brands) != 1:
        raise Problem(
            422,
            "Brand required",
            "several brands: give the brand's code as client_id",
            code="brand_required",
        )
    return brands[0]


@router.post("/portal/{brand_code}/token", response_model=TokenResponse, summary="Trader login")
async def trader_token(
    request: Request, brand_code: str, form: FormDep, session: SessionDep, settings: SettingsDep
) -> TokenResponse:
    brand_id = await _brand_id(session, brand_code)
    return await _portal_login(request, "trader", brand_id, form, session, settings)


@router.post(
    "/portal/token",
    response_model=TokenResponse,
    summary="Trader login, the brand as client_id (the API docs' Authorize dialog)",
)
async def trader_token_by_client(
    request: Request, form: FormDep, session: SessionDep, settings: SettingsDep
) -> TokenResponse:
    brand_id = await _client_brand(request, form, session)
    return await _portal_login(request, "trader", brand_id, form, session, settings)


@router.post(
    "/partner/{brand_code}/token", response_model=TokenResponse, summary="IB partner login"
)
async def ib_token(
    request: Request, brand_code: str, form: FormDep, session: SessionDep, settings: SettingsDep
) -> TokenResponse:
    brand_id = await _brand_id(session, brand_code)
    return await _portal_login(request, "ib", brand_id, form, session, settings)


@router.post(
    "/partner/token",
    response_model=TokenResponse,
    summary="IB partner login, the brand as client_id (the API docs' Authorize dialog)",
)
async def ib_token_by_client(
    request: Request, form: FormDep, session: SessionDep, settings: SettingsDep
) -> TokenResponse:
    brand_id = await _client_brand(request, form, session)
    return await _portal_login(request, "ib", brand_id, form, session, settings)


async def _portal_login(
    request: Request,
    kind: str,
    brand_id: str,
    form: OAuth2PasswordRequestForm,
    session: SessionDep,
    settings: Settings,
) -> TokenResponse:
    """A trader's or an IB's login to one brand."""
    email = form.username.lower()
    user: Trader | IbPartner | None
    if kind == "trader":
        user = await session.scalar(
            select(Trader).where(Trader.brand_id == brand_id, Trader.email == email)
        )
    else:
        user = await session.scalar(
            select(IbPartner).where(IbPartner.brand_id == brand_id, IbPartner.email == email)
        )
    if isinstance(user, IbPartner) and user.status != "active":
        user = None  # a suspended IB signs in no more than an unknown one
    account = account_key(kind, brand_id, form.username)
    await _check_password(request, session, settings, user, form.password, kind, account)
    assert user is not None
    return _token(settings, kind, user, kind, [brand_id])


@router.post("/auth/logout", status_code=204, summary="Sign out everywhere")
async def logout(principal: AnyoneDep, session: SessionDep) -> Response:
    """Revokes every token of the caller (all devices): tokens carry no per-session id."""
    await revoke_tokens(session, principal.kind, principal.id)
    await append_audit(
        session,
        actor=principal.actor,
        action="auth.logged_out",
        entity_type=principal.kind,
        entity_id=principal.id,
    )
    await session.commit()
    return Response(status_code=204)


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=128)
    new_password: NewPassword = Field(min_length=10, max_length=128)


@router.post("/auth/password", response_model=TokenResponse, summary="Change my password")
async def change_password(
    request: Request,
    body: PasswordChange,
    principal: AnyoneDep,
    session: SessionDep,
    settings: SettingsDep,
) -> TokenResponse:
    """Needs the current password; revokes every other token and returns a fresh one."""
    user = await load_subject(session, principal.kind, principal.id)
    if user is None:
        raise Problem(401, "Not authenticated", "unknown subject")
    account = account_key("password", principal.kind, principal.id)
    # 403, not 401: the caller is signed in; only the password they typed is wrong.
    await _check_password(
        request, session, settings, user, body.current_password, principal.kind, account, 403
    )
    if body.new_password == body.current_password:
        raise Problem(
            422,
            "Same password",
            "choose a new password",
            field="new_password",
            type_="/problems/validation",
        )
    new_hash = await asyncio.to_thread(hash_password, body.new_password)
    user = await load_subject(session, principal.kind, principal.id, fresh=True)
    assert user is not None
    user.password_hash = new_hash
    await revoke_tokens(session, principal.kind, principal.id)
    await append_audit(
        session,
        actor=principal.actor,
        action="auth.password_changed",
        entity_type=principal.kind,
        entity_id=principal.id,
    )
    await session.commit()
    await session.refresh(user)
    return _token(settings, principal.kind, user, principal.role, principal.brand_ids)


class StaffStatusChange(BaseModel):
    reason: str = Field(min_length=3, max_length=1000)


class StaffView(BaseModel):
    staff_id: str
    email: str
    role: str
    is_active: bool


async def _set_active(
    session: SessionDep, principal: Principal, staff_id: str, active: bool, reason: str
) -> StaffView:
    user = await session.get(StaffUser, staff_id)
    # Staff of no brand the admin administers look exactly like missing ones.
    if user is None or not set(await _staff_brands(session, staff_id)) <= set(principal.brand_ids):
        raise Problem(404, "Not found", "no such staff user")
    if staff_id == principal.id and not active:
        raise Problem(409, "Cannot deactivate yourself", "ask another admin")
    if user.is_active != active:
        user.is_active = active
        await revoke_tokens(session, "staff", staff_id)
        await append_audit(
            session,
            actor=principal.actor,
            action="staff.activated" if active else "staff.deactivated",
            entity_type="staff",
            entity_id=staff_id,
            before={"is_active": not active},
            after={"is_active": active, "reason": reason},
        )
        await session.commit()
    return StaffView(staff_id=user.id, email=user.email, role=user.role, is_active=active)


@router.post("/admin/staff/{staff_id}/deactivate", response_model=StaffView, tags=["admin"])
async def deactivate_staff(
    staff_id: str, body: StaffStatusChange, principal: AdminDep, session: SessionDep
) -> StaffView:
    """Signs the user out at once (their tokens are revoked) and refuses their logins."""
    return await _set_active(session, principal, staff_id, False, body.reason)


@router.post("/admin/staff/{staff_id}/activate", response_model=StaffView, tags=["admin"])
async def activate_staff(
    staff_id: str, body: StaffStatusChange, principal: AdminDep, session: SessionDep
) -> StaffView:
    return await _set_active(session, principal, staff_id, True, body.reason)
