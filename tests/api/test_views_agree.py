"""What staff and traders read agrees with itself: money as plain decimals in the dealer's
account view, one onboarding status for `/portal/me` and `/portal/me/onboarding`, and a refund
event of a deposit named a refund, not a chargeback."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import update
from temporalio.common import WorkflowIDReusePolicy

from fxcrm.adapters.psp.base import PaymentStatus, PspEvent
from fxcrm.api.routes.reconciliation import start_reversal
from fxcrm.models import AccountMirror, Payment, RiskAlert, Trader
from fxcrm.seed import DEMO_SERVER
from tests.e2e.portal import bearer, onboarding, register, staff_token, upload_both
from tests.e2e.stack import Stack, eventually


async def test_dealer_account_view_shows_plain_decimals(stack: Stack) -> None:
    login = random.randint(10_000_000, 99_999_999)
    async with stack.sessions() as session:
        session.add(
            AccountMirror(
                server_id=DEMO_SERVER,
                login=login,
                group="real\\std",
                leverage=100,
                currency="USD",
                access="full",
                balance=Decimal("1000"),
                credit=Decimal("0"),
                equity=Decimal("1000.5"),
                margin=Decimal("0.00000005"),
                free_margin=Decimal("2E+4"),
                margin_level=None,
                synced_at=datetime.now(UTC),
            )
        )
        session.add(
            RiskAlert(
                alert_key=f"{DEMO_SERVER}:{login}:equity:1",
                server_id=DEMO_SERVER,
                login=login,
                kind="equity",
                value=Decimal("100"),
                threshold=Decimal("50"),
                status="open",
            )
        )
        await session.commit()
    dealer = bearer(await staff_token(stack.http, "dealer"))
    view = await stack.http.get(f"/backoffice/accounts/{DEMO_SERVER}/{login}", headers=dealer)
    assert view.status_code == 200, view.text
    body = view.json()
    assert (body["balance"], body["credit"], body["equity"]) == ("1000", "0", "1000.5")
    assert (body["margin"], body["free_margin"]) == ("0.00000005", "20000")
    alerts = await stack.http.get(
        "/backoffice/alerts", params={"server_id": DEMO_SERVER}, headers=dealer
    )
    mine = [a for a in alerts.json() if a["login"] == login]
    assert [(a["value"], a["threshold"]) for a in mine] == [("100", "50")]


async def test_me_and_onboarding_report_one_stage(stack: Stack) -> None:
    trader_id, token = await register(stack.http)
    assert (await onboarding(stack.http, token))["stage"] == "documents"
    # The workflow moves its stage first and records it a moment later; whatever the record says
    # is what both views say.
    async with stack.sessions() as session:
        await session.execute(
            update(Trader)
            .where(Trader.id == trader_id)
            .values(stage="account_opening", kyc_status="APPROVED")
        )
        await session.commit()
    me = await stack.http.get("/portal/me", headers=bearer(token))
    view = await onboarding(stack.http, token)
    assert (me.json()["stage"], me.json()["kyc_status"]) == ("account_opening", "APPROVED")
    assert (view["stage"], view["kyc_status"]) == ("account_opening", "APPROVED")
    assert view["documents_missing"] == [] and view["login"] is None


async def test_kyc_status_on_hold_is_the_same_in_both_views(stack: Stack) -> None:
    # The provider puts this applicant on hold: no stage change, only the KYC status moves.
    _, token = await register(
        stack.http, email=f"kim-{uuid.uuid4().hex[:6]}.sim-onhold@example.com"
    )
    await upload_both(stack.http, token)

    async def on_hold() -> bool:
        return (await onboarding(stack.http, token))["kyc_status"] == "MANUAL_REVIEW"

    await eventually(on_hold, within=30)
    me = await stack.http.get("/portal/me", headers=bearer(token))
    view = await onboarding(stack.http, token)
    assert (me.json()["stage"], me.json()["kyc_status"]) == (view["stage"], view["kyc_status"])


class _Temporal:
    """Records the workflows start_reversal starts."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []

    async def start_workflow(self, workflow: str, arg: Any, **kwargs: Any) -> None:
        assert kwargs["id_reuse_policy"] is WorkflowIDReusePolicy.REJECT_DUPLICATE
        self.started.append((workflow, kwargs["id"]))


@pytest.mark.parametrize(
    ("object_kind", "status", "prefix"),
    [
        ("refund", PaymentStatus.REFUNDED, "psp-refund-"),
        ("refund", PaymentStatus.PARTIALLY_REFUNDED, "psp-refund-"),
        ("payment", PaymentStatus.REFUNDED, "psp-refund-"),
        ("dispute", PaymentStatus.CHARGED_BACK, "chargeback-"),
        ("payment", PaymentStatus.CHARGED_BACK, "chargeback-"),
    ],
)
async def test_a_refund_event_is_not_named_a_chargeback(
    object_kind: str, status: PaymentStatus, prefix: str
) -> None:
    payment = Payment(id="p1", kind="deposit", status="completed", currency="USD", amount=100)
    event = PspEvent(
        provider="sim",
        event_key="evt1",
        provider_ref="ref1",
        object_kind=object_kind,
        type=f"{object_kind}.updated",
        status=status,
        created_at=datetime.now(UTC),
    )
    temporal = _Temporal()
    workflow_id = await start_reversal(temporal, "q", payment, event)  # type: ignore[arg-type]
    assert workflow_id == f"{prefix}p1-evt1"
    assert temporal.started == [("ChargebackWorkflow", workflow_id)]
