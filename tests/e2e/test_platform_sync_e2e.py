"""Platform sync end to end on the MT5 simulator: deals ingested once, accounts mirrored, dealer changes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from fxcrm.adapters.platforms.base import BalanceOpKind, NewAccountSpec
from fxcrm.adapters.platforms.factory import build_gateway
from fxcrm.adapters.simulators.market.contract import SimFill
from fxcrm.models import AccountMirror, IngestedDeal
from fxcrm.seed import DEMO_SERVER, MT5_CONFIG
from fxcrm.workflows.platform_sync_types import SyncState
from tests.e2e.portal import bearer, register, staff_token
from tests.e2e.stack import Stack, eventually


async def _new_account(stack: Stack) -> int:
    gateway = build_gateway("mt5", stack.mt5.base_url, dict(MT5_CONFIG), stack.settings)
    try:
        ref = await gateway.create_account(
            NewAccountSpec(
                group="real\\retail\\std",
                leverage=100,
                first_name="Sync",
                last_name="Tester",
                email=f"sync-{uuid.uuid4().hex[:6]}@example.com",
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


def _round_trips(stack: Stack, login: int, count: int, start: datetime) -> None:
    for n in range(count):
        position = login * 1000 + n + int(start.timestamp()) % 1000 * 100_000
        opened, closed = start + timedelta(seconds=n * 10), start + timedelta(seconds=n * 10 + 5)
        common = {
            "login": login,
            "position_id": position,
            "symbol": "EURUSD",
            "lots": Decimal("0.10"),
            "contract_size": Decimal(100_000),
        }
        stack.mt5.state.sim_apply_fill(
            SimFill(
                side="buy",
                entry="in",
                price=Decimal("1.08000"),
                time=opened,
                commission=Decimal("-0.35"),
                **common,
            )
        )  # type: ignore[arg-type]
        stack.mt5.state.sim_apply_fill(
            SimFill(
                side="sell",
                entry="out",
                price=Decimal("1.08120"),
                time=closed,
                profit=Decimal("12.00"),
                commission=Decimal("-0.35"),
                **common,
            )
        )  # type: ignore[arg-type]


async def _deals(stack: Stack, login: int, *, openings: bool = False) -> int:
    """Closing deals of `login` ingested (or, with `openings`, its opening deals)."""
    entry = IngestedDeal.entry == "in" if openings else IngestedDeal.entry != "in"
    async with stack.sessions() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(IngestedDeal)
                .where(IngestedDeal.login == login, entry)
            )
            or 0
        )


async def test_deals_ingested_once_and_accounts_mirrored(stack: Stack) -> None:
    login = await _new_account(stack)
    _round_trips(stack, login, 12, datetime.now(UTC) - timedelta(minutes=30))
    workflow_id = f"platform-sync-{DEMO_SERVER}-{uuid.uuid4().hex[:6]}"
    handle = await stack.client.start_workflow(
        "PlatformSyncWorkflow",
        # Deals that show up 40 s after their close are read by the overlap sweep, not the tail.
        SyncState(
            server_id=DEMO_SERVER,
            interval_seconds=0.5,
            overlap_seconds=3600,
            sweep_every_seconds=5,
        ),
        id=workflow_id,
        task_queue=stack.settings.task_queue,
    )
    try:

        async def twelve() -> bool:
            return await _deals(stack, login) == 12

        await eventually(twelve, within=60)
        _round_trips(stack, login, 3, datetime.now(UTC) - timedelta(seconds=40))

        async def fifteen() -> bool:
            return await _deals(stack, login) == 15

        await eventually(fifteen, within=60)
    finally:
        await handle.terminate("test done")
    # A fresh sync with a long overlap re-reads everything and inserts nothing twice.
    again = await stack.client.start_workflow(
        "PlatformSyncWorkflow",
        SyncState(server_id=DEMO_SERVER, interval_seconds=0.5, overlap_seconds=7200),
        id=f"{workflow_id}-again",
        task_queue=stack.settings.task_queue,
    )
    try:
        expected = Decimal("10000") + 15 * (Decimal("12.00") - Decimal("0.70"))

        async def mirrored() -> bool:
            async with stack.sessions() as session:
                mirror = await session.get(AccountMirror, (DEMO_SERVER, login))
            return mirror is not None and mirror.balance == expected

        await eventually(mirrored, within=60)
    finally:
        await again.terminate("test done")
    assert await _deals(stack, login) == 15
    # Opening deals are read too (MT5 charges their commission), each once.
    assert await _deals(stack, login, openings=True) == 15


async def test_dealer_changes_leverage_group_and_access(stack: Stack) -> None:
    login = await _new_account(stack)
    dealer = await staff_token(stack.http, "dealer")
    url = f"/backoffice/accounts/{DEMO_SERVER}/{login}/changes"
    changed = await stack.http.post(
        url, json={"leverage": 200, "reason": "client request"}, headers=bearer(dealer)
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["leverage"] == 200
    moved = await stack.http.post(
        url, json={"group": "real\\pro\\std", "reason": "became Pro"}, headers=bearer(dealer)
    )
    assert moved.status_code == 200 and moved.json()["group"] == "real\\pro\\std"
    disabled = await stack.http.post(
        url, json={"access": "no_trading", "reason": "abuse review"}, headers=bearer(dealer)
    )
    assert disabled.status_code == 200 and disabled.json()["access"] == "no_trading"
    mirror = await stack.http.get(
        f"/backoffice/accounts/{DEMO_SERVER}/{login}", headers=bearer(dealer)
    )
    assert mirror.status_code == 200 and mirror.json()["leverage"] == 200

    too_high = await stack.http.post(
        url, json={"leverage": 3000, "reason": "x" * 5}, headers=bearer(dealer)
    )
    assert too_high.status_code == 422, too_high.text
    no_group = await stack.http.post(
        url, json={"group": "real\\nope", "reason": "x" * 5}, headers=bearer(dealer)
    )
    assert no_group.status_code == 422, no_group.text
    unknown = await stack.http.post(
        f"/backoffice/accounts/{DEMO_SERVER}/99999999/changes",
        json={"leverage": 100, "reason": "x" * 5},
        headers=bearer(dealer),
    )
    assert unknown.status_code == 404, unknown.text
    two = await stack.http.post(
        url,
        json={"leverage": 100, "group": "real\\pro\\std", "reason": "x" * 5},
        headers=bearer(dealer),
    )
    assert two.status_code == 422
    onboarding = await staff_token(stack.http, "onboarding")
    assert (
        await stack.http.post(
            url, json={"leverage": 100, "reason": "x" * 5}, headers=bearer(onboarding)
        )
    ).status_code == 403
    _, trader = await register(stack.http)
    assert (
        await stack.http.post(
            url, json={"leverage": 100, "reason": "x" * 5}, headers=bearer(trader)
        )
    ).status_code == 403
    auditor = await staff_token(stack.http, "auditor")
    events = (
        await stack.http.get(
            "/audit/events", params={"entity_id": f"{DEMO_SERVER}:{login}"}, headers=bearer(auditor)
        )
    ).json()
    assert [e["after"]["reason"] for e in events] == [
        "client request",
        "became Pro",
        "abuse review",
    ]
