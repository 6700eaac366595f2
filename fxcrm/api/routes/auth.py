"""OAuth2 password flow for staff, traders and IB partners, with a lock-out after repeated failures."""

from __future__ import annotations

import asyncio
import base64
import binascii
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel
from sqlalchemy import select, update

from fxcrm.api.deps import SessionDep, SettingsDep, release
from fxcrm.api.errors import Problem
from fxcrm.core.audit import Actor, append_audit
from fxcrm.core.config import Settings
from fxcrm.core.security import issue_token, verify_password
from fxcrm.models import Brand, IbPartner, StaffBrand, StaffUser, Trader
from fxcrm.models.base import utcnow

router = APIRouter(tags=["auth"])
FormDep = Annotated[OAuth2PasswordRequestForm, Depends()]


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105
    expires_in: int


async def _check_password(
    session: SessionDep,
    settings: Settings,
    user: StaffUser | Trader | IbPartner | None,
    password: str,
    kind: str,
) -> None:
    """Counts failures; locks the account for a while after too many. Commits either way."""
    now = utcnow()
    if user is not None and user.locked_until is not None and user.locked_until > now:
        retry = int((user.locked_until - now).total_seconds()) + 1
        raise Problem(
            429,
            "Too many failed logins",
            "the account is temporarily locked",
            headers={"Retry-After": str(retry)},
        )
    # argon2 is deliberately slow: verify off the event loop, and outside any transaction.
    password_hash = user.password_hash if user is not None else None
    await release(session)
    if user is None or not await asyncio.to_thread(verify_password, password_hash, password):
        if user is not None:
            await _count_failure(session, settings, user, kind, now)
        raise Problem(
            401,
            "Invalid credentials",
            "wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if user.failed_logins:
        model = type(user)
        await session.execute(update(model).where(model.id == user.id).values(failed_logins=0))
        await session.commit()


async def _count_failure(
    session: SessionDep,
    settings: Settings,
    user: StaffUser | Trader | IbPartner,
    kind: str,
    now: datetime,
) -> None:
    """Atomic increment, so concurrent guesses cannot slip past the limit."""
    model = type(user)
    failures = await session.scalar(
        update(model)
        .where(model.id == user.id)
        .values(failed_logins=model.failed_logins + 1)
        .returning(model.failed_logins)
    )
    if failures is not None and failures >= settings.login_max_failures:
        locked_until = now + timedelta(minutes=settings.login_lockout_minutes)
        await session.execute(
            update(model)
            .where(model.id == user.id)
            .values(locked_until=locked_until, failed_logins=0)
        )
        await append_audit(
            session,
            actor=Actor(type=kind, id=user.id),
            action="auth.locked_out",
            entity_type=kind,
            entity_id=user.id,
            after={"locked_until": locked_until.isoformat()},
        )
    await session.commit()


def _token(settings: Settings, subject: str, claims: dict[str, Any]) -> TokenResponse:
    minutes = settings.access_token_minutes
    return TokenResponse(
        access_token=issue_token(settings.secret_key, subject, claims, minutes),
        expires_in=minutes * 60,
    )


@router.post("/auth/token", response_model=TokenResponse, summary="Staff login")
async def staff_token(form: FormDep, session: SessionDep, settings: SettingsDep) -> TokenResponse:
    user = await session.scalar(select(StaffUser).where(StaffUser.email == form.username.lower()))
    if user is not None and not user.is_active:
        user = None
    await _check_password(session, settings, user, form.password, "staff")
    assert user is not None
    brands = list(
        (
            await session.scalars(select(StaffBrand.brand_id).where(StaffBrand.staff_id == user.id))
        ).all()
    )
    return _token(settings, user.id, {"kind": "staff", "role": user.role, "brands": brands})


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
    brand_code: str, form: FormDep, session: SessionDep, settings: SettingsDep
) -> TokenResponse:
    return await _trader_login(await _brand_id(session, brand_code), form, session, settings)


@router.post(
    "/portal/token",
    response_model=TokenResponse,
    summary="Trader login, the brand as client_id (the API docs' Authorize dialog)",
)
async def trader_token_by_client(
    request: Request, form: FormDep, session: SessionDep, settings: SettingsDep
) -> TokenResponse:
    brand_id = await _client_brand(request, form, session)
    return await _trader_login(brand_id, form, session, settings)


async def _trader_login(
    brand_id: str, form: OAuth2PasswordRequestForm, session: SessionDep, settings: Settings
) -> TokenResponse:
    trader = await session.scalar(
        select(Trader).where(Trader.brand_id == brand_id, Trader.email == form.username.lower())
    )
    await _check_password(session, settings, trader, form.password, "trader")
    assert trader is not None
    return _token(settings, trader.id, {"kind": "trader", "role": "trader", "brands": [brand_id]})


@router.post(
    "/partner/{brand_code}/token", response_model=TokenResponse, summary="IB partner login"
)
async def ib_token(
    brand_code: str, form: FormDep, session: SessionDep, settings: SettingsDep
) -> TokenResponse:
    return await _ib_login(await _brand_id(session, brand_code), form, session, settings)


@router.post(
    "/partner/token",
    response_model=TokenResponse,
    summary="IB partner login, the brand as client_id (the API docs' Authorize dialog)",
)
async def ib_token_by_client(
    request: Request, form: FormDep, session: SessionDep, settings: SettingsDep
) -> TokenResponse:
    brand_id = await _client_brand(request, form, session)
    return await _ib_login(brand_id, form, session, settings)


async def _ib_login(
    brand_id: str, form: OAuth2PasswordRequestForm, session: SessionDep, settings: Settings
) -> TokenResponse:
    partner = await session.scalar(
        select(IbPartner).where(
            IbPartner.brand_id == brand_id, IbPartner.email == form.username.lower()
        )
    )
    await _check_password(session, settings, partner, form.password, "ib")
    assert partner is not None
    return _token(settings, partner.id, {"kind": "ib", "role": "ib", "brands": [brand_id]})
