"""Test data for the IB programme's API: a brand of its own per test (so settled periods and IB
trees never leak between tests), staff of that brand, IBs, clients, accruals and settlements
written straight into the tables the accrual and settlement activities own."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select

from fxcrm.core.security import hash_password
from fxcrm.models import (
    AuditEvent,
    Brand,
    IbAccrual,
    IbAttribution,
    IbSettlement,
    IbSettlementPeriod,
    IngestedDeal,
    StaffBrand,
    StaffUser,
    Trader,
)
from fxcrm.seed import DEMO_BRAND, DEMO_SERVER
from tests.e2e.portal import bearer
from tests.e2e.stack import Stack

STAFF_PASSWORD = "Staff-pass-2026"
IB_PASSWORD = "Partner-pass-2026"


@dataclass
class IbBrand:
    code: str
    id: str
    tokens: dict[str, str]  # role → bearer token of a staff user of this brand only

    def staff(self, role: str) -> dict[str, str]:
        return bearer(self.tokens[role])


async def new_brand(
    stack: Stack, roles: tuple[str, ...] = ("admin", "finance", "dealer"), **ib_rules: Any
) -> IbBrand:
    code = f"ib{uuid.uuid4().hex[:8]}"
    async with stack.sessions() as session, session.begin():
        demo = await session.scalar(select(Brand).where(Brand.code == DEMO_BRAND))
        assert demo is not None
        config = dict(demo.config)
        config["ib"] = {**config.get("ib", {}), **ib_rules}
        brand = Brand(code=code, name=code, legal_entity=f"{code} Ltd", config=config)
        session.add(brand)
        await session.flush()
        for role in roles:
            user = StaffUser(
                email=f"{role}@{code}.dev",
                full_name=f"{role} of {code}",
                role=role,
                password_hash=hash_password(STAFF_PASSWORD),
            )
            session.add(user)
            await session.flush()
            session.add(StaffBrand(staff_id=user.id, brand_id=brand.id))
        brand_id = brand.id
    tokens = {}
    for role in roles:
        response = await stack.http.post(
            "/auth/token", data={"username": f"{role}@{code}.dev", "password": STAFF_PASSWORD}
        )
        assert response.status_code == 200, response.text
        tokens[role] = response.json()["access_token"]
    return IbBrand(code, brand_id, tokens)


async def create_ib(
    http: httpx.AsyncClient, brand: IbBrand, parent_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    body = {
        "name": extra.pop("name", f"IB {uuid.uuid4().hex[:6]}"),
        "email": extra.pop("email", f"ib-{uuid.uuid4().hex[:10]}@partners.dev"),
        "password": IB_PASSWORD,
        "parent_id": parent_id,
        "effective_from": extra.pop("effective_from", "2026-01-01T00:00:00Z"),
        **extra,
    }
    response = await http.post("/backoffice/ib", json=body, headers=brand.staff("admin"))
    assert response.status_code == 201, response.text
    return {**response.json(), "password": IB_PASSWORD}


async def ib_headers(http: httpx.AsyncClient, brand: IbBrand, ib: dict[str, Any]) -> dict[str, str]:
    response = await http.post(
        f"/partner/{brand.code}/token", data={"username": ib["email"], "password": ib["password"]}
    )
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


async def add_client(
    stack: Stack,
    brand: IbBrand,
    ib_id: str | None = None,
    since: datetime = datetime(2026, 1, 1, tzinfo=UTC),
    **fields: Any,
) -> str:
    """A client written directly (no onboarding), attributed to `ib_id` from `since`."""
    async with stack.sessions() as session, session.begin():
        trader = Trader(
            brand_id=brand.id,
            email=fields.pop("email", f"client-{uuid.uuid4().hex[:10]}@example.com"),
            password_hash="x",
            first_name=fields.pop("first_name", "Clara"),
            last_name=fields.pop("last_name", "Zetkin"),
            date_of_birth=fields.pop("date_of_birth", "1980-07-05"),
            phone=fields.pop("phone", f"+3579{uuid.uuid4().int % 10**7:07d}"),
            address="{}",
            country="CY",
            account_type="retail",
            ib_partner_id=ib_id,
            **fields,
        )
        session.add(trader)
        await session.flush()
        if ib_id is not None:
            session.add(
                IbAttribution(
                    trader_id=trader.id, ib_id=ib_id, effective_from=since, source="registration"
                )
            )
        return trader.id


async def add_accruals(
    stack: Stack,
    brand: IbBrand,
    ib_id: str,
    trader_id: str,
    period: str,
    lines: list[tuple[str, int, str]],
) -> list[int]:
    """Accrual lines (rule, depth, amount) of one deal each, on deals no trading account owns
    (so the running worker's accrual never reads them)."""
    year, month = (int(p) for p in period.split("-"))
    closed_at = datetime(year, month, 10, 12, tzinfo=UTC)
    ids = []
    async with stack.sessions() as session, session.begin():
        for rule, depth, amount in lines:
            deal = IngestedDeal(
                server_id=DEMO_SERVER,
                deal_id=f"t{uuid.uuid4().hex[:20]}",
                login=9_000_000_000 + uuid.uuid4().int % 10**8,
                position_id="p1",
                symbol="EURUSD",
                side="sell",
                entry="out",
                volume_lots=Decimal("1.5"),
                price=Decimal("1.1"),
                profit=Decimal("-123.45"),  # the client's profit: never shown to the IB
                commission=Decimal("-7"),
                swap=Decimal(0),
                closed_at=closed_at,
                raw={},
            )
            session.add(deal)
            await session.flush()
            accrual = IbAccrual(
                brand_id=brand.id,
                deal_pk=deal.id,
                beneficiary_id=ib_id,
                rule=rule,
                depth=depth,
                amount=Decimal(amount),
                currency="USD",
                plan_version_id=None,
                trader_id=trader_id,
                period=period,
                closed_at=closed_at,
                inputs={
                    "lots": "1.5",
                    "rate": "7",
                    "cell": "fx_majorx*",
                    "model": "differential",
                    "own": amount,
                    "below": "0",
                },
            )
            session.add(accrual)
            await session.flush()
            ids.append(accrual.id)
    return ids


async def settle(
    stack: Stack, brand: IbBrand, ib_id: str, period: str, status: str = "paid", payable: str = "0"
) -> None:
    """As settlement leaves it: the brand's period closed, and the IB's settlement row."""
    async with stack.sessions() as session, session.begin():
        closed = await session.scalar(
            select(IbSettlementPeriod).where(
                IbSettlementPeriod.brand_id == brand.id, IbSettlementPeriod.period == period
            )
        )
        if closed is None:
            session.add(
                IbSettlementPeriod(
                    brand_id=brand.id, period=period, status="settled", currency="USD"
                )
            )
        session.add(
            IbSettlement(
                brand_id=brand.id,
                ib_id=ib_id,
                period=period,
                status=status,
                currency="USD",
                accrued=Decimal(payable),
                period_rules=Decimal(0),
                carried_in=Decimal(0),
                payable=Decimal(payable) if status == "paid" else Decimal(0),
                carried_out=Decimal(0) if status == "paid" else Decimal(payable),
                details={},
            )
        )


async def audit_actions(stack: Stack, entity_id: str) -> list[str]:
    async with stack.sessions() as session:
        return list(
            (
                await session.scalars(
                    select(AuditEvent.action)
                    .where(AuditEvent.entity_id == entity_id)
                    .order_by(AuditEvent.seq)
                )
            ).all()
        )
