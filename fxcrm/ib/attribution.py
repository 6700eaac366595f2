"""Which IB a client belongs to, from when, and whether its trades may pay anyone at all.

A registration is attributed by the brand's first or last referral click within its window (the
visitor id the portal carries from the click to the registration), else by the referral code the
client typed. Staff re-assign with an effective date. Either way the attribution is checked for
self-referral: a client who is, by email, phone or name and date of birth, the IB itself (or an
IB above it, or the IB's own trading client record) is attributed but `excluded`, so its trades
pay nobody and the IB cannot earn on its own trading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fxcrm.core.audit import Actor, append_audit
from fxcrm.domain.ib.settings import AttributionModel, IbRules
from fxcrm.ib.reports import chain_at
from fxcrm.models import IbAttribution, IbPartner, IbReferralLink, Trader
from fxcrm.models.ib import IbReferralClick

# What a portal keeps in a first-party cookie between the click and the registration.
VISITOR_ID = r"^[A-Za-z0-9_-]{8,64}$"


@dataclass(frozen=True)
class Referrer:
    ib_id: str
    link_code: str | None  # the referral link's code; None for the IB's own code
    source: str  # click | registration | staff


async def resolve_code(session: AsyncSession, brand_id: str, code: str) -> Referrer | None:
    """An IB's own referral code or one of its referral links' codes, within the brand."""
    ib_id = await session.scalar(
        select(IbPartner.id).where(IbPartner.brand_id == brand_id, IbPartner.referral_code == code)
    )
    if ib_id is not None:
        return Referrer(ib_id, None, "registration")
    link_ib = await session.scalar(
        select(IbReferralLink.ib_id)
        .join(IbPartner, IbPartner.id == IbReferralLink.ib_id)
        .where(IbPartner.brand_id == brand_id, IbReferralLink.code == code)
    )
    return Referrer(link_ib, code, "registration") if link_ib is not None else None


async def record_click(
    session: AsyncSession, brand_id: str, referrer: Referrer, visitor_id: str, at: datetime
) -> IbReferralClick:
    click = IbReferralClick(
        brand_id=brand_id,
        ib_id=referrer.ib_id,
        link_code=referrer.link_code,
        visitor_id=visitor_id,
        clicked_at=at,
    )
    session.add(click)
    await session.flush()
    return click


async def referrer_by_click(
    session: AsyncSession, brand_id: str, rules: IbRules, visitor_id: str, now: datetime
) -> Referrer | None:
    """The brand's first or last click of this visitor within the attribution window."""
    since = now - timedelta(days=rules.attribution_window_days)
    query = select(IbReferralClick).where(
        IbReferralClick.brand_id == brand_id,
        IbReferralClick.visitor_id == visitor_id,
        IbReferralClick.clicked_at >= since,
        IbReferralClick.clicked_at <= now,
    )
    if rules.attribution == AttributionModel.FIRST_CLICK:
        query = query.order_by(IbReferralClick.clicked_at, IbReferralClick.id)
    else:
        query = query.order_by(IbReferralClick.clicked_at.desc(), IbReferralClick.id.desc())
    click = await session.scalar(query.limit(1))
    return Referrer(click.ib_id, click.link_code, "click") if click else None


# ---- self-referral ----


@dataclass(frozen=True)
class Identity:
    email: str | None = None
    phone: str | None = None
    name: str | None = None  # first and last name
    date_of_birth: str | None = None  # ISO date


def _email(value: str | None) -> str | None:
    """Lower case, without a +tag: ib+me@x.com is the same mailbox as ib@x.com."""
    if not value or "@" not in value:
        return None
    local, _, domain = value.strip().lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def _phone(value: str | None) -> str | None:
    digits = re.sub(r"\D", "", value or "")
    # 00 is the international prefix dialled from most countries: 0035799... is +35799...
    return digits.removeprefix("00") or None


def _name(value: str | None) -> str | None:
    words = (value or "").casefold().split()
    return " ".join(words) or None


def self_referral(client: Identity, own: Identity) -> str | None:
    """Why `client` is `own` (an IB or the IB's own trading record), or None."""
    email = _email(client.email)
    if email and email == _email(own.email):
        return "email"
    phone = _phone(client.phone)
    if phone and phone == _phone(own.phone):
        return "phone"
    name = _name(client.name)
    if (
        name
        and client.date_of_birth
        and (name, client.date_of_birth)
        == (
            _name(own.name),
            own.date_of_birth,
        )
    ):
        return "name_and_date_of_birth"
    return None


def _trader_identity(trader: Trader) -> Identity:
    return Identity(
        email=trader.email,
        phone=trader.phone,
        name=f"{trader.first_name} {trader.last_name}",
        date_of_birth=trader.date_of_birth,
    )


async def self_referral_reason(
    session: AsyncSession, trader: Trader, ib_id: str, at: datetime
) -> str | None:
    """Checks the client against the IB and every IB above it at `at` (a master placing its own
    account under its sub-IB would otherwise earn on it), and against their own trading records
    (a trader registered with the IB's email)."""
    chain = await chain_at(session, ib_id, at)
    partners = {
        p.id: p
        for p in (await session.scalars(select(IbPartner).where(IbPartner.id.in_(chain)))).all()
    }
    for depth, link in enumerate(chain, start=1):
        partner = partners.get(link)
        if partner is None:
            continue
        whose = "ib" if depth == 1 else f"upline_ib_level_{depth}"
        found = self_referral(_trader_identity(trader), Identity(email=partner.email))
        if found:
            return f"self_referral:{whose}:{found}"
        own_accounts = (
            await session.scalars(
                select(Trader).where(
                    Trader.brand_id == trader.brand_id,
                    Trader.email == partner.email.lower(),
                    Trader.id != trader.id,
                )
            )
        ).all()
        for own in own_accounts:
            found = self_referral(_trader_identity(trader), _trader_identity(own))
            if found:
                return f"self_referral:{whose}_own_account:{found}"
    return None


async def attribute(
    session: AsyncSession,
    trader: Trader,
    referrer: Referrer,
    effective_from: datetime,
    actor: Actor,
    reason: str | None = None,
) -> IbAttribution:
    """Writes the attribution (excluded if it is a self-referral) and its audit event, in the
    caller's transaction."""
    excluded = await self_referral_reason(session, trader, referrer.ib_id, effective_from)
    row = IbAttribution(
        trader_id=trader.id,
        ib_id=referrer.ib_id,
        effective_from=effective_from,
        link_code=referrer.link_code,
        source=referrer.source,
        excluded=excluded,
        reason=reason,
        created_by=actor.id if actor.type == "staff" else None,
    )
    session.add(row)
    await session.flush()
    await append_audit(
        session,
        actor=actor,
        action="ib.self_referral_excluded" if excluded else "ib.client_attributed",
        entity_type="ib_attribution",
        entity_id=row.id,
        brand_id=trader.brand_id,
        after={
            "trader_id": trader.id,
            "ib_id": referrer.ib_id,
            "effective_from": effective_from.isoformat(),
            "link_code": referrer.link_code,
            "source": referrer.source,
            "excluded": excluded,
            "reason": reason,
        },
    )
    return row
