"""The demo seed: a brand, one staff user per role, an MT5 server, an IB tree. Idempotent."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fxcrm.core.audit import SYSTEM, append_audit
from fxcrm.core.db import transaction
from fxcrm.core.security import hash_password
from fxcrm.domain.brand import demo_brand_config
from fxcrm.domain.ib.plans import parse_plan
from fxcrm.models import (
    Brand,
    IbParentLink,
    IbPartner,
    IbPlan,
    IbPlanAssignment,
    IbPlanVersion,
    PlatformServer,
    StaffBrand,
    StaffUser,
)

DEMO_BRAND = "demo"
DEMO_SERVER = "mt5-demo"
STAFF_ROLES = ("admin", "onboarding", "compliance", "finance", "dealer", "support", "auditor")
DEMO_PASSWORD_SUFFIX = "-demo-2026"  # noqa: S105  (dev only: `make dev` prints these)


MT5_CONFIG: dict[str, object] = {"manager_login": 1000, "server_utc_offset_hours": 2}
# One server per other platform, on the simulators `make dev` starts (see adapters/simulators/run.py).
OTHER_SERVERS: dict[str, tuple[str, str, str, dict[str, object]]] = {
    "ctrader-demo": (
        "ctrader",
        "cTrader demo (simulator)",
        "http://127.0.0.1:7102",
        {"manager_login": 30017, "broker_name": "fxcrm-demo"},
    ),
    "matchtrader-demo": (
        "matchtrader",
        "Match-Trader demo (simulator)",
        "http://127.0.0.1:7103",
        {},
    ),
    "sirix-demo": ("sirix", "Sirix demo (simulator)", "https://127.0.0.1:7104", {}),
    "mt4-demo": ("mt4", "MT4 bridge demo (simulator)", "http://127.0.0.1:7105", {}),
}


def demo_staff_credentials() -> list[tuple[str, str]]:
    return [(f"{role}@demo.fxcrm.dev", f"{role}{DEMO_PASSWORD_SUFFIX}") for role in STAFF_ROLES]


async def seed_demo(
    sessions: async_sessionmaker[AsyncSession], mt5_url: str = "https://127.0.0.1:7101"
) -> str:
    """Returns the demo brand id; running it twice changes nothing."""
    async with transaction(sessions) as session:
        brand = await session.scalar(select(Brand).where(Brand.code == DEMO_BRAND))
        if brand is None:
            brand = Brand(
                code=DEMO_BRAND,
                name="fxcrm Demo Markets",
                legal_entity="fxcrm Demo Markets Ltd (CY)",
                config=demo_brand_config(DEMO_SERVER).model_dump(mode="json"),
            )
            session.add(brand)
            await session.flush()
            await append_audit(
                session,
                actor=SYSTEM,
                action="seed.brand_created",
                entity_type="brand",
                entity_id=brand.id,
                brand_id=brand.id,
                after={"code": DEMO_BRAND},
            )
        servers = {
            DEMO_SERVER: ("mt5", "MT5 demo (simulator)", mt5_url, MT5_CONFIG),
            **OTHER_SERVERS,
        }
        for server_id, (platform, name, url, config) in servers.items():
            if await session.get(PlatformServer, server_id) is None:
                session.add(
                    PlatformServer(
                        id=server_id,
                        brand_id=brand.id,
                        platform=platform,
                        name=name,
                        base_url=url,
                        config=config,
                    )
                )
        for role in STAFF_ROLES:
            email = f"{role}@demo.fxcrm.dev"
            if await session.scalar(select(StaffUser.id).where(StaffUser.email == email)):
                continue
            user = StaffUser(
                email=email,
                full_name=f"Demo {role.title()}",
                role=role,
                password_hash=hash_password(f"{role}{DEMO_PASSWORD_SUFFIX}"),
            )
            session.add(user)
            await session.flush()
            session.add(StaffBrand(staff_id=user.id, brand_id=brand.id))
        await _seed_ib_tree(session, brand.id)
        return brand.id


async def _seed_ib_tree(session: AsyncSession, brand_id: str) -> None:
    parent_id: str | None = None
    for level, code in enumerate(("MASTERIB", "SUBIB1", "SUBIB2"), start=1):
        partner = await session.scalar(select(IbPartner).where(IbPartner.referral_code == code))
        if partner is None:
            partner = IbPartner(
                brand_id=brand_id,
                email=f"ib{level}@demo.fxcrm.dev",
                name=f"Demo IB level {level}",
                referral_code=code,
                parent_id=parent_id,
                password_hash=hash_password(f"ib{level}{DEMO_PASSWORD_SUFFIX}"),
            )
            session.add(partner)
            await session.flush()
        parent_id = partner.id
    await _seed_ib_history(session, brand_id)


# The demo plans, per IB code: (plan name, [per-lot rate of fx_major, of everything else] per
# version). Differential: each level earns its rate less the rate of the level below.
DEMO_SYMBOL_GROUPS = {"EURUSD": "fx_major", "GBPUSD": "fx_major", "USDJPY": "fx_major"}
DEMO_PLANS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "MASTERIB": ("Demo master", [("10", "6"), ("12", "7")]),
    "SUBIB1": ("Demo sub-IB", [("7", "4")]),
    "SUBIB2": ("Demo introducer", [("5", "3")]),
}


async def _seed_ib_history(session: AsyncSession, brand_id: str) -> None:
    """Parent links effective since the brand's creation, and a plan per demo IB (a second
    version of the master plan from the brand's second month), each only if missing."""
    brand = await session.get(Brand, brand_id)
    assert brand is not None
    since = brand.created_at
    for code, (plan_name, versions) in DEMO_PLANS.items():
        partner = await session.scalar(select(IbPartner).where(IbPartner.referral_code == code))
        if partner is None:
            continue
        if not await session.scalar(
            select(IbParentLink.id).where(IbParentLink.ib_id == partner.id)
        ):
            session.add(
                IbParentLink(
                    ib_id=partner.id,
                    parent_id=partner.parent_id,
                    effective_from=since,
                    reason="demo seed",
                )
            )
        plan = await session.scalar(
            select(IbPlan).where(IbPlan.brand_id == brand_id, IbPlan.name == plan_name)
        )
        if plan is None:
            plan = IbPlan(brand_id=brand_id, name=plan_name)
            session.add(plan)
            await session.flush()
            next_month = (since.replace(day=1) + timedelta(days=32)).replace(
                day=1, hour=0, minute=0, second=0, microsecond=0
            )
            for number, (major, other) in enumerate(versions, start=1):
                rules = parse_plan(
                    {
                        "symbol_groups": DEMO_SYMBOL_GROUPS,
                        "per_lot": {"fx_major": {"*": major}, "*": {"*": other}},
                        "distribution": {"model": "differential"},
                    }
                )
                session.add(
                    IbPlanVersion(
                        plan_id=plan.id,
                        version=number,
                        effective_from=since if number == 1 else next_month,
                        rules=rules.model_dump(mode="json"),
                    )
                )
        if not await session.scalar(
            select(IbPlanAssignment.id).where(IbPlanAssignment.ib_id == partner.id)
        ):
            session.add(IbPlanAssignment(ib_id=partner.id, plan_id=plan.id, effective_from=since))
    await session.flush()
