"""IB accrual end to end: a round trip on the MT5 simulator by a client attributed to a 3-level IB
tree is ingested by the platform sync and accrued by IbAccrualWorkflow within seconds."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from fxcrm.adapters.platforms.base import BalanceOpKind, NewAccountSpec
from fxcrm.adapters.platforms.factory import build_gateway
from fxcrm.adapters.simulators.market.contract import SimFill
from fxcrm.core.db import transaction
from fxcrm.models import (
    IbAccrual,
    IbAttribution,
    IbParentLink,
    IbPartner,
    IbPlan,
    IbPlanAssignment,
    IbPlanVersion,
    IngestedDeal,
    PlatformServer,
    Trader,
    TradingAccount,
)
from fxcrm.seed import DEMO_SERVER, MT5_CONFIG
from fxcrm.workflows.ib_accrual_types import AccrualState
from fxcrm.workflows.platform_sync_types import SyncState
from tests.e2e.stack import Stack, eventually

LONG_AGO = datetime.now(UTC) - timedelta(days=30)


async def _platform_login(stack: Stack) -> int:
    gateway = build_gateway("mt5", stack.mt5.base_url, dict(MT5_CONFIG), stack.settings)
    try:
        ref = await gateway.create_account(
            NewAccountSpec(
                group="real\\retail\\std",
                leverage=100,
                first_name="Ivo",
                last_name="Brenner",
                email=f"ib-e2e-{uuid.uuid4().hex[:6]}@example.com",
                country="DE",
                client_id=uuid.uuid4().hex,
                main_password="Main#Pass2026",
                investor_password="Inv#Pass2026",
            )
        )
        await gateway.balance_op(
            ref.login, BalanceOpKind.DEPOSIT, Decimal("10000"), f"seed-{ref.login}"
        )
    finally:
        await gateway.close()
    return ref.login


async def _tree_and_client(stack: Stack, login: int) -> dict[str, str]:
    """MASTER > SUB > LEAF with differential per-lot plans 10 / 7 / 5; the login's client
    attributed to LEAF."""
    async with transaction(stack.sessions) as session:
        server = await session.get(PlatformServer, DEMO_SERVER)
        assert server is not None
        brand_id = server.brand_id
        ibs: dict[str, str] = {}
        parent: str | None = None
        for name, rate in (("MASTER", "10"), ("SUB", "7"), ("LEAF", "5")):
            partner = IbPartner(
                brand_id=brand_id,
                email=f"{name.lower()}-{uuid.uuid4().hex[:6]}@example.com",
                name=f"E2E {name}",
                referral_code=f"E2E{name}{uuid.uuid4().hex[:6]}",
                parent_id=parent,
                password_hash="x",
            )
            session.add(partner)
            await session.flush()
            session.add(IbParentLink(ib_id=partner.id, parent_id=parent, effective_from=LONG_AGO))
            plan = IbPlan(brand_id=brand_id, name=f"e2e-{name}-{uuid.uuid4().hex[:6]}")
            session.add(plan)
            await session.flush()
            session.add(
                IbPlanVersion(
                    plan_id=plan.id,
                    version=1,
                    effective_from=LONG_AGO,
                    rules={"symbol_groups": {"EURUSD": "fx"}, "per_lot": {"fx": {"*": rate}}},
                )
            )
            session.add(
                IbPlanAssignment(ib_id=partner.id, plan_id=plan.id, effective_from=LONG_AGO)
            )
            ibs[name] = parent = partner.id
        trader = Trader(
            brand_id=brand_id,
            email=f"{uuid.uuid4().hex[:10]}@example.com",
            password_hash="x",
            first_name="Ivo",
            last_name="Brenner",
            date_of_birth="1980-01-01",
            phone="+4915100000000",
            address="{}",
            country="DE",
            account_type="retail",
            status="active",
        )
        session.add(trader)
        await session.flush()
        session.add(
            TradingAccount(
                trader_id=trader.id,
                brand_id=brand_id,
                server_id=DEMO_SERVER,
                platform="mt5",
                opening_key=uuid.uuid4().hex,
                status="open",
                login=login,
                group="real\\retail\\std",
                leverage=100,
                currency="USD",
                account_type="retail",
            )
        )
        session.add(
            IbAttribution(
                trader_id=trader.id,
                ib_id=ibs["LEAF"],
                effective_from=LONG_AGO,
                source="registration",
            )
        )
    return ibs


def _round_trip(stack: Stack, login: int, lots: str) -> None:
    now = datetime.now(UTC)
    common = {
        "login": login,
        "position_id": login * 10 + 1,
        "symbol": "EURUSD",
        "lots": Decimal(lots),
        "contract_size": Decimal(100_000),
    }
    stack.mt5.state.sim_apply_fill(
        SimFill(
            side="buy",
            entry="in",
            price=Decimal("1.08"),
            time=now - timedelta(seconds=90),
            commission=Decimal("-3.5"),
            **common,
        )  # type: ignore[arg-type]
    )
    stack.mt5.state.sim_apply_fill(
        SimFill(
            side="sell",
            entry="out",
            price=Decimal("1.081"),
            time=now,
            profit=Decimal("50"),
            commission=Decimal("-3.5"),
            **common,
        )  # type: ignore[arg-type]
    )


async def test_a_deal_becomes_accruals_within_seconds(stack: Stack) -> None:
    login = await _platform_login(stack)
    ibs = await _tree_and_client(stack, login)
    suffix = uuid.uuid4().hex[:6]
    sync = await stack.client.start_workflow(
        "PlatformSyncWorkflow",
        SyncState(server_id=DEMO_SERVER, interval_seconds=0.5),
        id=f"platform-sync-{DEMO_SERVER}-{suffix}",
        task_queue=stack.settings.task_queue,
    )
    accrual = await stack.client.start_workflow(
        "IbAccrualWorkflow",
        AccrualState(server_id=DEMO_SERVER, interval_seconds=0.5),
        id=f"ib-accrual-{DEMO_SERVER}-{suffix}",
        task_queue=stack.settings.task_queue,
    )
    try:
        filled = time.monotonic()
        _round_trip(stack, login, "2")

        async def accrued() -> list[IbAccrual]:
            async with stack.sessions() as session:
                deal_ids = select(IngestedDeal.id).where(
                    IngestedDeal.server_id == DEMO_SERVER, IngestedDeal.login == login
                )
                rows = await session.scalars(
                    select(IbAccrual).where(IbAccrual.deal_pk.in_(deal_ids))
                )
                found = list(rows.all())
            return found if len(found) == 3 else []

        rows = await eventually(accrued, within=30, interval=0.1)
        latency = time.monotonic() - filled
    finally:
        await accrual.terminate("test done")
        await sync.terminate("test done")
    earned = {row.beneficiary_id: row.amount for row in rows}
    # Differential: 2 lots x 5 to LEAF, x (7 - 5) to SUB, x (10 - 7) to MASTER.
    assert earned == {ibs["LEAF"]: Decimal(10), ibs["SUB"]: Decimal(4), ibs["MASTER"]: Decimal(6)}
    assert {row.period for row in rows} == {f"{datetime.now(UTC):%Y-%m}"}
    print(f"deal on the platform to accrual rows: {latency:.2f} s")
    assert latency < 10
